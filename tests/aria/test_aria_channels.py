"""Channel sets as data: the audio default, the registry, validation, and a five-channel symbolic set passed
through homogeneity, residual, alignment and the leaderboard without changing `aria`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from aria.channels import AUDIO, CHANNEL_SETS, ChannelSet, get_channel_set
from aria.diagnose import AriaSettings, Pool, diagnose
from aria.errors import ParameterError
from aria.extract import FeatureTable
from aria.features import FeatureSettings
from aria.homogeneity import homogeneity
from aria.io import read_scores
from aria.leaderboard import leaderboard_columns, run_leaderboard
from tests.aria.artefacts import write_run, write_scores

# --- the audio default -------------------------------------------------------------------------------------


def test_audio_is_todays_set_and_the_default_of_the_registry():
    assert AUDIO.names == ("rhythm", "harmony", "timbre")
    assert AUDIO.channels == {"rhythm": ("beat_intervals", "onset_intervals"),
                              "harmony": ("chroma", "tonnetz", "chords"), "timbre": ("mfcc", "cqt")}
    assert AUDIO.sequences == ("chords",)
    assert {k for f, k in AUDIO.similarity.items() if f != "chords"} == {"euclidean"}
    assert AUDIO.titles == {"rhythm": "Rhythmic", "harmony": "Harmonic", "timbre": "Timbral"}
    assert CHANNEL_SETS["audio"] is AUDIO and get_channel_set("audio") is AUDIO
    assert set(CHANNEL_SETS) == {"audio", "symbolic"}  # the symbolic set: docs/symbolic.md#channels


def test_the_audio_leaderboard_keeps_its_columns():
    assert leaderboard_columns() == (
        "method", "setting", "status", "rho1", "rho2_5", "concentration", "inter_query_corr", "collapsed",
        "rhythm_z", "rhythm_pos", "rhythm_sig", "harmony_z", "harmony_pos", "harmony_sig",
        "timbre_z", "timbre_pos", "timbre_sig", "rank", "note", "command")


def test_an_unknown_set_names_the_known_ones():
    with pytest.raises(ParameterError, match=r"unknown channel set 'midi'.*\['audio', 'symbolic'\]"):
        get_channel_set("midi")


@pytest.mark.parametrize(
    ("channels", "similarity", "titles", "message"),
    [
        ({}, {}, {}, "at least one channel"),
        ({"two words": ("a",)}, {"a": "lcs"}, {"two words": "T"}, "not an identifier"),
        ({"c": ()}, {}, {"c": "C"}, "non-empty sequence"),
        ({"c": "ab"}, {"a": "lcs"}, {"c": "C"}, "non-empty sequence"),
        ({"c": ("a", "a")}, {"a": "lcs"}, {"c": "C"}, "repeated"),
        ({"c": ("a", "b")}, {"a": "lcs"}, {"c": "C"}, r"missing \['b'\]"),
        ({"c": ("a",)}, {"a": "lcs", "z": "lcs"}, {"c": "C"}, r"unknown \['z'\]"),
        ({"c": ("a",)}, {"a": "cosine"}, {"c": "C"}, "cosine"),
        ({"c": ("a",)}, {"a": "lcs"}, {"d": "D"}, "titles"),
    ],
)
def test_a_malformed_set_is_a_parameter_error(channels, similarity, titles, message):
    with pytest.raises(ParameterError, match=message):
        ChannelSet("bad", channels, similarity, titles)


def test_restrict_drops_missing_features_and_empty_channels():
    assert AUDIO.restrict(AUDIO.features) is AUDIO
    timbre_only = AUDIO.restrict(["mfcc", "cqt", "chroma"])
    assert timbre_only.channels == {"harmony": ("chroma",), "timbre": ("mfcc", "cqt")}
    assert timbre_only.titles == {"harmony": "Harmonic", "timbre": "Timbral"}
    assert timbre_only != AUDIO and timbre_only == AUDIO.restrict(["cqt", "mfcc", "chroma"])
    with pytest.raises(ParameterError, match="none of its features"):
        AUDIO.restrict(["pitch"])


# --- a symbolic set with five channels ---------------------------------------------------------------------

SYMBOLIC = ChannelSet(
    name="symbolic",
    channels={"melody": ("contour", "intervals"), "harmony": ("progression",), "rhythm": ("ioi",),
              "dynamic": ("velocity",), "texture": ("polyphony", "register")},
    similarity={"contour": "euclidean", "intervals": "precomputed", "progression": "precomputed",
                "ioi": "precomputed", "velocity": "euclidean", "polyphony": "precomputed",
                "register": "precomputed"},
    titles={"melody": "Melodic", "harmony": "Harmonic", "rhythm": "Rhythmic", "dynamic": "Dynamic",
            "texture": "Textural"},
)
CLUSTER = np.array([0, 0, 0, 1, 1, 1])  # tracks 0-2 form cluster A, tracks 3-5 cluster B
TRACKS = [f"t{i}" for i in range(6)]
# similarity of two distinct tracks per feature: (both in A, both in B, across the clusters)
RULES = {"contour": (1.0, 1.0, 0.0), "intervals": (0.5, 0.5, 0.3), "progression": (0.6, 0.6, 0.2),
         "ioi": (0.0, 0.0, 1.0), "velocity": (0.9, 0.3, 0.1), "polyphony": (1.0, 0.5, 0.0),
         "register": (0.4, 0.8, 0.4)}
# s̄ of each channel (mean over its features of the mean pair similarity) for the groups the tests meet:
# A and B within one cluster, X2 = {0, 3} (one pair across), X3 = {0, 2, 3} (one pair in A, two across)
HAND = {
    "melody": {"A": 0.75, "B": 0.75, "X2": 0.15, "X3": (1 / 3 + 1.1 / 3) / 2},
    "harmony": {"A": 0.6, "B": 0.6, "X2": 0.2, "X3": 1 / 3},
    "rhythm": {"A": 0.0, "B": 0.0, "X2": 1.0, "X3": 2 / 3},
    "dynamic": {"A": 0.9, "B": 0.3, "X2": 0.1, "X3": 1.1 / 3},
    "texture": {"A": 0.7, "B": 0.65, "X2": 0.2, "X3": (1 / 3 + 0.4) / 2},
}


def _sims() -> dict[str, np.ndarray]:
    same = CLUSTER[:, None] == CLUSTER[None, :]
    out = {}
    for feature, (in_a, in_b, across) in RULES.items():
        sim = np.where(same, np.where(CLUSTER[:, None] == 0, in_a, in_b), across)
        np.fill_diagonal(sim, 1.0)
        out[feature] = sim.astype(np.float32)
    return out


AXIS = np.array([2.0, 2, 2, 1, 1, 1])  # the dominant track axis of the `flat` matrix below


def _pool() -> Pool:
    rng = np.random.default_rng(0)
    velocity = np.column_stack([AXIS, rng.normal(size=(6, 3))])
    vectors = {"contour": rng.normal(size=(6, 4)), "velocity": velocity}
    features = FeatureTable(TRACKS, vectors, {}, [f"{i:064x}" for i in range(6)], np.zeros(6), FeatureSettings())
    return Pool(features, {}, _sims(), None, SYMBOLIC)


def test_homogeneity_of_the_symbolic_set_by_hand():
    T = np.array([[6, 1.0, 1], [5, -1, 2], [4, 0.1, 3], [3, 0.9, 6], [2, -1, 5], [1, 0, 4]])
    # K = 2: q0 → {0, 1} (A), q1 → {0, 3} (X2), q2 → {3, 4} (B); K = 3: A, X3 = {0, 3, 2}, B
    null = {"mu": 0.5, "sigma": 0.25}
    out = homogeneity(T, _sims(), [2, 3], lambda k: {"channels": dict.fromkeys(SYMBOLIC.names, null),
                                                     "features": dict.fromkeys(RULES, null)},
                      channel_set=SYMBOLIC)
    for k, groups in ((2, ("A", "X2", "B")), (3, ("A", "X3", "B"))):
        assert list(out[k]["channels"]) == list(SYMBOLIC.names)
        for channel, z in out[k]["channels"].items():
            expected = [(HAND[channel][g] - 0.5) / 0.25 for g in groups]
            np.testing.assert_allclose(z, expected, atol=1e-6, err_msg=f"{channel} at K = {k}")
    dynamic = [4 * 0.9 - 2, 4 * 1.1 / 3 - 2, 4 * 0.3 - 2]  # A, X3, B: 1.6, -0.53, -0.8; none above 1.645
    assert out[3]["summary"]["dynamic"] == {"z_mean": pytest.approx(np.mean(dynamic), abs=1e-6),
                                            "pos": pytest.approx(1 / 3), "sig": 0.0, "n": 3}


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


# `flat`: a strong axis preferring cluster A for both queries, plus a weak component that separates the
# clusters with opposite signs per query: the original groups are all A, the residual ones A and B.
FLAT = 10 * np.outer(_unit(AXIS), _unit([1, 1])) + np.outer(_unit([1, 1, 1, -2, -2, -2]), _unit([1, -1]))
# `clean`: two orthogonal zero-mean columns, singular values 1 and 0.9: q0 retrieves A, q1 the pair {0, 3}
CLEAN = np.column_stack([_unit([1, 1, 1, -1, -1, -1]), 0.9 * _unit([1, -1, 0, 1, -1, 0])])


def _segments(T: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Two identical segments per track."""
    return np.repeat(T, 2, axis=0), [t for t in TRACKS for _ in range(2)]


