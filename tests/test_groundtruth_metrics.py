"""Ground-truth metrics on synthetic data: LDS on a linear datamodel, planted retrieval and chance levels by
hand, the in-vs-out effect, and how runs are found and read (Aria's reader)."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from groundtruth.agreement import aria_vs_truth, attach_aria, diagnostics_against_truth, query_homogeneity
from groundtruth.judge import find_matrices
from groundtruth.lds import bootstrap_ci, lds_per_query, own_effect_to_spread, track_matrix
from groundtruth.planted import (
    PLANTED_KINDS,
    across_queries,
    chance_first_rank,
    chance_hit_at_k,
    chance_mrr,
    chance_pvalues,
    hit_at_k,
    holm,
    influence_label,
    mean_reciprocal_rank,
    planted_ranks,
    query_effect,
    top_k_precision,
    two_way_effect,
)
from lumina.runs.errors import ParameterError
from lumina.runs.provenance import stamp
from lumina.runs.score_matrix import ScoreMatrix, write_run

ROOT = Path(__file__).resolve().parents[1]


# -- LDS on a synthetic linear datamodel ------------------------------------------------------------------------

def linear_datamodel(n_train: int = 60, n_queries: int = 12, n_models: int = 200, noise: float = 0.05, seed: int = 0):
    """Membership (M, N), true effects β (N, Q) and losses (M, Q) = −Σ_{i∈S} β_iq + noise."""
    rng = np.random.default_rng(seed)
    beta = rng.standard_normal((n_train, n_queries))
    membership = np.zeros((n_models, n_train), dtype=bool)
    for m in range(n_models):
        membership[m, rng.choice(n_train, n_train // 2, replace=False)] = True
    losses = -(membership.astype(float) @ beta) + noise * rng.standard_normal((n_models, n_queries))
    return membership, beta, losses


def test_lds_of_exact_attribution_is_near_one_and_of_random_scores_near_zero():
    membership, beta, losses = linear_datamodel()
    exact = lds_per_query(beta, membership, losses)
    assert exact.mean() > 0.98 and exact.min() > 0.95
    random = [lds_per_query(np.random.default_rng(100 + s).standard_normal(beta.shape), membership, losses).mean()
              for s in range(5)]
    assert abs(np.mean(random)) < 0.05
    assert lds_per_query(-beta, membership, losses).mean() < -0.98  # the sign is the convention's


def test_lds_equals_direct_spearman_and_constant_columns_score_zero():
    membership, beta, losses = linear_datamodel(n_models=40, noise=2.0, seed=1)
    scores = beta + np.random.default_rng(2).standard_normal(beta.shape)
    got = lds_per_query(scores, membership, losses)
    predicted = membership.astype(float) @ scores
    direct = [stats.spearmanr(predicted[:, q], -losses[:, q]).statistic for q in range(beta.shape[1])]
    np.testing.assert_allclose(got, direct, atol=1e-6)
    scores[:, 0] = 0.0
    assert lds_per_query(scores, membership, losses)[0] == 0.0


def test_bootstrap_interval_brackets_the_mean_and_is_reproducible():
    values = np.random.default_rng(0).normal(0.3, 0.1, size=32)
    low, high = bootstrap_ci(values, n_resamples=1000, seed=0)
    assert low < values.mean() < high and high - low < 0.1
    assert (low, high) == bootstrap_ci(values, n_resamples=1000, seed=0)


def test_own_effect_to_spread_by_hand():
    # track 0: in → 1, 1; out → 3, 3 (−2; sd 1). track 1: in → 2, out → 2, 2, 2 (0; sd 0). track 2: always in.
    losses = np.array([[1.0, 2.0, 5.0], [1.0, 2.0, 7.0], [3.0, 2.0, 5.0], [3.0, 2.0, 7.0]])
    membership = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 0, 1]], dtype=bool)
    out = own_effect_to_spread(losses, membership)
    assert out["own_effect"] == pytest.approx(-1.0)  # (−2 + 0) / 2: track 2 never left out
    assert out["spread"] == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    assert out["ratio"] == pytest.approx(-1.5)
    with pytest.raises(ParameterError, match="differ in shape"):
        own_effect_to_spread(losses, membership[:, :2])


def test_track_matrix_sums_segments_and_marks_unscored_tracks():
    scores = np.array([[1.0, 0.0], [2.0, 1.0], [5.0, -1.0]])
    tau = track_matrix(scores, ["a", "a", "c"], ["a", "b", "c"])
    np.testing.assert_array_equal(tau[0], [3.0, 1.0])
    assert np.isnan(tau[1]).all()
    np.testing.assert_array_equal(tau[2], [5.0, -1.0])


# -- planted retrieval by hand ----------------------------------------------------------------------------------

def test_hit_at_k_and_mrr_by_hand():
    train = [f"t{i}" for i in range(12)]
    scores = np.zeros((12, 3))
    scores[:, 0] = np.arange(12)[::-1]          # t0 best … t11 worst; source t2 → rank 3
    scores[:, 1] = np.arange(12)                # t11 best; sources t0 (rank 12), t9 (rank 3) → 3
    scores[:, 2] = 1.0                          # all tied: ties go against the source → rank 12
    sources = [["t2"], ["t0", "t9"], ["t5"]]
    ranks = planted_ranks(scores, train, sources)
    np.testing.assert_array_equal(ranks, [3, 3, 12])
    assert hit_at_k(ranks, 10) == pytest.approx(2 / 3)
    assert hit_at_k(ranks, 2) == 0.0
    assert mean_reciprocal_rank(ranks) == pytest.approx((1 / 3 + 1 / 3 + 1 / 12) / 3)
    np.testing.assert_allclose(top_k_precision(scores, train, sources, 10), [0.1, 0.1, 0.0])
    scores[0, 0] = np.nan                       # an unscored track ranks last
    assert planted_ranks(scores, train, sources)[0] == 2


def test_chance_levels_by_hand():
    assert chance_hit_at_k(10, 1, 3) == pytest.approx(0.3)
    assert chance_hit_at_k(10, 2, 3) == pytest.approx(1 - (8 * 7 * 6) / (10 * 9 * 8))  # no source in the top 3
    assert chance_mrr(4, 1) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    assert chance_first_rank(20, 3).sum() == pytest.approx(1.0)
    p_hit, p_mrr = chance_pvalues(np.array([1, 1, 1, 1]), 100, [1, 1, 1, 1], k=10, n_draws=2000)
    assert p_hit < 0.01 and p_mrr < 0.01
    p_hit, p_mrr = chance_pvalues(np.array([90, 95, 80, 99]), 100, [1, 1, 1, 1], k=10, n_draws=2000)
    assert p_hit > 0.5 and p_mrr > 0.5


def test_two_way_effect_recovers_a_planted_slope():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(16, 8)).astype(float)
    y = rng.normal(size=(1, 8)) + rng.normal(size=(16, 1)) - 0.3 * x + 0.05 * rng.standard_normal((16, 8))
    effect = two_way_effect(y, x)
    assert effect["effect"] == pytest.approx(-0.3, abs=0.03) and effect["t"] < -10
    assert effect["dof"] == 16 * 8 - 16 - 8
    assert math.isnan(two_way_effect(y, np.ones_like(x))["effect"])


def test_the_query_is_the_unit_when_the_effect_differs_by_query():
    """Slopes that differ by query (-1.0, -0.8, +0.2, +0.4; mean -0.3) over 400 models: every cell as a unit
    (the pooled fixed-effects estimate) calls it overwhelming, the t-test over the four queries does not."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, size=(400, 4)).astype(float)
    y = np.array([-1.0, -0.8, 0.2, 0.4]) * x + 0.05 * rng.standard_normal((400, 4))
    pooled = two_way_effect(y, x)
    assert pooled["p"] < 1e-6  # overstated: 1196 "degrees of freedom"
    slopes = np.array([query_effect(y[:, j], x[:, j])["effect"] for j in range(4)])
    np.testing.assert_allclose(slopes, [-1.0, -0.8, 0.2, 0.4], atol=0.02)
    test = across_queries(slopes)
    t_by_hand = slopes.mean() / (slopes.std(ddof=1) / 2)
    assert test["dof"] == 3 and test["t"] == pytest.approx(t_by_hand)
    assert test["p"] == pytest.approx(2 * stats.t.sf(abs(t_by_hand), 3)) and test["p"] > 0.3
    assert influence_label(test["effect"], test["p"]) == "no measured influence"
    assert influence_label(-0.4, 0.01) == "influence" and influence_label(0.4, 0.01) != "influence"


