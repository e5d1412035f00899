"""LUMINA signatures, the signature database, the method's score matrices and the attribution report,
on the tiny 4-layer generator (P = layer 3, M = layer 1) and tones written by the tests."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

import lumina.methods.lumina.database as database
from lumina.configure import method_context
from lumina.data.audio import save_audio
from lumina.data.manifest import Manifest
from lumina.methods import get_method
from lumina.methods.lumina.attribution import attribute_file, database_generator, saved_model, write_report
from lumina.methods.lumina.database import Track, build_database, open_database, read_database
from lumina.methods.lumina.scoring import ScoringConfig, cosine_scores
from lumina.methods.lumina.signatures import (
    SignatureConfig,
    Skipped,
    channel_tensors,
    default_layers,
    jl_vectors,
    signature,
    smart3_windows,
    statistic_report,
    stats_vector,
    tensor_statistics,
    track_gradients,
    track_windows,
)
from lumina.methods.options import LuminaOptions
from lumina.models.capture import capture_gradients
from lumina.models.musicgen import MusicgenGenerator
from lumina.runs.errors import CheckpointError, ParameterError
from lumina.runs.layout import Layout
from tests.generator_fixtures import tiny_generator
from tests.tones import SR, tone

ROOT = Path(__file__).resolve().parents[1]
CFG = SignatureConfig(chunk_s=1.0)  # the tiny model takes at most 256 frames (5 s)
N_TONES = 10


def run_python(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine two threads can be ten times slower (same bits either way)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory) -> Path:
    return tiny_generator().save(tmp_path_factory.mktemp("tiny") / "generator")


@pytest.fixture(scope="module")
def generator(gen_dir) -> MusicgenGenerator:
    return MusicgenGenerator.load(gen_dir)


@pytest.fixture(scope="module")
def tracks(tmp_path_factory) -> list[Track]:
    """Ten 2 s tones, a silent file and a corrupt one (all `train`)."""
    folder = tmp_path_factory.mktemp("audio")
    out = []
    for i in range(N_TONES):
        save_audio(folder / f"t{i}.wav", tone([220 * 2 ** (i / 12), 330 * 2 ** (i / 7)], 2.0, seed=i), SR)
        out.append(Track(f"t{i}", "train", folder / f"t{i}.wav", ["piano bach", "violin folk"][i % 2]))
    save_audio(folder / "silent.wav", np.zeros(2 * SR, dtype=np.float32), SR)
    (folder / "corrupt.wav").write_bytes(b"not audio at all")
    out += [Track("silent", "train", folder / "silent.wav", "piano bach"),
            Track("corrupt", "train", folder / "corrupt.wav", "piano bach")]
    return out


@pytest.fixture(scope="module")
def clean_db(tmp_path_factory, generator, tracks):
    return build_database(tmp_path_factory.mktemp("db") / "clean.h5", generator, tracks, CFG, progress=False)


# -- signatures ----------------------------------------------------------------------------------------
def test_layer_ranges_by_hand():
    assert default_layers(48) == (list(range(42, 48)), list(range(12, 18)))
    assert default_layers(12) == ([10, 11], [3])
    assert default_layers(24) == ([21, 22, 23], [6, 7, 8])
    assert default_layers(4) == ([3], [1])


def test_channel_tensors_of_each_split(generator):
    def labels(split, **kw):
        return {c: [label for label, _ in t] for c, t in
                channel_tensors(generator, SignatureConfig(channel_split=split, **kw)).items()}

    layers = labels("layers")
    assert layers["P"][0] == "layers.3.self_attn.in_proj" and layers["P"][-1] == "layers.3.linear2"
    assert len(layers["P"]) == len(layers["M"]) == 6 and layers["M"][0].startswith("layers.1.")
    tensors = labels("tensors")
    assert [t.split(".", 2)[2] for t in tensors["P"]] == ["self_attn.in_proj", "self_attn.out_proj",
                                                           "cross_attention.in_proj", "cross_attention.out_proj"]
    assert tensors["M"] == ["layers.1.linear1", "layers.1.linear2"]
    heads = labels("heads")
    assert heads["P"] == [f"layers.{i}.{t}" for i in range(4) for t in ("self_attn.in_proj", "self_attn.out_proj")]
    assert heads["M"] == [f"lm_heads.{k}" for k in range(4)]
    assert labels("layers", p_layers=(0, 2), m_layers=(1,))["P"][6] == "layers.2.self_attn.in_proj"
    with pytest.raises(ParameterError):
        channel_tensors(generator, SignatureConfig(p_layers=(9,)))


def test_tensor_statistics_by_hand():
    # x = [1, 2, 3, 10]: mean 4, m2 = 12.5, m3 = 45, skewness = 45 / 12.5^1.5
    got = tensor_statistics(np.array([[1.0, 2.0], [3.0, 10.0]], dtype=np.float32))
    np.testing.assert_allclose(got, [4.0, math.sqrt(12.5), math.sqrt(114.0), 10.0, 1.0, 45 / 12.5**1.5], rtol=1e-12)
    assert tensor_statistics(np.full(5, 2.0)).tolist() == [2.0, 0.0, math.sqrt(20.0), 2.0, 2.0, 0.0]
    both = stats_vector([np.array([1.0, 2.0, 3.0, 10.0]), np.full(5, 2.0)])
    assert both.shape == (12,) and both[3] == 10.0 and both[6] == 2.0


def test_jl_block_by_block_equals_the_whole_matrix():
    rng = np.random.default_rng(5)
    sets = [[rng.standard_normal((100, 90)).astype(np.float32), rng.standard_normal(300).astype(np.float32)]
            for _ in range(2)]
    # the whole matrix: per tensor position p, an (n_p, dim) N(0, 1/dim) block from default_rng([seed, p])
    whole = np.vstack([np.random.default_rng([7, p]).standard_normal((n, 16), dtype=np.float32) / np.float32(4.0)
                       for p, n in enumerate((9000, 300))])
    got = jl_vectors(sets, dim=16, seed=7)
    for i, s in enumerate(sets):
        flat = np.concatenate([t.ravel() for t in s]).astype(np.float64)
        np.testing.assert_allclose(got[i], flat @ whole, rtol=1e-4, atol=1e-3)
    assert np.array_equal(jl_vectors(sets[1:], dim=16, seed=7)[0], got[1])  # a track's vector ignores the batch
    assert not np.allclose(jl_vectors(sets[:1], dim=16, seed=8)[0], got[0])


def test_chunks_tail_and_energy_filter():
    loud = tone([300.0], 1.0)
    quiet = (10 ** (-60 / 20) * np.sqrt(2) * np.sin(np.arange(SR) / SR * 2 * np.pi * 200)).astype(np.float32)
    assert track_windows(np.concatenate([loud, quiet, loud]), SR, CFG)["P"] == [(0, SR), (2 * SR, 3 * SR)]
    long = tone([300.0], 2.5)
    assert track_windows(long, SR, CFG)["P"] == [(0, SR), (SR, 2 * SR)]  # a 0.5 s tail is shorter than 1 s
    assert track_windows(long, SR, SignatureConfig(chunk_s=1.0, min_chunk_s=0.5))["M"][-1] == (2 * SR, 80000)
    skipped = track_windows(np.concatenate([quiet, quiet]), SR, CFG)
    assert isinstance(skipped, Skipped) and "-50 dBFS energy floor" in skipped.reason and "-60.0 dBFS" in skipped.reason


def test_signature_is_the_statistics_of_chunk_averaged_weighted_gradients(generator):
    audio = tone([250.0, 375.0], 2.0, seed=3)
    got = signature(generator, audio, "violin folk", CFG)
    tensors = channel_tensors(generator, CFG)
    names = [n for c in ("P", "M") for _, parts in tensors[c] for n in parts]
    per_chunk = []
    for start in (0, SR):
        codes = torch.from_numpy(generator.codec.encode(audio[start : start + SR]))[None]
        per_chunk.append(capture_gradients(generator, codes, ["violin folk"], names,
                                           codebook_weights=[0.4, 1.2, 1.3, 1.4]))
    for c in ("P", "M"):
        stats = []
        for _, parts in tensors[c]:
            grad = sum(torch.cat([g[n] for n in parts], dim=0) for g in per_chunk) / 2
            stats.append(tensor_statistics(grad.numpy()))
        expected = np.concatenate(stats)
        assert got[c].shape == (36,) and got[c].dtype == np.float32
        np.testing.assert_allclose(got[c], expected / np.linalg.norm(expected), rtol=1e-4, atol=1e-6)
    unweighted = signature(generator, audio, "violin folk", SignatureConfig(chunk_s=1.0, codebook_weighting="none"))
    assert not np.allclose(unweighted["P"], got["P"], atol=1e-4)
    full = track_gradients(generator, audio, "violin folk", CFG, capture=list(generator.trainable_parameters()))
    truncated = track_gradients(generator, audio, "violin folk", CFG)
    assert full.tokens == truncated.tokens == 2 * 4 * 50
    for a, b in zip(full.tensors["P"], truncated.tensors["P"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-8)


def test_smart3_puts_one_window_in_each_section():
    rng = np.random.default_rng(0)
    audio = np.concatenate([tone([110.0, 165.0], 2.0, seed=1), 0.1 * rng.standard_normal(2 * SR).astype(np.float32),
                            tone([880.0, 1320.0], 2.0, seed=2)])
    windows = smart3_windows(audio, SR, 1.0)
    assert len(windows) == 3 and all(b - a == SR for a, b in windows)
    assert [int((a + b) / 2 // (2 * SR)) for a, b in windows] == [0, 1, 2]
    assert smart3_windows(audio[: SR // 2], SR, 1.0) == [(0, SR // 2)]


def test_other_channel_splits_and_smart3_sign_end_to_end(generator):
    audio = np.concatenate([tone([220.0], 1.5, seed=1), tone([660.0, 990.0], 1.5, seed=2)])
    heads = signature(generator, audio, "flute bach", SignatureConfig(chunk_s=1.0, channel_split="heads"))
    assert heads["P"].shape == (48,) and heads["M"].shape == (24,)  # 4 layers x 2 tensors; 4 output heads
    tensors = signature(generator, audio, "flute bach", SignatureConfig(chunk_s=1.0, channel_split="tensors"))
    assert tensors["P"].shape == (24,) and tensors["M"].shape == (12,)
    plain = signature(generator, audio, "flute bach", CFG)
    smart = track_gradients(generator, audio, "flute bach", SignatureConfig(chunk_s=1.0, segments="smart3"))
    assert smart.windows["P"] == [(0, SR), (SR, 2 * SR), (2 * SR, 3 * SR)] and len(smart.windows["M"]) == 3
    assert smart.windows["M"] != smart.windows["P"] and smart.tokens == 2 * 3 * 4 * 50
    smart_sig = signature(generator, audio, "flute bach", SignatureConfig(chunk_s=1.0, segments="smart3"))
    assert np.array_equal(smart_sig["P"], plain["P"]) and not np.allclose(smart_sig["M"], plain["M"], atol=1e-4)


def test_statistic_report_by_hand():
    a = np.zeros(12)
    a[[0, 5]] = 1.0  # mean and skewness of tensor 0
    b = np.zeros(12)
    b[5] = 2.0  # skewness of tensor 0
    report = statistic_report(np.stack([a, b]))
    assert report["statistic_share"]["mean"] == 0.25 and report["statistic_share"]["skewness"] == 0.75
    assert report["statistic_share"]["std"] == 0.0
    assert math.isclose(report["mean_cosine"]["all"], 1 / math.sqrt(2))
    assert report["mean_cosine"]["without_skewness"] == 0.0


# -- database ------------------------------------------------------------------------------------------
def test_database_rows_skips_and_provenance(clean_db, generator):
    assert clean_db.song_ids == [f"t{i}" for i in range(N_TONES)]
    assert clean_db.signatures["P"].shape == (N_TONES, 36) and clean_db.signatures["M"].shape == (N_TONES, 36)
    np.testing.assert_allclose(np.linalg.norm(clean_db.signatures["P"], axis=1), 1.0, rtol=1e-6)
    reasons = {t: r for t, _, r in clean_db.skipped}
    assert set(reasons) == {"silent", "corrupt"}
    assert "energy floor" in reasons["silent"] and "corrupt.wav" in reasons["corrupt"]
    with h5py.File(clean_db.path, "r") as f:
        assert f.attrs["model_hash"] == generator.identity() and f.attrs["mode"] == "stats"
        assert f.attrs["chunk_s"] == 1.0 and f.attrs["jl_seed"] == 422024 and f.attrs["package_version"]
        assert f.attrs["codebook_weights"].tolist() == [0.4, 1.2, 1.3, 1.4]
        assert f.attrs["p_layers_resolved"].tolist() == [3] and f.attrs["m_layers_resolved"].tolist() == [1]
        assert set(f) >= {"signatures_p", "signatures_m", "song_ids"}


def test_database_appends_and_refuses_other_settings(tmp_path, generator, tracks, clean_db, monkeypatch):
    calls = []
    original = database.track_gradients
    monkeypatch.setattr(database, "track_gradients", lambda *a, **k: calls.append(a[2]) or original(*a, **k))
    path = tmp_path / "grow.h5"
    first = build_database(path, generator, tracks[:3], CFG, progress=False)
    grown = build_database(path, generator, tracks[:5], CFG, progress=False)
    assert len(calls) == 5  # three, then only the two new ones
    assert grown.song_ids == [f"t{i}" for i in range(5)]
    assert np.array_equal(grown.signatures["P"][:3], first.signatures["P"])
    assert np.array_equal(grown.signatures["M"], clean_db.signatures["M"][:5])
    with pytest.raises(ParameterError, match=r"other settings.*mode: 'stats' in the database, 'jl' now"):
        build_database(path, generator, tracks[:5], SignatureConfig(chunk_s=1.0, mode="jl"), progress=False)
    with pytest.raises(ParameterError, match="chunk_s"):
        open_database(path, database.database_provenance(generator, SignatureConfig(chunk_s=2.0)))
    assert read_database(path).song_ids == grown.song_ids  # the refused runs changed nothing


def test_a_track_with_nan_gradients_is_skipped_naming_its_file(tmp_path, generator, tracks, clean_db, monkeypatch):
    """NaN audio cannot reach the model (load_audio refuses it), so break the model for the second track (t1)
    instead: tracks are signed in order."""
    original = database.track_gradients
    head = generator.model.decoder.lm_heads[0].weight
    calls = []

    def poisoned(gen, audio, text, config, **kwargs):
        calls.append(text)
        if len(calls) != 2:
            return original(gen, audio, text, config, **kwargs)
        with torch.no_grad():
            saved = head.clone()
            head.fill_(float("nan"))
        try:
            return original(gen, audio, text, config, **kwargs)
        finally:
            with torch.no_grad():
                head.copy_(saved)

    monkeypatch.setattr(database, "track_gradients", poisoned)
    db = build_database(tmp_path / "nan.h5", generator, tracks[:3], CFG, progress=False)
    assert db.song_ids == ["t0", "t2"]
    reasons = {t: r for t, _, r in db.skipped}
    assert list(reasons) == ["t1"] and "t1.wav" in reasons["t1"] and "non-finite gradient" in reasons["t1"]
    assert np.array_equal(db.signatures["P"], clean_db.signatures["P"][[0, 2]])  # the model was restored


CHILD = """
import sys
import time
from pathlib import Path
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[3]))
from lumina.data.audio import load_audio
from lumina.methods.lumina.database import Track, build_database
from lumina.models.musicgen import MusicgenGenerator
from lumina.methods.lumina.signatures import SignatureConfig, signature
generator = MusicgenGenerator.load(sys.argv[1])
tracks = [Track(*line.split("|")) for line in Path(sys.argv[2]).read_text().splitlines()]
tracks = [Track(t.track_id, t.split, Path(t.path), t.description) for t in tracks]
out = {}
for mode in ("stats", "jl"):
    sig = signature(generator, load_audio(tracks[0].path, 32000), "piano bach", SignatureConfig(chunk_s=1.0, mode=mode))
    out.update({f"{mode}_{c}": v for c, v in sig.items()})