def test_diagnose_runs_residual_and_alignment_on_the_symbolic_set(tmp_path):
    scores, segment_track = _segments(FLAT)
    path = write_scores(tmp_path / "scores.h5", scores, segment_track, ["q0", "q1"], method="flat",
                        setting="s", normalization="zscore", manifest=None)
    settings = AriaSettings(ks=(2, 3), headline_k=3, n_groups=300)
    diagnostics, per_query = diagnose(read_scores(path), _pool(), settings)
    assert list(per_query.columns) == ["query_id", "stage", "k", *SYMBOLIC.names]
    assert diagnostics["reliability"]["rho1"] == pytest.approx(100 / 101, abs=1e-5)
    for stage, groups in (("original", ("A", "A")), ("residual", ("A", "B"))):
        rows = per_query[(per_query["stage"] == stage) & (per_query["k"] == 3)]
        for channel in SYMBOLIC.names:
            null = diagnostics["null"]["3"]["channels"][channel]
            expected = [(HAND[channel][g] - null["mu"]) / null["sigma"] for g in groups]
            np.testing.assert_allclose(rows[channel], expected, rtol=1e-5, atol=1e-5, err_msg=f"{stage} {channel}")
        assert set(diagnostics["homogeneity"][stage]["3"]["channels"]) == set(SYMBOLIC.names)
    # alignment: only the channels with vector features; the axis is the first dimension of `velocity`
    assert set(diagnostics["alignment"]) == {"melody", "dynamic"}
    dynamic = diagnostics["alignment"]["dynamic"]
    assert dynamic["r_max"] == pytest.approx(1.0)
    assert (dynamic["r_max_feature"], dynamic["r_max_dim"]) == ("velocity", 0)