def test_holm_by_hand():
    adjusted = holm([0.01, 0.04, 0.03, 0.5, np.nan])
    np.testing.assert_allclose(adjusted[:4], [0.04, 0.09, 0.09, 0.5])
    assert math.isnan(adjusted[4])


def test_diagnostics_are_read_as_the_paper_reads_them():
    """In the Aria paper the method best by LDS has the lowest rho1, rho2:5, c and rho-bar: a table built that way
    must show positive agreement for every one of them."""
    lds = np.array([0.4, 0.3, 0.2, 0.1])
    table = pd.DataFrame({"method": list("abcd"), "setting": list("abcd"), "lds": lds, "collapsed": False,
                          "rho1": 1 - lds, "rho2_5": 0.5 - lds, "concentration": 1 - lds, "inter_query_corr": -lds,
                          "aria_rank": [1, 2, 3, 4], "aria_rhythm_z": lds,
                          **{f"{k}_precision_at_10": lds for k in PLANTED_KINDS}})
    per_query = pd.DataFrame({"method": ["a"], "setting": ["a"], "query_id": ["q"], "kind": ["near_copy"],
                              "z_rhythm": [1.0], "precision_at_10": [0.5]})
    agreement = aria_vs_truth(table, per_query, 10, ("rhythm",)).set_index("aria")
    for name in ("rho1", "rho2_5", "concentration", "inter_query_corr"):
        assert agreement.loc[name, "spearman"] == pytest.approx(1.0), name
    assert "spearman_p_holm" in agreement.columns



