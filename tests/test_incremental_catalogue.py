"""Incremental catalogues (docs/execution.md#incremental-catalogues): a grown catalogue signs only its new tracks,
a takedown leaves every later score and report without recomputing the others, reports name the catalogue
version, and two processes building the same signature store do not corrupt it."""

# ruff: noqa: F811  (pytest fixtures imported from test_lumina_extraction are arguments here)
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from lumina.configure import method_context
from lumina.data.audio import save_audio
from lumina.data.manifest import Manifest
from lumina.methods import get_method
from lumina.methods.lumina import database
from lumina.methods.lumina.attribution import attribute_file, to_markdown
from lumina.methods.lumina.database import build_database, manifest_tracks, read_database
from lumina.methods.lumina.method import database_path, signature_store
from lumina.methods.lumina.scoring import ScoringConfig
from lumina.methods.lumina.signatures import SignatureConfig
from lumina.methods.options import LuminaOptions
from lumina.runs.layout import Layout
from tests.test_lumina_extraction import gen_dir, generator, one_thread  # noqa: F401  (tiny model, one thread)
from tests.tones import SR, tone

CFG = SignatureConfig(chunk_s=1.0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Seven training tones, two queries and two controls."""
    root = tmp_path_factory.mktemp("catalogue")
    for i in range(7):
        save_audio(root / f"t{i}.wav", tone([220 * 2 ** (i / 12), 330 * 2 ** (i / 7)], 2.0, seed=i), SR)
    for name, source, seed in (("q0", 0, 20), ("q1", 3, 21), ("c0", 5, 22), ("c1", 6, 23)):
        save_audio(root / f"{name}.wav", tone([220 * 2 ** (source / 12), 330 * 2 ** (source / 7)], 2.0, seed=seed), SR)
    return root


def catalogue(root: Path, train: list[int]) -> Manifest:
    rows = [(f"t{i}", "train", f"t{i}.wav", ["piano bach", "violin folk"][i % 2]) for i in train]
    rows += [("q0", "query", "q0.wav", "piano bach"), ("q1", "query", "q1.wav", "violin folk"),
             ("c0", "control", "c0.wav", "piano bach"), ("c1", "control", "c1.wav", "violin folk")]
    return Manifest(pd.DataFrame(rows, columns=["track_id", "split", "path", "description"]), root)


def counting(monkeypatch) -> list[str]:
    """The descriptions of the tracks signed from now on (one entry per track_gradients call)."""
    calls: list[str] = []
    original = database.track_gradients
    monkeypatch.setattr(database, "track_gradients", lambda *a, **k: calls.append(a[2]) or original(*a, **k))
    return calls


def run_lumina(manifest: Manifest, model, cache: Path):
    ctx = method_context(manifest, {**LuminaOptions().as_dict(), "chunk_s": 1.0},
                         Layout(cache, cache / "runs", "tiny"), lambda: model, progress=False)
    return {m.setting: m for m in get_method("lumina")(ctx)}


def test_growing_catalogue_signs_only_new_tracks_and_a_takedown_recomputes_nothing(tmp_path, folder, generator,
                                                                                    monkeypatch):
    first = catalogue(folder, [0, 1, 2, 3, 4])
    grown = catalogue(folder, [0, 1, 2, 3, 4, 5, 6])
    taken_down = catalogue(folder, [0, 1, 3, 4, 5, 6])  # t2 removed
    assert len({first.catalogue_key, grown.catalogue_key, taken_down.catalogue_key}) == 3
    calls = counting(monkeypatch)
    before = run_lumina(first, generator, tmp_path)
    assert len(calls) == 9  # 5 training tracks, 2 queries, 2 controls
    after = run_lumina(grown, generator, tmp_path)
    assert len(calls) == 11  # only t5 and t6
    np.testing.assert_array_equal(after["lumina-P"].scores[:5], before["lumina-P"].scores)
    removed = run_lumina(taken_down, generator, tmp_path)
    assert len(calls) == 11  # nothing signed again
    for setting, matrix in removed.items():
        assert "t2" not in matrix.segment_track and matrix.segment_track == taken_down.train_ids
        assert matrix.provenance["signature_database"] == after[setting].provenance["signature_database"]
    keep = [grown.train_ids.index(t) for t in taken_down.train_ids]
    np.testing.assert_array_equal(removed["lumina-P"].scores, after["lumina-P"].scores[keep])

    path = database_path(LuminaOptions(), signature_store(tmp_path, generator))
    db = read_database(path).view(manifest_tracks(taken_down), taken_down.catalogue_key)
    report = attribute_file(folder / "q0.wav", db, ScoringConfig(), description="piano bach", generator=generator)
    assert report["catalogue_key"] == taken_down.catalogue_key
    assert f"catalogue version: `{taken_down.catalogue_key}`" in to_markdown(report)
    assert '"t2"' not in json.dumps(report["channels"]) and '"t5"' in json.dumps(report["channels"])


def test_a_changed_file_under_the_same_id_is_signed_again(tmp_path, folder, generator, monkeypatch):
    tracks = manifest_tracks(catalogue(folder, [0, 1, 2]))
    path = tmp_path / "store.h5"
    old = build_database(path, generator, tracks, CFG, progress=False)
    changed = tmp_path / "t1.wav"
    save_audio(changed, tone([500, 750], 2.0, seed=9), SR)
    tracks[1] = database.Track("t1", "train", changed, tracks[1].description)
    calls = counting(monkeypatch)
    new = build_database(path, generator, tracks, CFG, progress=False)
    assert len(calls) == 1 and new.song_ids == old.song_ids
    assert not np.array_equal(new.signatures["P"][1], old.signatures["P"][1])
    np.testing.assert_array_equal(new.signatures["P"][[0, 2]], old.signatures["P"][[0, 2]])


WRITER = """
import sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from lumina.methods.lumina.database import build_database, manifest_tracks
from lumina.models.musicgen import MusicgenGenerator
from lumina.data.manifest import Manifest
from lumina.methods.lumina.signatures import SignatureConfig
manifest = Manifest.load(sys.argv[2])
build_database(sys.argv[3], MusicgenGenerator.load(sys.argv[1]), manifest_tracks(manifest),
               SignatureConfig(chunk_s=1.0), batch_size=1, progress=False)
"""


def test_two_runs_building_the_same_store_at_once_leave_one_consistent_database(tmp_path, folder, generator):
    manifest = catalogue(folder, [0, 1, 2, 3])
    manifest.save(folder / "manifest.csv")
    reference = build_database(tmp_path / "alone.h5", generator, manifest_tracks(manifest), CFG, progress=False)
    path = tmp_path / "shared.h5"
    root = str(Path(__file__).resolve().parents[1])
    runs = [subprocess.Popen([sys.executable, "-c", WRITER, generator.source, str(folder / "manifest.csv"),
                              str(path)], cwd=root) for _ in range(2)]
    assert [r.wait(timeout=300) for r in runs] == [0, 0]
    shared = read_database(path)
    assert shared.song_ids == reference.song_ids  # each track once
    assert shared.signatures["P"].tobytes() == reference.signatures["P"].tobytes()
    assert not list(tmp_path.glob("shared*.tmp*"))  # no temporary file of either writer is left
    with h5py.File(path, "r") as f:  # every write is stamped: which command and machine signed how many tracks
        writes = json.loads(f.attrs["writes_json"])
    assert writes[0]["rows"] == 0 and sum(w["rows"] for w in writes) == len(shared.song_ids)
    assert all(w["machine"]["processor"] and w["created_utc"] for w in writes)