def test_the_leaderboard_reports_exactly_the_symbolic_channels(tmp_path):
    runs = tmp_path / "runs"
    manifest = tmp_path / "manifest.csv"
    rows = [{"track_id": t, "split": "train", "path": f"midi/{t}.mid"} for t in TRACKS]
    pd.DataFrame(rows + [{"track_id": "q0", "split": "query", "path": "midi/q0.mid"},
                         {"track_id": "q1", "split": "query", "path": "midi/q1.mid"}]).to_csv(manifest, index=False)
    for method, T in (("flat", FLAT), ("clean", CLEAN)):
        scores, segment_track = _segments(T)
        write_scores(runs / method / "s" / "scores.h5", scores, segment_track, ["q0", "q1"], method=method,
                     setting="s", normalization="zscore", manifest=manifest)
        write_run(runs / method / "s", {"status": "ok"})
    pool = _pool()
    seen = []

    def pool_for(table: pd.DataFrame, track_ids: list[str], train: list[str]) -> Pool:
        seen.append((track_ids, train))
        return pool.restrict(track_ids)

    settings = AriaSettings(ks=(2, 3), headline_k=3, n_groups=300)
    table = run_leaderboard(runs, tmp_path / "results", settings=settings, channel_set=SYMBOLIC,
                            pool_for=pool_for, progress=False, command="symbolic test")
    assert seen == [(TRACKS, TRACKS)]  # one manifest, one pool
    csv = pd.read_csv(tmp_path / "results" / "leaderboard.csv")
    channel_columns = [f"{c}_{s}" for c in ("melody", "harmony", "rhythm", "dynamic", "texture")
                       for s in ("z", "pos", "sig")]
    assert list(csv.columns) == ["method", "setting", "status", "rho1", "rho2_5", "concentration",
                                 "inter_query_corr", "collapsed", *channel_columns, "rank", "note", "command"]
    assert list(table.columns) == list(csv.columns)
    by = csv.set_index("method")
    # reliability by hand: singular values 10 and 1 (flat), 1 and 0.9 with zero-mean orthogonal columns (clean)
    assert by.loc["flat", "rho1"] == pytest.approx(100 / 101, abs=1e-5) and bool(by.loc["flat", "collapsed"])
    assert by.loc["clean", "rho1"] == pytest.approx(1 / 1.81, abs=1e-5)
    assert by.loc["clean", "rho2_5"] == pytest.approx(0.81 / 1.81, abs=1e-5)
    assert by.loc["clean", "concentration"] == pytest.approx(0.0, abs=1e-6)
    assert by.loc["clean", "inter_query_corr"] == pytest.approx(0.0, abs=1e-6)
    assert by.loc["clean", "rank"] == 1 and np.isnan(by.loc["flat", "rank"])
    # homogeneity at K = 3: clean's q0 retrieves A, q1 the group {0, 3, 2} (X3); z against the run's null
    null = json.loads((runs / "clean" / "s" / "aria.json").read_text())["null"]["3"]["channels"]
    for channel in SYMBOLIC.names:
        z = np.array([(HAND[channel][g] - null[channel]["mu"]) / null[channel]["sigma"] for g in ("A", "X3")])
        assert by.loc["clean", f"{channel}_z"] == pytest.approx(z.mean(), rel=1e-5, abs=1e-5), channel
        assert by.loc["clean", f"{channel}_pos"] == np.mean(z > 0), channel
        assert by.loc["clean", f"{channel}_sig"] == np.mean(z > 1.645), channel
    markdown = (tmp_path / "results" / "leaderboard.md").read_text()
    assert all(f"{t} z̄" in markdown for t in SYMBOLIC.titles.values())
    latex = (tmp_path / "results" / "leaderboard.tex").read_text()
    assert latex.count(r"\multicolumn{3}{c}") == 5 and r"\cmidrule(lr){19-21}" in latex
    for name in ("energy_spectrum", "ksweep", "residual"):
        assert (tmp_path / "results" / "figures" / f"{name}.png").stat().st_size > 1000


def test_a_pool_of_another_set_is_refused(tmp_path):
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame([{"track_id": t, "path": f"{t}.mid"} for t in TRACKS]).to_csv(manifest, index=False)
    scores, segment_track = _segments(CLEAN)
    write_scores(tmp_path / "runs" / "m" / "s" / "scores.h5", scores, segment_track, ["q0", "q1"], method="m",
                 setting="s", normalization="zscore", manifest=manifest)
    write_run(tmp_path / "runs" / "m" / "s", {"status": "ok"})
    with pytest.raises(ParameterError, match="'symbolic', the leaderboard reports 'audio'"):
        run_leaderboard(tmp_path / "runs", tmp_path / "r", pool_for=lambda *_: _pool(), progress=False)


def test_pools_of_other_sets_have_their_own_nulls():
    pool = _pool()
    other = Pool(pool.features, {}, pool.sims, None, SYMBOLIC.restrict(["contour", "ioi"]))
    assert pool.fingerprint != other.fingerprint
    assert set(other.null(2, 50, 0)["channels"]) == {"melody", "rhythm"}
