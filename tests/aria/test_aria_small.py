"""Small catalogues, single queries and abstention verdicts in the leaderboard
(docs/aria.md#small-catalogues-and-single-queries, docs/aria.md#abstention-verdicts)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aria.diagnose import AriaSettings, Pool
from aria.extract import FeatureTable
from aria.features import FeatureSettings
from aria.leaderboard import ABSTENTION_FILE, NOT_ASSESSED, QUERIES_FILE, run_leaderboard
from groundtruth import abstention
from tests.aria.artefacts import write_run, write_scores

TRACKS = [f"t{i}" for i in range(6)]


def _pool() -> Pool:
    rng = np.random.default_rng(0)
    vectors = {f: rng.random((6, 3)) for f in ("beat_intervals", "onset_intervals", "chroma", "tonnetz", "mfcc",
                                                "cqt")}
    features = FeatureTable(TRACKS, vectors, {"chords": [np.array([i % 3, 2]) for i in range(6)]},
                            [f"{i:064x}" for i in range(6)], np.zeros(6), FeatureSettings())
    sims = {f: 1.0 / (1.0 + np.abs(rng.random((6, 1)) - rng.random((1, 6)))) for f in [*vectors, "chords"]}
    return Pool(features, {}, {f: ((s + s.T) / 2).astype(np.float32) for f, s in sims.items()}, None)


def _runs(tmp_path, queries: dict[str, list[str]]):
    manifest = tmp_path / "manifest.csv"
    rows = [{"track_id": t, "split": "train", "path": f"{t}.wav"} for t in TRACKS]
    query_ids = sorted({q for ids in queries.values() for q in ids})
    pd.DataFrame(rows + [{"track_id": q, "split": "query", "path": f"{q}.wav"} for q in query_ids]).to_csv(
        manifest, index=False)
    rng = np.random.default_rng(1)
    for method, ids in queries.items():
        write_scores(tmp_path / "runs" / method / "s" / "scores.h5", rng.normal(size=(6, len(ids))), TRACKS, ids,
                     method=method, setting="s", normalization="zscore", manifest=manifest)
        write_run(tmp_path / "runs" / method / "s", {"status": "ok"})
    pool = _pool()
    return run_leaderboard(tmp_path / "runs", tmp_path / "results", settings=AriaSettings(ks=(2, 3, 10),
                           headline_k=10, n_groups=200), pool_for=lambda table, ids, train: pool.restrict(ids),
                           progress=False, command="small test")


def test_k_above_the_pool_and_one_query_are_explained_not_flagged(tmp_path):
    table = _runs(tmp_path, {"many": ["q0", "q1", "q2"], "single": ["q0"]}).set_index("method")
    k_note = "K=10 needs more than 10 training tracks; the pool has 6"
    assert table.loc["many", "note"] == k_note
    assert table.loc["single", "note"] == f"{k_note}; one query: inter-query correlation and collapse undefined"
    assert table.loc["single", "rho1"] == 1.0 and not table.loc["single", "collapsed"]  # ρ₁ of one column is 1
    assert np.isnan(table.loc["single", "inter_query_corr"]) and np.isnan(table.loc["many", "rhythm_z"])
    markdown = (tmp_path / "results" / "leaderboard.md").read_text()
    assert "Empty cells (—):" in markdown and f"- single/s: {k_note}; one query" in markdown
    assert "single/s: " in (tmp_path / "results" / "leaderboard.tex").read_text()
    assert "†" not in markdown.split("|---")[1]  # no row flagged collapsed


def test_per_query_table_joins_the_abstention_verdicts(tmp_path):
    run = tmp_path / "runs" / "many" / "s"
    run.mkdir(parents=True)
    pd.DataFrame({"query_id": ["q0", "q2"], "kind": ["near_copy", "noise"], "attributable": [True, False],
                  "abstain_reason": ["", "top score within the reference queries' range"]}).to_csv(
        run / ABSTENTION_FILE, index=False)
    _runs(tmp_path, {"many": ["q0", "q1", "q2"], "other": ["q0", "q1"]})
    per_query = pd.read_csv(run / QUERIES_FILE, keep_default_na=False).drop_duplicates("query_id").set_index(
        "query_id")
    assert per_query.loc["q0", "attributable"] == "True" and per_query.loc["q0", "abstain_reason"] == ""
    assert per_query.loc["q2", "attributable"] == "False"
    assert per_query.loc["q2", "abstain_reason"] == "top score within the reference queries' range"
    assert per_query.loc["q1", "attributable"] == NOT_ASSESSED  # the verdicts do not cover it
    other = pd.read_csv(tmp_path / "runs" / "other" / "s" / QUERIES_FILE, keep_default_na=False)
    assert set(other["attributable"]) == {NOT_ASSESSED} and set(other["abstain_reason"]) == {""}


def test_aria_reads_the_file_groundtruth_writes():
    assert ABSTENTION_FILE == abstention.QUERIES_FILE
