"""The pieces of LUMINA's causal verification: query choice, the control's mid-ranked song, the 2σ verdict."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lumina.data.manifest import Manifest
from lumina.methods.lumina.causal import choose_queries, mid_ranked, pass_rates, plan, verdict
from lumina.runs.errors import ParameterError


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
