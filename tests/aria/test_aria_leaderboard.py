"""End to end: a tiny run folder of synthetic score matrices over rendered tracks → diagnostics and leaderboard;
reader errors name the file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from aria.diagnose import AriaSettings
from aria.errors import ArtefactError
from aria.io import read_scores
from aria.leaderboard import leaderboard_columns, run_leaderboard
from tests.aria.artefacts import write_run, write_scores
from tests.aria.music import chord_piece, render

ROOT = Path(__file__).resolve().parents[2]
N_TRAIN, N_QUERY, SEGMENTS = 12, 6, 2


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """12 rendered training tracks (two instruments, two progressions, three tempi), a manifest, and a run
    root with a query-dependent matrix, a rank-1 (collapsed) matrix and a method that is not configured."""
    root = tmp_path_factory.mktemp("experiment")
    rows = []
    for i in range(N_TRAIN):
        program = (0, 24)[i % 2]
        roots = ([0, 5, 7, 0], [0, 9, 2, 7])[(i // 2) % 2]
        bpm = (90, 110, 130)[i % 3]
        render(chord_piece(roots, bpm=bpm, beats_per_chord=2, program=program, transpose=i % 5),
               root / "audio" / f"t{i:02d}.wav", seconds=4.0)
        rows.append({"track_id": f"t{i:02d}", "split": "train", "path": f"audio/t{i:02d}.wav",
                     "collection": "", "instrument_family": ("keyboard", "guitar")[i % 2]})
    for q in range(N_QUERY):
        rows.append({"track_id": f"q{q}", "split": "query", "path": f"audio/q{q}.wav",
                     "collection": ("bach", "folk")[q % 2], "instrument_family": ("keyboard", "guitar")[q % 2]})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)

    rng = np.random.default_rng(0)
    segment_track = [f"t{i:02d}" for i in range(N_TRAIN) for _ in range(SEGMENTS)]
    queries = [f"q{q}" for q in range(N_QUERY)]
    family = np.array([i % 2 for i in range(N_TRAIN) for _ in range(SEGMENTS)])
    good = (family[:, None] == (np.arange(N_QUERY) % 2)[None, :]) + 0.3 * rng.normal(size=(len(family), N_QUERY))
    rank1 = np.outer(rng.normal(size=len(family)), rng.uniform(1, 2, size=N_QUERY))
    runs = root / "runs"
    for method, setting, scores, norm in (("goodmethod", "fine", good, "rank"),
                                          ("flatmethod", "coarse", rank1, "zscore")):
        write_scores(runs / method / setting / "scores.h5", scores, segment_track, queries, method=method,
                     setting=setting, normalization=norm, manifest=manifest)
        write_run(runs / method / setting, {"method": method, "setting": setting, "status": "ok",
                                            "scores": "scores.h5"})
    write_run(runs / "bigmodel" / "default", {"method": "bigmodel", "setting": "default",
                                              "status": "not configured", "reason": "no checkpoint"})
    return {"root": root, "manifest": manifest, "runs": runs, "segment_track": segment_track, "queries": queries}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A feature cache shared by the tests of this module (features are extracted once, in parallel)."""
    return tmp_path_factory.mktemp("cache")


SETTINGS = AriaSettings(ks=(3, 5), headline_k=5, n_groups=200)  # K = 10 would be most of 12 tracks


def test_leaderboard_end_to_end(experiment, cache, tmp_path):
    results = tmp_path / "results"
    table = run_leaderboard(experiment["runs"], results, settings=SETTINGS, cache_dir=cache,
                            workers=2, progress=False, command="python -m experiments.leaderboard test")
    csv = pd.read_csv(results / "leaderboard.csv")
    assert list(csv.columns) == list(leaderboard_columns())
    assert len(csv) == 3 and len(table) == 3
    by = csv.set_index("method")
    assert by.loc["flatmethod", "rho1"] == pytest.approx(1.0, abs=1e-5)
    assert bool(by.loc["flatmethod", "collapsed"]) and not bool(by.loc["goodmethod", "collapsed"])
    assert by.loc["goodmethod", "rank"] == 1 and np.isnan(by.loc["flatmethod", "rank"])
    assert by.loc["bigmodel", "status"] == "not configured: no checkpoint"
    assert np.isnan(by.loc["bigmodel", "rho1"])
    # the good method retrieves one instrument per query: timbre is homogeneous
    assert by.loc["goodmethod", "timbre_z"] > 1.645 and by.loc["goodmethod", "timbre_sig"] > 0.5
    assert (csv["command"] == "python -m experiments.leaderboard test").all()

    markdown = (results / "leaderboard.md").read_text()
    assert "| goodmethod | fine |" in markdown and "coarse †" in markdown and "not configured" in markdown
    assert "python -m experiments.leaderboard test" in markdown
    latex = (results / "leaderboard.tex").read_text()
    assert latex.startswith("% made by: python -m experiments.leaderboard test") and r"\toprule" in latex
    for name in ("energy_spectrum", "ksweep", "residual"):
        assert (results / "figures" / f"{name}.png").stat().st_size > 1000

    run_dir = experiment["runs"] / "goodmethod" / "fine"
    diagnostics = json.loads((run_dir / "aria.json").read_text())
    assert diagnostics["normalization"] == "rank" and diagnostics["n_tracks"] == N_TRAIN
    assert set(diagnostics["homogeneity"]) == {"original", "residual"}
    assert set(diagnostics["confound"]) == {"collection", "instrument_family"}
    assert set(diagnostics["confound"]["instrument_family"]["timbre"]["groups"]) == {"keyboard", "guitar"}
    assert set(diagnostics["alignment"]) == {"rhythm", "harmony", "timbre"}
    per_query = pd.read_csv(run_dir / "aria_queries.csv")
    assert len(per_query) == N_QUERY * 2 * 2  # queries × stages × K
    assert {"rhythm", "harmony", "timbre", "collection"} <= set(per_query.columns)


