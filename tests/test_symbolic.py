"""The symbolic domain on tiny files the tests write: event round trips (pedal-free MIDI included), the five
channels' features against hand-computed values, the generator's loss against a hand-written cross-entropy,
the LDS sign from real subset retraining, and loading a MIDI folder and a dattri checkpoint directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch
from dattri.benchmark.models.MusicTransformer.midi_processor.processor import decode_midi, encode_midi

from aria.symbolic import FEATURES, read_notes, window_features
from groundtruth.lds import lds_per_query
from groundtruth.study import last_step_losses
from lumina.configure import model_loader
from lumina.data.corpus import build_corpus
from lumina.data.midi import EventTokenizer, decode_events, encode_notes, quantise, read_midi
from lumina.models.codes import encode_tracks
from lumina.models.generate import GenerationSettings, generate_queries
from lumina.models.music_transformer import ArchConfig, MusicTransformerGenerator, build_model
from lumina.models.protocol import Item
from lumina.models.training import checkpoint_curve
from lumina.runs.errors import CheckpointError, CorpusError

TINY_ARCH = {"n_layers": 1, "num_heads": 2, "d_model": 16, "dim_feedforward": 32, "max_sequence": 64, "rpr": True}


def write_score(path, notes, pedal=False):
    """A one-instrument MIDI file of (start s, end s, pitch, velocity) rows, as music21 writes them: no pedal."""
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e) for s, e, p, v in notes]
    if pedal:
        piano.control_changes = [pretty_midi.ControlChange(64, 0, 0.0)]
    midi.instruments.append(piano)
    midi.write(str(path))
    return path


def test_events_by_hand():
    # C4 0–0.5 s and E4 0.5–1 s at velocity 80 (bin 20): one velocity event, 50-step shifts, off before on
    notes = quantise(np.array([0.0, 0.5]), np.array([0.5, 1.0]), np.array([60, 64]), np.array([80, 81]))
    assert encode_notes(notes).tolist() == [356 + 20, 60, 256 + 49, 128 + 60, 64, 256 + 49, 128 + 64]
    assert decode_events(encode_notes(notes)).tolist() == [[0, 50, 60, 80], [50, 100, 64, 80]]


def test_pedal_free_midi_round_trip(tmp_path):
    rows = [(0.0, 1.0, 60, 64), (0.0, 1.0, 64, 64), (0.0, 2.3, 67, 100), (1.0, 1.5, 72, 40), (3.5, 4.0, 48, 40)]
    path = write_score(tmp_path / "score.mid", rows)
    assert encode_midi(str(path)) == []  # dattri's encoder drops every note of a file without pedal events
    events = EventTokenizer().read(path)
    notes = decode_events(events)
    by_start = sorted(rows, key=lambda r: (r[0], r[2]))
    expected = [[round(s * 100), round(e * 100), p, v // 4 * 4] for s, e, p, v in by_start]
    assert notes.tolist() == expected
    assert encode_notes(notes).tolist() == events.tolist()  # decoding and encoding again is the identity
    # the same events mean the same notes in dattri's own decoder (the vocabulary is the benchmark's)
    theirs = sorted((round(n.start * 100), round(n.end * 100), n.pitch, n.velocity)
                    for n in decode_midi(events.tolist()).instruments[0].notes)
    assert [list(t) for t in theirs] == sorted(expected)
    long_gap = quantise(np.array([0.0, 2.5]), np.array([0.1, 2.6]), np.array([60, 60]), np.array([80, 80]))
    assert decode_events(encode_notes(long_gap)).tolist() == long_gap.tolist()  # 2.4 s: three shift events


def test_unison_notes_sound_once():
    notes = quantise(np.array([0.0, 0.0, 0.5]), np.array([1.0, 0.8, 1.5]), np.array([60, 60, 60]),
                     np.array([40, 80, 60]))
    assert notes.tolist() == [[0, 50, 60, 80], [50, 150, 60, 60]]


def test_channel_features_by_hand(tmp_path):
    # soprano C5 D5 E5 (quarters, 0.5 s) over a held C4 + G4 (1.5 s); velocities 60, 80, 100 on the soprano
    rows = [(0.0, 0.5, 72, 60), (0.5, 1.0, 74, 80), (1.0, 1.5, 76, 100), (0.0, 1.5, 60, 40), (0.0, 1.5, 67, 40)]
    notes = read_notes(write_score(tmp_path / "hand.mid", rows))
    f = window_features(notes)
    assert set(f) == set(FEATURES)
    melody = np.zeros(13)
    melody[2] = 1.0  # the top voice moves by two whole tones
    np.testing.assert_allclose(f["melodic_intervals"], melody)
    pcs = np.zeros(12)
    pcs[[0, 2, 4, 7]] = [0.4, 0.2, 0.2, 0.2]  # C twice (C4, C5), D, E, G of five notes
    np.testing.assert_allclose(f["pitch_classes"], pcs)
    vertical = np.zeros(12)
    # onset 0: {60, 67, 72} → 7, 0, 5; onset 0.5: {60, 67, 74} → 7, 2, 7; onset 1.0: {60, 67, 76} → 7, 4, 9
    for interval in (7, 0, 5, 7, 2, 7, 7, 4, 9):
        vertical[interval] += 1 / 9
    np.testing.assert_allclose(f["vertical_intervals"], vertical)
    np.testing.assert_allclose(f["rhythm_summary"], [5 / 1.5, (0.5 * 3 + 1.5 * 2) / 5])  # notes/s, mean s
    # three quarters; two dotted halves (3 quarters: the last bin, [3, inf))
    np.testing.assert_allclose(f["rhythmic_values"], [0, 0, 0.6, 0, 0.4])
    # onset mean velocities (60+40+40)/3, 80, 100 (only the soprano starts there): changes 100/3 and 20
    np.testing.assert_allclose(f["dynamics"], [(100 / 3 + 20) / 2, 60])
    np.testing.assert_allclose(f["polyphony"], [3.0, 3.0])
    np.testing.assert_allclose(f["pitch_range"], [16])


def tiny_generator(seed=0):
    return MusicTransformerGenerator(build_model(ArchConfig(**TINY_ARCH), seed))


def test_training_loss_is_the_hand_written_cross_entropy():
    generator = tiny_generator()
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 388, 12), rng.integers(0, 388, 7)
    items = [Item(a[None], ""), Item(b[None], "")]
    losses = generator.loss_module()(**generator.collate(items))
    with torch.no_grad():
        for loss, seq in zip(losses, (a, b), strict=True):
            x = torch.from_numpy(seq)[None]
            logp = torch.log_softmax(generator.model(x[:, :-1])[0], dim=-1)  # dattri's own forward
            reference = -logp[torch.arange(len(seq) - 1), x[0, 1:]].mean()
            assert float(loss) == pytest.approx(float(reference), rel=1e-5)
        last = last_step_losses(generator, {"a": a[None], "b": b[None]}, {"a": "", "b": ""}, ["a", "b"])
        x = torch.from_numpy(b)[None]
        logp = torch.log_softmax(generator.model(x[:, :-1])[0, -1], dim=-1)
        assert last[1] == pytest.approx(-float(logp[b[-1]]), rel=1e-5)  # the benchmark's last-token target


def midi_folder(root, n_pieces=6, maestro=False):
    """`n_pieces` two-voice pieces of ten beats as `piece<i>.mid`, or (maestro) in MAESTRO's layout: year
    folders of `.midi` files with sustain-pedal events beside a metadata CSV that is not MIDI."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(n_pieces):
        start = np.repeat(np.arange(10) * 0.25, 2)
        pitch = 60 + rng.integers(0, 12, len(start)) + np.tile([0, 12], 10)
        notes = [(s, s + 0.25, int(p), 80) for s, p in zip(start, pitch, strict=True)]
        if maestro:
            (root / str(2017 + i % 2)).mkdir(exist_ok=True)
            write_score(root / str(2017 + i % 2) / f"MIDI-Unprocessed_{i:02d}.midi", notes, pedal=True)
        else:
            write_score(root / f"piece{i}.mid", notes)
    if maestro:
        (root / "maestro-v3.0.0.csv").write_text("canonical_composer,midi_filename\n")
    return root


