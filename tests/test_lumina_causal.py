"""The pieces of LUMINA's causal verification: query choice, the control's mid-ranked song, the 2σ verdict, and the
tables the check writes."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lumina.data.manifest import Manifest
from lumina.methods.lumina.ablation import results_markdown, write_results
from lumina.methods.lumina.causal import choose_queries, mid_ranked, pass_rates, plan, verdict
from lumina.runs.errors import ParameterError
from lumina.runs.layout import ablation_database


def test_queries_are_taken_in_turn_from_each_kind(tmp_path):
    rows = [("t0", "train", "")] + [(f"q_{k}_{i}", "query", k) for k in ("held_out", "near_copy", "composition")
                                     for i in range(3)]
    manifest = Manifest(pd.DataFrame(rows, columns=["track_id", "split", "query_kind"]).assign(path="x.wav"), tmp_path)
    chosen = choose_queries(manifest, 5, seed=0)
    assert [q.rsplit("_", 1)[0] for q in chosen] == ["q_near_copy", "q_composition", "q_held_out", "q_near_copy",
                                                     "q_composition"]
    assert len(set(chosen)) == 5 and chosen == choose_queries(manifest, 5, seed=0)
    assert len(choose_queries(manifest, 20)) == 9


def test_control_is_drawn_from_the_middle_third():
    ranking = [f"s{i}" for i in range(10)]  # middle third: ranks 3, 4, 5, 6 (0-based)
    drawn = {mid_ranked(ranking, np.random.default_rng(seed)) for seed in range(200)}
    assert drawn == {"s3", "s4", "s5", "s6"}
    with pytest.raises(ParameterError):
        mid_ranked(["a", "b"], np.random.default_rng(0))


def test_plan_and_verdict_by_hand():
    cosines = np.array([0.1, 0.5, 0.2, 0.3, 0.0, -0.1])
    result = plan(cosines, [f"s{i}" for i in range(6)], np.random.default_rng(0))
    assert result["top"] == {"removed": "s1", "rank": 1, "cosine": 0.5}
    assert result["control"]["rank"] in (3, 4) and result["control"]["removed"] in ("s2", "s0")
    assert math.isclose(result["sigma"], cosines.std()) and math.isclose(result["mu"], cosines.mean())
    sigma = cosines.std()  # 0.1972
    assert verdict(0.5, 0.5 - 2.01 * sigma, sigma)["passed"] and not verdict(0.5, 0.5 - 1.99 * sigma, sigma)["passed"]
    failed = verdict(0.5, 0.2, sigma)
    assert not failed["passed"] and math.isclose(failed["drop_sigmas"], 0.3 / sigma)
    assert pass_rates([{"role": "top", "passed": True}, {"role": "top", "passed": False},
                       {"role": "control", "passed": False}, {"role": "top_kept", "passed": True}]) == {
        "top": (1, 2), "control": (0, 1), "top_kept": (1, 1)}


# -- the tables of the check (lumina.methods.lumina.ablation) ----------------------------------------------------

RESULTS = Path(__file__).resolve().parents[1] / "results" / "seed0"


def committed_rows() -> list[dict]:
    """The rows of the committed `causal_verification.csv`, typed as `causal_check` returns them."""
    types = {"planted": lambda v: v == "True", "passed": lambda v: v == "True", "rank_before": int, "rank_after": int,
             **{c: float for c in ("cosine_before", "cosine_after", "sigma", "drop", "drop_sigmas", "sts_before",
                                   "sts_after")}}
    with open(RESULTS / "causal_verification.csv", newline="") as handle:
        return [{k: types.get(k, str)(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def committed_header(markdown: str) -> dict:
    """What the committed `causal_verification.md` says it checked."""
    found = re.search(r"Command: `(?P<command>[^`]+)`\n\n- (?P<status>[^;]+); channel (?P<channel>\w+); .* at least "
                      r"(?P<sigmas>[\d.]+) sigma.*\n.*\n- full model `(?P<model_hash>\w+)` \((?P<n_train>\d+) training "
                      r"tracks\); signatures (?P<signature>.+)\n- written (?P<time>.+)\n", markdown)
    assert found is not None
    return {**found.groupdict(), "sigmas": float(found["sigmas"]), "n_train": int(found["n_train"])}


def test_the_committed_tables_are_what_the_writer_writes(tmp_path):
    """results/seed0/causal_verification.{md,csv}, rewritten from the committed rows: the same bytes."""
    markdown = (RESULTS / "causal_verification.md").read_text()
    rows = committed_rows()
    assert len(rows) == 24 and rows[0]["planted"] is False and rows[0]["passed"] is True
    csv_path, md_path = write_results(rows, committed_header(markdown), tmp_path / "new")
    assert md_path.read_text() == markdown
    assert csv_path.read_bytes() == (RESULTS / "causal_verification.csv").read_bytes()
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["causal_verification.csv",
                                                                      "causal_verification.md"]


def test_the_markdown_by_hand():
    row = {"query": "q1", "kind": "near_copy", "role": "top", "measured": "t3", "removed": "t3", "planted": True,
           "rank_before": 1, "cosine_before": 0.91234, "cosine_after": 0.5, "sigma": 0.2, "drop": 0.41234,
           "drop_sigmas": 2.0617, "passed": True, "sts_before": 1.234, "sts_after": -0.5, "rank_after": 7,
           "model": "abc"}
    header = {"command": "python -m experiments.causal_verification", "status": "1 of 1 queries done",
              "channel": "M", "sigmas": 2.0, "model_hash": "h", "n_train": 8, "signature": "stats", "time": "now"}
    lines = results_markdown([row, {**row, "role": "control", "passed": False, "planted": False}], header).split("\n")
    assert lines[9:15] == ["| role | passed | checked | pass rate |", "|---|---:|---:|---:|", "| top | 1 | 1 | 100% |",
                           "| control | 0 | 1 | 0% |", "| top_kept | 0 | 0 | – |", ""]
    assert lines[16] == "|---|---|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|"
    assert lines[17] == "| q1 | near_copy | top | t3 | t3 | yes | 1 | 0.9123 | 0.5000 | 2.06 | yes | 1.23 | -0.50 | 7 |"
    assert lines[18].startswith("| q1 | near_copy | control | t3 | t3 | no | 1 |") and lines[19] == ""


def test_ablated_signatures_live_in_the_method_cache():
    assert ablation_database(Path("cache/methods/exp/lumina"), "0123abcd") == Path(
        "cache/methods/exp/lumina/causal/signatures-0123abcd.h5")
