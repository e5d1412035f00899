"""The run infrastructure: one owner of the output layout, provenance stamped at write time, thin apps."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lumina.configure import method_context
from lumina.data.manifest import Manifest
from lumina.methods import write_results
from lumina.methods.base import NotConfigured
from lumina.runs import provenance as provenance_module
from lumina.runs.errors import ParameterError
from lumina.runs.layout import Layout, experiment_name
from lumina.runs.provenance import Provenance, relative, stamp
from lumina.runs.score_matrix import ScoreMatrix

REPO = Path(__file__).resolve().parents[1]
LAYOUT_FOLDERS = {"corpus", "codecs", "codes", "models", "signatures", "methods", "numba", "generated", "reports",
                  "runs", "music21_notes"}
"""The folder names `lumina.runs.layout` gives under `outputs/`."""


def _path_joins(tree: ast.AST) -> set[str]:
    """String constants joined onto a path with `/` anywhere in a module."""
    return {side.value for node in ast.walk(tree) if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
            for side in (node.left, node.right) if isinstance(side, ast.Constant) and isinstance(side.value, str)}


def test_only_the_layout_names_the_folders_under_outputs() -> None:
    owner = REPO / "lumina" / "runs" / "layout.py"
    assert LAYOUT_FOLDERS - {"runs", "music21_notes"} <= _path_joins(ast.parse(owner.read_text()))  # the scan sees
    offenders = {}
    for package in ("lumina", "groundtruth", "experiments", "benchmarks", "aria", "execution"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path != owner:
                named = _path_joins(ast.parse(path.read_text())) & LAYOUT_FOLDERS
                if named:
                    offenders[str(path.relative_to(REPO))] = sorted(named)
    assert offenders == {}


def test_apps_stay_thin() -> None:
    long = {p.name: n for p in (REPO / "experiments").glob("*.py") if (n := len(p.read_text().splitlines())) > 110}
    assert long == {}


def test_experiment_name_keys_catalogue_and_generated_queries_apart() -> None:
    assert experiment_name("music21", "5a108f003e9d", "embedded", 0) == "music21-5a108f00-embedded-seed0"
    assert (experiment_name("music21", "5a108f003e9d", "embedded", 3, "0123456789ab")
            == "music21-5a108f00-embedded-seed3-g01234567")
    where = Layout(Path("c"), Path("r"), "x")
    assert where.run_folder("trak", "k") == Path("r/x/trak/k")
    assert where.method_cache("trak") == Path("c/methods/x/trak")


def test_a_section_never_overwrites_the_runs_fields() -> None:
    base = stamp(seed=0, study="s")
    assert base.with_section("method", {"model_hash": "abc"}).record()["method"] == {"model_hash": "abc"}
    with pytest.raises(ParameterError, match="section of its own"):
        base.with_section("seed", {"x": 1})
    with pytest.raises(ParameterError, match=r"\['command'\]"):
        stamp(command="c", **{"config_": 1}).with_section("command", {})
    record = base.with_upstream(model="m1").record()
    assert record["seed"] == 0 and record["upstream"] == {"model": "m1"} and record["package"] == "lumina-aria"


def test_relative_paths_name_no_machine_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert relative(tmp_path / "outputs" / "cache" / "m") == "outputs/cache/m"
    assert relative("/elsewhere/m") == "/elsewhere/m"  # outside the project: as given


def _tiny_manifest(folder: Path) -> Manifest:
    rows = [{"track_id": "t0", "split": "train", "path": "t0.wav"}, {"track_id": "t1", "split": "train",
                                                                     "path": "t1.wav"},
            {"track_id": "q0", "split": "query", "path": "q0.wav"}]
    for row in rows:
        (folder / row["path"]).write_bytes(row["track_id"].encode())
    table = pd.DataFrame(rows)
    Manifest(table, folder).save(folder / "manifest.csv")
    return Manifest.load(folder / "manifest.csv")


def test_runs_are_stamped_when_written_with_their_study_and_manifest(tmp_path, monkeypatch) -> None:
    """The time and machine come from the moment of writing, not from when the context was built; the method's
    fields go under `method`; run.json names the study key, the manifest file and its hash."""
    monkeypatch.chdir(tmp_path)
    manifest = _tiny_manifest(tmp_path)
    where = Layout(tmp_path / "cache", tmp_path / "runs", "tiny-exp")
    monkeypatch.setattr(provenance_module, "utc_now", lambda: "2000-01-01T00:00:00Z")
    ctx = method_context(manifest, {"name": "graddot"}, where, lambda: pytest.fail("no generator needed"),
                         progress=False, data={"name": "tiny"})
    assert ctx.provenance.created_utc == "2000-01-01T00:00:00Z"
    monkeypatch.setattr(provenance_module, "utc_now", lambda: "2001-02-03T04:05:06Z")
    matrix = ScoreMatrix(np.eye(2, 1), ["t0", "t1"], ["q0"], "graddot", "raw", provenance={"seconds_inner": 1.5})
    folders = write_results([matrix, NotConfigured("graddot", "missing", "no checkpoint")], ctx, seconds=2.0)
    record = json.loads((folders[0] / "run.json").read_text())
    prov = record["provenance"]
    assert prov["created_utc"] == "2001-02-03T04:05:06Z" and prov["machine"]["kernels"]
    assert prov["study"] == "tiny-exp" and prov["manifest"] == "manifest.csv"
    assert prov["manifest_sha256"] == manifest.sha256() and prov["catalogue_key"] == manifest.catalogue_key
    assert prov["method"] == {"seconds_inner": 1.5} and prov["config"]["name"] == "graddot"
    assert prov["upstream"]["manifest"] == manifest.sha256() and "model" not in prov["upstream"]  # never loaded
    assert ScoreMatrix.load(folders[0] / "scores.h5").provenance == prov  # the matrix carries the same record
    skipped = json.loads((folders[1] / "run.json").read_text())
    assert skipped["status"] == "not configured" and skipped["provenance"]["study"] == "tiny-exp"
    assert isinstance(ctx.provenance, Provenance)


def test_a_run_folder_is_computed_without_building_a_corpus(tmp_path) -> None:
    from hydra import compose, initialize_config_dir

    from lumina.configure import experiment_runs
    from lumina.runs.errors import CorpusError

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.outputs={tmp_path / 'out'}"])
    with pytest.raises(CorpusError, match="not built yet"):
        experiment_runs(cfg)
    assert not (tmp_path / "out").exists()  # nothing rendered, nothing trained, nothing written