def symbolic_config(folder, **extra):
    return {"name": "tiny", "builder": "symbolic", "source": "folder", "path": str(folder), "seed": 0,
            "synthetic_velocity": True, "window": 48, "queries": {"near_copy": 2, "composition": 2, "held_out": 1},
            "jitter_ticks": 2, "jitter_velocity_bins": 1, "max_transpose": 5, "generated_dir": None, **extra}


def test_midi_folder_corpus(tmp_path):
    folder = midi_folder(tmp_path / "maestro-v3.0.0", maestro=True)  # a local MAESTRO copy's layout
    manifest = build_corpus(symbolic_config(folder), tmp_path / "cache", threads=1, progress=False)
    tokenizer = EventTokenizer()
    lengths = [tokenizer.read(manifest.path_of(t)).size for t in manifest.table["track_id"]]
    assert max(lengths) <= 48 and len(manifest.train_ids) >= 5  # one piece is held out
    # every .midi file under the year folders is a piece, labelled by its folder; the metadata CSV is not
    assert set(manifest.table["piece"]) == {f"MIDI-Unprocessed_{i:02d}" for i in range(6)}
    assert set(manifest.table["collection"].astype(str)) == {"2017", "2018"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="holds no .mid/.midi files"):
        build_corpus(symbolic_config(tmp_path / "empty"), tmp_path / "cache", threads=1, progress=False)
    kinds = manifest.table.set_index("track_id")["query_kind"]
    for q in manifest.query_ids:
        if kinds[q] == "composition":  # the transposed window: the source's notes moved by `transpose`
            source = read_midi(manifest.path_of(manifest.sources_of(q)[0]))
            moved = read_midi(manifest.path_of(q))
            shift = int(manifest.row(q)["transpose"])
            assert moved[:, 2].tolist() == (source[: len(moved), 2] + shift).tolist()
        if kinds[q] == "near_copy":  # same pitches, timing within ±2 ticks
            source = read_midi(manifest.path_of(manifest.sources_of(q)[0]))
            copy = read_midi(manifest.path_of(q))
            assert sorted(copy[:, 2].tolist()) == sorted(source[: len(copy), 2].tolist())


