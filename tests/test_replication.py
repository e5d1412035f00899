"""Replication across seeds: spreads, ranking stability, top-k overlap and findings counted by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from groundtruth.replication import (
    CLAIMS,
    claims_by_seed,
    headline_values,
    ranking_stability,
    read_seed_tables,
    spread,
    top_overlap,
)
from groundtruth.tables import write_replication_report


def write_seed(root: Path, seed: int, lds: list[float], near_copy_label: str) -> None:
    folder = root / f"seed{seed}"
    folder.mkdir(parents=True)
    pd.DataFrame({"method": ["graddot", "trak", "lumina"], "setting": ["raw", "k", "lumina-P"], "lds": lds,
                  "near_copy_hit_at_10": [1.0, 0.5, 0.25]}).to_csv(folder / "ground_truth.csv", index=False)
    pd.DataFrame({"method": ["graddot", "trak", "lumina"], "setting": ["raw", "k", "lumina-P"], "status": "ok",
                  "rho1": [0.5, 0.6, 0.9], "rank": [1, 2, 3]}).to_csv(folder / "leaderboard.csv", index=False)
    pd.DataFrame({"level": ["group"], "group": ["near_copy"], "effect": [-0.4], "p_holm": [0.01],
                  "label": [near_copy_label]}).to_csv(folder / "planted_influence.csv", index=False)


def test_spread_stability_and_claims(tmp_path: Path) -> None:
    write_seed(tmp_path, 0, [0.4, 0.3, 0.1], "influence")
    write_seed(tmp_path, 1, [0.5, 0.1, 0.2], "no measured influence")
    tables = read_seed_tables(tmp_path, [0, 1])
    values = headline_values(tables)
    spreads = spread(values).set_index(["quantity", "method", "setting"])
    lds = spreads.loc[("lds", "graddot", "raw")]
    assert lds["mean"] == pytest.approx(0.45) and lds["sd"] == pytest.approx(np.std([0.4, 0.5], ddof=1))
    assert not lds["identical"] and spreads.loc[("rho1", "graddot", "raw"), "identical"]
    stability = ranking_stability(values, "lds")
    # seed 0 ranks graddot > trak > lumina, seed 1 graddot > lumina > trak: one discordant pair of three
    assert stability["kendall"].iloc[0] == pytest.approx(1 / 3)
    claims = claims_by_seed(tables).set_index("finding")
    near = claims.loc[[f for f in claims.index if f.startswith("Near-copy")][0]]
    assert (near["holds"], near["assessed"], near["seeds_holding"]) == (1, 2, "0")
    weakest = claims.loc[[f for f in claims.index if f.startswith("LUMINA is the weakest")][0]]
    assert (weakest["holds"], weakest["assessed"]) == (1, 2)  # seed 1: lumina 0.2 beats trak 0.1
    write_replication_report(values, spread(values), stability, pd.DataFrame(columns=["query_id", "overlap"]),
                             claims_by_seed(tables), [0, 1], tmp_path, "python -m experiments.replication")
    page = (tmp_path / "README.md").read_text()
    assert "holds in 1 of 2 seeds" in page and "**Not yet replicated**: 2 of the 3 seeds" in page
    one = spread(headline_values(read_seed_tables(tmp_path, [0]))).set_index(["quantity", "method", "setting"])
    assert one.loc[("rho1", "graddot", "raw"), "identical"] is None  # one seed cannot tell
    assert set(pd.read_csv(tmp_path / "replication.csv")["level"]) == {"seed", "spread"}


def test_top_overlap_by_hand() -> None:
    per_seed = {0: {"q": {"a", "b"}, "r": {"a", "b"}}, 1: {"q": {"a", "c"}, "r": {"a", "b"}},
                2: {"q": {"a", "b"}}}
    table = top_overlap(per_seed, k=2).set_index("query_id")
    # only q is in every seed; pairs (0,1) 1/2, (0,2) 2/2, (1,2) 1/2
    assert list(table.index) == ["q"] and table.loc["q", "overlap"] == pytest.approx(2 / 3)


def test_demo_comparison_at_printed_precision() -> None:
    from groundtruth.replication import leaderboard_differences

    committed = pd.DataFrame({"method": ["lumina", "lumina", "trak"], "setting": ["lumina-P", "lumina-M", "k"],
                              "rho1": [0.9121, 0.651, 0.5]})
    same = committed.assign(rho1=[0.91209, 0.6514, 0.9])  # trak differs, but only LUMINA's rows are compared
    assert leaderboard_differences(same, committed).empty
    # Aria's rank among a leaderboard of LUMINA alone (the demo's) against one of every method: not compared
    ranked = committed.assign(rank=[7, 8, 1])
    assert leaderboard_differences(ranked.assign(rank=[1, 2, 1]), ranked).empty
    moved = committed.assign(rho1=[0.784, 0.651, 0.5])
    diff = leaderboard_differences(moved, committed)
    assert diff[["setting", "column"]].values.tolist() == [["lumina-P", "rho1"]]


def test_top_ranked_claim_needs_every_setting_to_lower_the_loss_after_holm() -> None:
    text = next(t for t in CLAIMS if t.startswith("Every setting's top-ranked track"))
    every = pd.DataFrame({"top1_effect": [-0.1, -0.2], "top1_p_holm": [0.01, 0.04]})
    assert CLAIMS[text]({"ground_truth.csv": every}) is True
    assert CLAIMS[text]({"ground_truth.csv": every.assign(top1_p_holm=[0.01, 0.2])}) is False
    assert CLAIMS[text]({"ground_truth.csv": every.assign(top1_effect=[-0.1, 0.2])}) is False  # loss rises
    assert CLAIMS[text]({}) is None