def test_nulls_are_shared_and_cached(experiment, cache, tmp_path):
    run_leaderboard(experiment["runs"], tmp_path / "r", settings=SETTINGS, cache_dir=cache, progress=False)
    shutil.copytree(cache / "features", tmp_path / "c" / "features")  # the features, not the nulls
    for _ in range(2):
        run_leaderboard(experiment["runs"], tmp_path / "r", settings=SETTINGS, cache_dir=tmp_path / "c",
                        workers=1, progress=False)
    # one pool, two K values: two nulls serve both methods
    assert len(list((tmp_path / "c" / "null").glob("*.json"))) == 2


def test_a_matrix_with_tracks_the_manifest_lacks_is_named(experiment, tmp_path):
    runs = tmp_path / "runs"
    bad = write_scores(runs / "m" / "s" / "scores.h5", np.ones((2, 2)), ["t00", "stranger"], ["q0", "q1"],
                       method="m", setting="s", normalization="zscore", manifest=experiment["manifest"])
    write_run(runs / "m" / "s", {"status": "ok"})
    with pytest.raises(ArtefactError, match=f"{bad}.*manifest {experiment['manifest']}.*stranger"):
        run_leaderboard(runs, tmp_path / "r", settings=SETTINGS, cache_dir=tmp_path / "c", progress=False)


def test_a_matrix_without_a_manifest_asks_for_one(tmp_path):
    runs = tmp_path / "runs"
    write_scores(runs / "m" / "s" / "scores.h5", np.ones((2, 2)), ["a", "b"], ["q0", "q1"], method="m",
                 setting="s", normalization="zscore", manifest=None)
    write_run(runs / "m" / "s", {"status": "ok"})
    with pytest.raises(ArtefactError, match="aria.manifest"):
        run_leaderboard(runs, tmp_path / "r", settings=SETTINGS, cache_dir=tmp_path / "c", progress=False)


def test_an_empty_run_root_is_an_error(tmp_path):
    with pytest.raises(ArtefactError, match="no run.json"):
        run_leaderboard(tmp_path, tmp_path / "r", progress=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.__delitem__("query_ids"), "missing dataset `query_ids`"),
        (lambda f: f.attrs.__setitem__("orientation", "query x train"), "orientation"),
        (lambda f: f.attrs.__setitem__("normalization", "minmax"), "normalization"),
        (lambda f: f["scores"].__setitem__((0, 0), np.nan), "NaN"),
    ],
)
def test_reader_names_the_file_and_the_problem(tmp_path, change, message):
    path = write_scores(tmp_path / "scores.h5", np.ones((3, 2)), ["a", "a", "b"], ["q0", "q1"], method="m",
                        setting="s", normalization="zscore", manifest=None)
    with h5py.File(path, "a") as f:
        change(f)
    with pytest.raises(ArtefactError, match=message) as info:
        read_scores(path)
    assert str(path) in str(info.value)


def test_reader_rejects_a_file_that_is_not_hdf5(tmp_path):
    path = tmp_path / "scores.h5"
    path.write_text("hello")
    with pytest.raises(ArtefactError, match="not a readable HDF5"):
        read_scores(path)


@pytest.mark.skipif(not (ROOT / "conf" / "data" / "music21.yaml").exists(), reason="the data config is not there")
def test_hydra_app_runs(experiment, cache, tmp_path):
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth is not installed")
    cmd = [sys.executable, "-m", "experiments.leaderboard", f"leaderboard.runs={experiment['runs']}",
           f"leaderboard.results={tmp_path / 'results'}", f"aria.cache={cache}", "aria.n_groups=100",
           "aria.ks=[3,5]", "aria.headline_k=5", "progress=false", f"hydra.run.dir={tmp_path / 'hydra'}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    csv = pd.read_csv(tmp_path / "results" / "leaderboard.csv")
    assert sorted(csv["method"]) == ["bigmodel", "flatmethod", "goodmethod"]
    assert csv["command"].iloc[0].startswith("python -m experiments.leaderboard leaderboard.runs=")