def test_generated_windows_are_reproducible_recorded_and_join_the_corpus_as_queries(tmp_path):
    folder = midi_folder(tmp_path / "midi")
    manifest = build_corpus(symbolic_config(folder), tmp_path / "cache", threads=1, progress=False)
    generator = tiny_generator()
    settings = GenerationSettings(count=2, primer=16, length=32, seed=3)  # the primer carries notes
    first = generate_queries(generator, manifest, tmp_path / "a", settings, progress=False)
    again = generate_queries(generator, manifest, tmp_path / "b", settings, progress=False)
    names = ["generated_00.mid", "generated_01.mid"]
    assert [(first / n).read_bytes() for n in names] == [(again / n).read_bytes() for n in names]  # same bytes
    record = json.loads((tmp_path / "a" / "generated.json").read_text())
    held = manifest.table.loc[manifest.table["query_kind"] == "held_out", "track_id"].tolist()
    assert record["model_identity"] == generator.identity() and record["settings"]["seed"] == 3
    assert [r["variant"] for r in record["rows"]] == [f"primed with {held[0]}", f"primed with {held[1 % len(held)]}"]
    assert record["decoder"] == "midi-events" and "temperature" in record["settings"]
    with_generated = build_corpus(symbolic_config(folder, generated_dir=str(tmp_path / "a")), tmp_path / "cache",
                                  threads=1, progress=False)
    kinds = with_generated.table["query_kind"].tolist()
    assert kinds.count("generated") == 2 and with_generated.train_ids == manifest.train_ids
    write_score(tmp_path / "a" / "generated_02.mid", [])  # a sample without notes: a clear error naming it
    with pytest.raises(CorpusError, match="generated_02.mid: holds no notes"):
        build_corpus(symbolic_config(folder, generated_dir=str(tmp_path / "a")), tmp_path / "cache", threads=1,
                     progress=False)