def test_table1_orders_four_methods_drops_collapsed_and_circular_settings_and_adjusts_within_families():
    """Six settings: the paper's four methods (lowest rho1 = best LDS), a collapsed one and the retrieval baseline.
    Every diagnostic orders the four exactly as LDS (tau 1, exact p 1/12 two-sided); the collapsed setting never
    counts; the baseline counts for the diagnostics but not for channel z (circular)."""
    lds = np.array([0.4, 0.3, 0.2, 0.1, 0.9, 0.0])
    table = pd.DataFrame({"method": ["trak", "tracin", "gradcos", "graddot", "lumina", "symbolic"],
                          "setting": ["d", "d", "d", "d", "M", "all"], "lds": lds, "lds_window": lds,
                          "collapsed": [False, False, False, False, True, False],
                          "rho1": 1 - lds, "rho2_5": 1 - lds, "concentration": 1 - lds, "inter_query_corr": 1 - lds,
                          "aria_melody_z": [0.4, 0.3, 0.2, 0.1, 0.0, 9.0]})
    four = {"trak": "d", "tracin": "d", "gradcos": "d", "graddot": "d"}
    rows = diagnostics_against_truth(table, four, ("melody",)).set_index(["diagnostic", "truth", "over"])
    on_four = rows.loc[("rho1", "lds", "four methods")]
    assert on_four["n"] == 4 and on_four["kendall"] == pytest.approx(1.0)
    assert on_four["kendall_p"] == pytest.approx(2 / 24)  # exact: 1 of 24 orders, two-sided
    assert rows.loc[("rho1", "lds", "all settings"), "n"] == 5  # the collapsed setting left out
    melody = rows.loc[("melody_z", "lds", "all settings but symbolic")]
    assert melody["n"] == 4 and melody["kendall"] == pytest.approx(1.0)  # the baseline's z of 9 left out
    family = rows.xs(("lds", "all settings"), level=("truth", "over"))
    np.testing.assert_allclose(family["kendall_p_holm"], holm(family["kendall_p"]))
    assert (family["kendall_p_holm"] >= family["kendall_p"]).all()


# -- finding and reading runs -----------------------------------------------------------------------------------

def test_find_matrices_reads_through_aria_and_lists_the_refused_runs(tmp_path):
    scores = np.arange(6, dtype=np.float32).reshape(3, 2)
    good = ScoreMatrix(scores, ["a", "a", "b"], ["q0", "q1"], method="m", setting="good")
    write_run(tmp_path / "m" / "good", {"method": "m", "setting": "good"}, stamp(), good)
    write_run(tmp_path / "m" / "failed", {"method": "m", "setting": "failed", "status": "failed"}, stamp())
    broken = ScoreMatrix(scores, ["a", "a", "b"], ["q0", "q1"], method="m", setting="nan")
    write_run(tmp_path / "m" / "nan", {"method": "m", "setting": "nan"}, stamp(), broken)
    with h5py.File(tmp_path / "m" / "nan" / "scores.h5", "r+") as f:
        f["scores"][0, 0] = np.nan
    found, refused = find_matrices(tmp_path)
    assert [folder.name for folder, _ in found] == ["good"]
    matrix = found[0][1]
    np.testing.assert_array_equal(matrix.scores, scores)
    assert (matrix.method, matrix.setting, matrix.level, matrix.segment_track) == ("m", "good", "segment",
                                                                                   ["a", "a", "b"])
    assert len(refused) == 1 and "nan" in refused[0] and "NaN" in refused[0]
    assert find_matrices(tmp_path / "nowhere") == ([], [])


def test_agreement_without_settings_or_leaderboard(tmp_path):
    empty = aria_vs_truth(pd.DataFrame(), pd.DataFrame(), 10, ("rhythm",))
    assert empty.empty and list(empty.columns)[:3] == ["aria", "truth", "n"]
    table = attach_aria(pd.DataFrame({"method": ["m"], "setting": ["s"]}), tmp_path / "none.csv", ("rhythm", "x"))
    assert list(table.columns) == ["method", "setting", "aria_rhythm_z", "aria_x_z", "aria_rank"]
    assert list(query_homogeneity(tmp_path, 10, ("rhythm",)).columns) == ["query_id", "z_rhythm"]


def test_aria_never_imports_groundtruth():
    for path in (ROOT / "aria").rglob("*.py"):
        assert "groundtruth" not in path.read_text(), path