np.savez(sys.argv[4] + ".tmp.npz", **out)
Path(sys.argv[4] + ".tmp.npz").replace(sys.argv[4])
while not Path(sys.argv[5] + ".go").exists():  # the test says when to start building
    time.sleep(0.01)
build_database(sys.argv[5], generator, tracks, SignatureConfig(chunk_s=1.0), batch_size=1, progress=False)
"""


@pytest.fixture(scope="module", autouse=True)
def child(one_thread, tmp_path_factory, gen_dir, tracks):
    """A second process that signs t0 (stats and jl) into an .npz, then, once `<db>.go` exists, builds the
    database one track at a time; started with the module's first test, so that its start-up overlaps the
    other tests. It runs the parent's one torch thread (`one_thread` first): signatures are bit-identical across
    processes at one thread count, not across thread counts."""
    folder = tmp_path_factory.mktemp("child")
    listing = folder / "tracks.txt"
    listing.write_text("\n".join(f"{t.track_id}|{t.split}|{t.path}|{t.description}" for t in tracks))
    npz, db = folder / "t0.npz", folder / "killed.h5"
    process = run_python(CHILD, str(gen_dir), str(listing), str(torch.get_num_threads()), str(npz), str(db))
    yield process, npz, db
    if process.poll() is None:
        process.kill()
        process.communicate()


def wait_for(condition, process: subprocess.Popen, seconds: float = 300.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None and not condition():
            raise AssertionError(f"the child process stopped early: {process.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("the child process took too long")
        time.sleep(0.02)


def test_same_audio_gives_bit_identical_signatures_in_two_processes(child, generator, tracks, clean_db):
    process, npz, _ = child
    from lumina.data.audio import load_audio

    jl = signature(generator, load_audio(tracks[0].path, SR), "piano bach", SignatureConfig(chunk_s=1.0, mode="jl"))
    wait_for(npz.exists, process)
    theirs = np.load(npz)
    for c in ("P", "M"):
        assert theirs[f"stats_{c}"].tobytes() == clean_db.signatures[c][0].tobytes()
        assert theirs[f"jl_{c}"].tobytes() == jl[c].tobytes() and jl[c].shape == (512,)


def committed_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with h5py.File(path, "r", locking=False) as f:
        return f["song_ids"].shape[0]


def test_database_resumes_after_a_kill(child, generator, tracks, clean_db, monkeypatch):
    process, _, path = child
    Path(str(path) + ".go").touch()
    wait_for(lambda: committed_rows(path) >= 3, process)
    process.send_signal(signal.SIGKILL)  # at whatever point of the next track it has reached
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    survived = read_database(path)
    assert 3 <= len(survived.song_ids) < N_TONES
    assert survived.song_ids == [f"t{i}" for i in range(len(survived.song_ids))]
    calls = []
    original = database.track_gradients
    monkeypatch.setattr(database, "track_gradients", lambda *a, **k: calls.append(a[2]) or original(*a, **k))
    resumed = build_database(path, generator, tracks, CFG, progress=False)
    assert len(calls) == N_TONES - len(survived.song_ids) + 1  # the rest, plus the silent file (corrupt: no audio)
    assert resumed.song_ids == clean_db.song_ids and resumed.skipped == clean_db.skipped
    for c in ("P", "M"):  # rows made by the killed process are bit-identical to this process's
        assert np.array_equal(resumed.signatures[c], clean_db.signatures[c])


# -- the method and the report --------------------------------------------------------------------------
def test_a_database_loads_its_own_model_through_the_one_builder(tmp_path, tracks, generator, clean_db):
    manifest = Manifest(pd.DataFrame([(t.track_id, t.split, t.path.name, t.description) for t in tracks],
                                     columns=["track_id", "split", "path", "description"]), tracks[0].path.parent)
    loaded = database_generator(clean_db, manifest, tmp_path)
    assert type(loaded) is MusicgenGenerator and loaded.identity() == generator.identity()
    assert saved_model(generator.source)["kind"] == "pretrained"  # a MusicGen directory
    (tmp_path / "mt").mkdir()
    (tmp_path / "mt" / "config.json").write_text(json.dumps({"kind": "musictransformer", "num_layers": 2}))
    assert saved_model(tmp_path / "mt") == {"kind": "musictransformer", "name": "mt", "path": str(tmp_path / "mt")}
    changed = dataclasses.replace(clean_db, provenance={**clean_db.provenance, "model_hash": "another"})
    with pytest.raises(CheckpointError, match="has changed since the database was made"):
        database_generator(changed, manifest, tmp_path)


def test_yaml_defaults_are_the_spec_defaults():
    options = LuminaOptions().as_dict()
    assert options["name"] == "lumina"
    assert SignatureConfig.from_options(options) == SignatureConfig()
    assert ScoringConfig.from_options(options) == ScoringConfig()


def test_method_writes_six_unclipped_matrices(tmp_path, tracks, generator, clean_db, monkeypatch):
    folder = tracks[0].path.parent
    for name, source, seed in (("q0", 0, 20), ("q1", 3, 21), ("c0", 7, 22), ("c1", 8, 23)):
        save_audio(folder / f"{name}.wav", tone([220 * 2 ** (source / 12), 330 * 2 ** (source / 7)], 2.0, seed=seed),
                   SR)
    rows = [(t.track_id, t.split, t.path.name, t.description) for t in tracks]
    rows += [("q0", "query", "q0.wav", "piano bach"), ("q1", "query", "q1.wav", "violin folk"),
             ("c0", "control", "c0.wav", "piano bach"), ("c1", "control", "c1.wav", "violin folk")]
    manifest = Manifest(pd.DataFrame(rows, columns=["track_id", "split", "path", "description"]), folder)
    db_path = tmp_path / "signatures.h5"
    shutil.copyfile(clean_db.path, db_path)
    options = LuminaOptions().as_dict()
    options |= {"chunk_s": 1.0, "database": str(db_path)}
    calls = []
    original = database.track_gradients
    monkeypatch.setattr(database, "track_gradients", lambda *a, **k: calls.append(a[2]) or original(*a, **k))
    ctx = method_context(manifest, options, Layout(tmp_path, tmp_path / "runs", "tiny"), lambda: generator,
                         progress=False)
    matrices = get_method("lumina")(ctx)
    assert len(calls) == 4  # only the queries and controls were new
    assert [m.setting for m in matrices] == ["lumina-P", "lumina-P-kr", "lumina-M", "lumina-M-kr", "lumina-PM",
                                             "lumina-PM-kr"]
    assert [m.normalization for m in matrices] == ["zscore", "rank"] * 3
    db = read_database(db_path)
    train = [f"t{i}" for i in range(N_TONES)]
    for m in matrices:
        assert m.scores.shape == (N_TONES, 2) and m.segment_track == train and m.query_ids == ["q0", "q1"]
        assert m.level == "track" and "silent" in json.dumps(m.provenance["skipped"])
    expected = cosine_scores(db.matrix("P", "train"), db.matrix("P", "query"))
    np.testing.assert_allclose(matrices[0].scores, expected, rtol=1e-6)
    assert (np.concatenate([m.scores.ravel() for m in matrices]) < 0).any()  # never clipped
    shares = matrices[0].provenance["signature_statistics"]["P"]["statistic_share"]
    assert math.isclose(sum(shares.values()), 1.0)

    report = attribute_file(folder / "q0.wav", db, ScoringConfig(), description="piano bach", generator=generator)
    assert report["model_id"] == str(Path(generator.source)) and report["n_train"] == N_TONES
    evidence = {m.setting: m.tables["lumina_evidence"] for m in matrices}
    assert {s: list(dict.fromkeys(t["channel"])) for s, t in evidence.items()} == {
        f"lumina-{c}{kind}": list(c) for c in ("P", "M", "PM") for kind in ("", "-kr")}
    for c in ("P", "M"):
        rows = report["channels"][c]["rows"]
        assert [r["rank"] for r in rows] == list(range(1, N_TONES + 1))
        assert [r["cosine"] for r in rows] == sorted((r["cosine"] for r in rows), reverse=True)
        total = sum(r["share"] for r in rows)
        assert math.isclose(total, 1.0) or total == 0.0
        # the run's evidence of q0 is the attribution report's tier, confidence and share of every track
        mine = evidence["lumina-PM"].query("query_id == 'q0' and channel == @c").set_index("track_id")
        assert sorted(mine.index) == sorted(r["track_id"] for r in rows)
        for r in rows:
            assert mine.at[r["track_id"], "tier"] == r["tier"]
            assert mine.at[r["track_id"], "confidence"] == pytest.approx(r["confidence"], rel=1e-9, abs=1e-12)
            assert mine.at[r["track_id"], "share"] == pytest.approx(r["share"], rel=1e-9, abs=1e-12)
    monkeypatch.chdir(tmp_path)  # the project: recorded paths below it are relative
    json_path, md_path = write_report(report, tmp_path / "report", command="python -m experiments.attribute q0.wav")
    written = json.loads(json_path.read_text())
    assert written["channels"]["M"]["rows"] == rows
    recorded = written["provenance"]
    assert recorded["command"] == "python -m experiments.attribute q0.wav" and recorded["database"] == "signatures.h5"
    assert recorded["model_hash"] == generator.identity() and recorded["catalogue_key"] == report["catalogue_key"]
    assert recorded["upstream"]["database"] == hashlib.sha256(db_path.read_bytes()).hexdigest()
    assert recorded["machine"]["processor"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", recorded["created_utc"])
    text = md_path.read_text()
    assert "Channel P (composition)" in text and "| rank | track | cosine |" in text and "silent" in text
    assert "made by: `python -m experiments.attribute q0.wav`" in text