def test_lds_sign_from_subset_retraining(tmp_path):
    """Windows trained on have lower loss: scoring each training window's query copy by membership of itself
    gives a positive LDS, its negation a negative one."""
    folder = midi_folder(tmp_path / "midi", n_pieces=4)
    manifest = build_corpus(symbolic_config(folder, queries={}), tmp_path / "cache", threads=1, progress=False)
    model = {"name": "tiny", "kind": "musictransformer", "path": None, "seed": 0, "arch": TINY_ARCH,
             "train": {"epochs": 30, "batch_size": 4, "lr": 0.01, "warmup_steps": 5, "checkpoints": 1}}
    load = model_loader(model, manifest, tmp_path / "cache", progress=False)
    train = manifest.train_ids
    rng = np.random.default_rng(0)
    subsets = [sorted(rng.choice(len(train), len(train) // 2, replace=False)) for _ in range(6)]
    membership = np.zeros((len(subsets), len(train)), dtype=bool)
    losses = []
    for m, subset in enumerate(subsets):
        membership[m, subset] = True
        generator = load([train[i] for i in subset])
        losses.append([generator.record["clip_losses"][t] for t in train])
    losses = np.array(losses)
    tau = np.eye(len(train))  # each window (as a query) attributed to itself only
    assert lds_per_query(tau, membership, losses).mean() > 0.5
    assert lds_per_query(-tau, membership, losses).mean() < -0.5


def test_checkpoint_curve_ends_at_the_final_weights_and_puts_them_back(tmp_path):
    folder = midi_folder(tmp_path / "midi", n_pieces=4)
    manifest = build_corpus(symbolic_config(folder), tmp_path / "cache", threads=1, progress=False)
    model = {"name": "tiny", "kind": "musictransformer", "path": None, "seed": 0, "arch": TINY_ARCH,
             "train": {"epochs": 6, "batch_size": 4, "lr": 0.01, "warmup_steps": 2, "checkpoints": 3}}
    generator = model_loader(model, manifest, tmp_path / "cache", progress=False)()
    before = {k: v.clone() for k, v in generator.model.state_dict().items()}
    ids = manifest.table["track_id"].tolist()
    codes = encode_tracks(generator.codec, manifest, ids, tmp_path / "cache", progress=False)
    curve = checkpoint_curve(generator, manifest, codes, dict.fromkeys(ids, ""), manifest.train_ids)
    assert [row["checkpoint"] for row in curve] == [Path(p).name for p, _ in generator.checkpoints()]
    assert len(curve) == 3 and curve[0]["train"] > curve[-1]["train"]  # training lowered the loss
    final = {k: v for k, v in curve[-1].items() if k != "checkpoint"}
    assert final == pytest.approx(generator.record["loss_by_group"], abs=2e-4)  # the last checkpoint is the end
    assert all(torch.equal(before[k], v) for k, v in generator.model.state_dict().items())

def test_dattri_checkpoint_directory_loads(tmp_path):
    original = build_model(ArchConfig(**TINY_ARCH), seed=3)
    folder = tmp_path / "benchmark" / "maestro_musictransformer" / "models_full" / "0"
    folder.mkdir(parents=True)
    torch.save(original.state_dict(), folder / "model_weights_0.pt")
    loaded = MusicTransformerGenerator.load(folder)
    assert loaded.arch() == ArchConfig(**TINY_ARCH)
    x = torch.randint(0, 388, (1, 20))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), original(x))
    config = {"name": "dattri", "kind": "musictransformer", "path": str(folder)}
    assert model_loader(config, None, tmp_path, progress=False)().identity() == loaded.identity()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="model_weights_0.pt"):
        MusicTransformerGenerator.load(tmp_path / "empty")
