"""Corpus builders: the embedded music21 corpus (design, determinism, caching, missing tools) and data=folder
(validation of a user's files, metadata, caching, bad input)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from lumina.data import folder
from lumina.data.corpus import build_corpus, corpus_dir
from lumina.data.manifest import QUERY_KINDS, Manifest
from lumina.data.music21_corpus import drop_quiet
from lumina.data.music21_pieces import note_coverage, parse_piece, unusable_reason
from lumina.data.plan import check_design
from lumina.data.render import quiet_fraction
from lumina.runs.errors import CorpusError, ParameterError
from tests.conftest import REPO, data_config

SR = 32000


def audio_hashes(manifest: Manifest) -> dict[str, str]:
    """SHA-256 of each track's audio file, by track id."""
    return {t: hashlib.sha256(manifest.path_of(t).read_bytes()).hexdigest() for t in manifest.table["track_id"]}


def rows(manifest: Manifest, split: str) -> pd.DataFrame:
    return manifest.table[manifest.table["split"] == split].set_index("track_id")


# --- the embedded corpus: design -------------------------------------------------------------------------------

def test_split_sizes_and_ids(tiny_corpus: Manifest) -> None:
    table = tiny_corpus.table
    assert table["split"].value_counts().to_dict() == {"train": 12, "query": 18, "control": 4}
    assert tiny_corpus.train_ids == [f"t{i:04d}" for i in range(12)]
    kinds = table.loc[table["split"] == "query", "query_kind"].value_counts().to_dict()
    assert kinds == {"near_copy": 7, "composition": 4, "production": 2, "held_out": 2, "sample": 1,
                     "out_of_domain": 2}
    assert set(kinds) == set(QUERY_KINDS) - {"generated"}  # generated queries come from a trained model
    for track_id, kind in table.loc[table["split"] == "query", ["track_id", "query_kind"]].itertuples(index=False):
        assert re.fullmatch(rf"q_{kind}_\d\d", track_id)


def test_audio_files_are_exact_length(tiny_corpus: Manifest) -> None:
    for track_id in tiny_corpus.table["track_id"]:
        info = sf.info(str(tiny_corpus.path_of(track_id)))
        assert (info.samplerate, info.channels, info.frames) == (SR, 1, 3 * SR), track_id
        audio, _ = sf.read(str(tiny_corpus.path_of(track_id)))
        assert quiet_fraction(audio, SR) <= 0.2 and np.abs(audio).max() <= 0.98 + 1e-4
    assert (tiny_corpus.table["duration_s"] == 3.0).all()
    assert (tiny_corpus.table["sample_rate"] == SR).all()


def test_training_design(tiny_corpus: Manifest, tiny_music21_cfg: dict) -> None:
    train = rows(tiny_corpus, "train")
    assert train.groupby("piece").size().eq(2).all() and train["piece"].nunique() == 6
    assert train.groupby("piece")["program"].nunique().eq(2).all(), "two renderings, two programs"
    assert set(train["program"]) <= set(tiny_music21_cfg["train_programs"])
    assert train["program"].value_counts().max() - train["program"].value_counts().min() <= 1
    assert set(train["tempo_factor"]) <= set(tiny_music21_cfg["tempo_factors"])
    assert (train["transpose"] == 0).all() and (train["offset_s"].astype(float) == 0).all()
    for row in train.itertuples():
        words = tiny_music21_cfg["collections"][row.collection]
        assert row.description == f"{row.instrument} {words}"
        assert re.fullmatch(r"[a-z0-9 ]+", row.description)
        assert row.piece.startswith(f"{row.collection}/")


def test_sample_query_holds_its_source_excerpt(tiny_corpus: Manifest) -> None:
    """The pasted seconds of a sample query are the source track's, up to level (correlation ~1 inside the fades);
    the rest of the query is another piece (low correlation with the source at the same cut)."""
    row = tiny_corpus.row("q_sample_00")
    length, start, at = (float(x) for x in re.fullmatch(r"(\S+)s from (\S+)s at (\S+)s", row.variant).groups())
    query, _ = sf.read(str(tiny_corpus.path_of("q_sample_00")))
    (source_id,) = tiny_corpus.sources_of("q_sample_00")
    source, _ = sf.read(str(tiny_corpus.path_of(source_id)))
    fade = int(0.05 * SR)
    inside = query[int(at * SR) + fade:int((at + length) * SR) - fade]
    original = source[int(start * SR) + fade:int((start + length) * SR) - fade]
    assert np.corrcoef(inside, original)[0, 1] > 0.999
    outside = np.r_[query[:int(at * SR)], query[int((at + length) * SR):]][:original.shape[0]]
    assert abs(np.corrcoef(outside, original[:outside.shape[0]])[0, 1]) < 0.5
    assert row.split == "query" and source_id in tiny_corpus.train_ids


def test_out_of_domain_queries_have_no_source(tiny_corpus: Manifest) -> None:
    rows_ = tiny_corpus.table[tiny_corpus.table["query_kind"] == "out_of_domain"]
    assert rows_["variant"].tolist() == ["white_noise", "speech"]
    assert (rows_["source_ids"] == "").all() and (rows_["piece"] == "").all()
    assert rows_["description"].tolist() == ["white noise", "speech"]


def test_query_sources_point_at_training_tracks(tiny_corpus: Manifest) -> None:
    train_ids = set(tiny_corpus.train_ids)
    for query_id in tiny_corpus.query_ids:
        sources = tiny_corpus.sources_of(query_id)
        kind = tiny_corpus.row(query_id)["query_kind"]
        assert set(sources) <= train_ids
        assert (len(sources) == 0) == (kind in ("held_out", "out_of_domain")), query_id
        assert tiny_corpus.row(query_id)["variant"], query_id
    assert all(not tiny_corpus.sources_of(c) for c in tiny_corpus.control_ids)


def test_near_copies_change_the_mix_of_one_training_track(tiny_corpus: Manifest, tiny_music21_cfg: dict) -> None:
    queries = rows(tiny_corpus, "query")
    near = queries[queries["query_kind"] == "near_copy"]
    assert list(near["variant"]) == tiny_music21_cfg["near_copy_variants"]
    for query_id, query in near.iterrows():
        (source_id,) = tiny_corpus.sources_of(query_id)
        source = tiny_corpus.row(source_id)
        for column in ("piece", "program", "transpose", "description"):
            assert query[column] == source[column], (query_id, column)
        scale = {"tempo+3%": 1.03, "tempo-3%": 0.97}.get(query.variant, 1.0)
        assert query.tempo_factor == pytest.approx(source.tempo_factor * scale)
        shift = 3.0 if query.variant == "offset+3s" else 0.0
        assert float(query.offset_s) == float(source.offset_s) + shift
        audio, _ = sf.read(str(tiny_corpus.path_of(query_id)))
        original, _ = sf.read(str(tiny_corpus.path_of(source_id)))
        assert not np.array_equal(audio, original), query_id
        if query.variant == "noise":  # 20 dB SNR: the same waveform under a little noise
            assert np.corrcoef(audio, original)[0, 1] > 0.95


def test_composition_queries_share_the_piece_not_the_instrument(tiny_corpus: Manifest,
                                                                 tiny_music21_cfg: dict) -> None:
    train = rows(tiny_corpus, "train")
    queries = rows(tiny_corpus, "query")
    composition = queries[queries["query_kind"] == "composition"]
    assert list(composition["variant"]) == tiny_music21_cfg["composition_variants"]
    for query_id, query in composition.iterrows():
        sources = train.loc[tiny_corpus.sources_of(query_id)]
        assert sorted(sources.index) == sorted(train.index[train["piece"] == query.piece])
        assert query.program in tiny_music21_cfg["train_programs"]
        assert query.program not in set(sources["program"])
        expected_transpose = {"instrument+transpose+2": 2, "instrument+transpose-2": -2}.get(query.variant, 0)
        assert query["transpose"] == expected_transpose
        if query.variant == "instrument+tempo":
            assert query.tempo_factor not in set(sources["tempo_factor"]) or sources["tempo_factor"].nunique() == 3


def test_production_queries_share_program_and_tempo(tiny_corpus: Manifest) -> None:
    train = rows(tiny_corpus, "train")
    queries = rows(tiny_corpus, "query")
    for query_id, query in queries[queries["query_kind"] == "production"].iterrows():
        same = train.index[(train["program"] == query.program) & (train["tempo_factor"] == query.tempo_factor)]
        assert sorted(tiny_corpus.sources_of(query_id)) == sorted(same) and len(same) > 0
        assert query.piece not in set(train["piece"])


def test_held_out_and_control_are_unseen(tiny_corpus: Manifest, tiny_music21_cfg: dict) -> None:
    train = rows(tiny_corpus, "train")
    queries = rows(tiny_corpus, "query")
    unseen = pd.concat([queries[queries["query_kind"] == "held_out"], rows(tiny_corpus, "control")])
    assert not set(unseen["piece"]) & set(train["piece"])
    assert not set(unseen["program"]) & set(train["program"])
    other = queries[queries["query_kind"].isin(["production", "held_out"])]
    assert other["piece"].nunique() == len(other), "every unseen piece is used once"


# --- the embedded corpus: determinism and caching ----------------------------------------------------------------

def test_same_seed_gives_identical_audio_in_another_process(tiny_corpus: Manifest, tiny_music21_cfg: dict,
                                                             corpus_cache: Path, tmp_path: Path) -> None:
    """A fresh process with one worker renders the same bytes (it reads the session's parsed scores: the rendering,
    seeded, is what could differ; music21's parse of a file is the same in any process)."""
    for parsed in (corpus_cache / "corpus").glob("music21-scores-*"):
        (tmp_path / "corpus").mkdir(exist_ok=True)
        (tmp_path / "corpus" / parsed.name).symlink_to(parsed)
    script = (
        "import json, sys\n"
        "from lumina.data.corpus import build_corpus\n"
        "manifest = build_corpus(json.loads(sys.argv[1]), sys.argv[2], threads=1, progress=False)\n"
        "print(manifest.root)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", script, json.dumps(tiny_music21_cfg), str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    other = Manifest.load(Path(done.stdout.strip().splitlines()[-1]) / "manifest.csv")
    assert audio_hashes(other) == audio_hashes(tiny_corpus)
    assert other.sha256() == tiny_corpus.sha256()
    assert other.catalogue_key == tiny_corpus.catalogue_key and re.fullmatch(r"[0-9a-f]{12}", other.catalogue_key)


def test_another_seed_gives_another_corpus(tiny_corpus: Manifest, tiny_music21_cfg: dict,
                                           corpus_cache: Path) -> None:
    other = build_corpus(dict(tiny_music21_cfg, seed=1), corpus_cache, threads=2, progress=False)
    assert other.root != tiny_corpus.root
    hashes, reference = audio_hashes(other), audio_hashes(tiny_corpus)
    assert len(hashes) == len(reference)
    assert not set(hashes.values()) & set(reference.values())
    assert other.catalogue_key != tiny_corpus.catalogue_key
    assert set(rows(other, "train")["piece"]) != set(rows(tiny_corpus, "train")["piece"])


def test_cached_corpus_is_reused_and_an_interrupted_build_resumed(tiny_corpus: Manifest, tiny_music21_cfg: dict,
                                                                   corpus_cache: Path, tmp_path: Path) -> None:
    # on a copy of the session's tiny corpus (other tests read it meanwhile), its parsed scores shared
    cache = tmp_path / "cache"
    shutil.copytree(tiny_corpus.root, cache / "corpus" / tiny_corpus.root.name, copy_function=shutil.copy2)
    for parsed in (corpus_cache / "corpus").glob("music21-scores-*"):
        (cache / "corpus" / parsed.name).symlink_to(parsed)
    copy = build_corpus(tiny_music21_cfg, cache, threads=2, progress=False)
    assert copy.root == cache / "corpus" / tiny_corpus.root.name and copy.sha256() == tiny_corpus.sha256()
    hashes = audio_hashes(copy)
    assert hashes == audio_hashes(tiny_corpus)
    stamps = {t: copy.path_of(t).stat().st_mtime_ns for t in hashes}
    again = build_corpus(tiny_music21_cfg, cache, threads=2, progress=False)
    assert again.root == copy.root and again.sha256() == copy.sha256()
    assert {t: again.path_of(t).stat().st_mtime_ns for t in hashes} == stamps, "nothing re-rendered"
    # a build cut short: its record says incomplete and one file is missing
    record = json.loads((copy.root / "build.json").read_text())
    (copy.root / "build.json").write_text(json.dumps(dict(record, complete=False)))
    copy.path_of("t0003").unlink()
    resumed = build_corpus(tiny_music21_cfg, cache, threads=1, progress=False)
    assert audio_hashes(resumed) == hashes
    changed = {t for t in hashes if resumed.path_of(t).stat().st_mtime_ns != stamps[t]}
    assert changed == {"t0003"}, "only the missing file was rendered again"


def test_build_record(tiny_corpus: Manifest) -> None:
    record = json.loads((tiny_corpus.root / "build.json").read_text())
    assert record["complete"] and record["builder"] == "music21"
    assert record["split_sizes"] == {"train": 12, "query": 18, "control": 4}
    assert record["pieces_parsed"] == 15 + len(record["skipped_pieces"])
    assert all(item["piece"] and item["reason"] for item in record["skipped_pieces"])
    assert record["manifest_sha256"] == tiny_corpus.sha256()
    assert tiny_corpus.root.name.startswith("music21-")


def test_cache_key_follows_settings(tiny_music21_cfg: dict, tmp_path: Path) -> None:
    assert corpus_dir(tiny_music21_cfg, tmp_path) == corpus_dir(dict(tiny_music21_cfg), tmp_path)
    assert corpus_dir(tiny_music21_cfg, tmp_path) != corpus_dir(dict(tiny_music21_cfg, track_s=4.0), tmp_path)
    with pytest.raises(ParameterError, match="builder"):
        corpus_dir(dict(tiny_music21_cfg, builder="nope"), tmp_path)


# --- the embedded corpus: pieces, sound checks, bad settings -----------------------------------------------------

def test_pieces_that_fail_to_expand_are_skipped_with_the_reason(tmp_path: Path) -> None:
    notes, reason = parse_piece("ryansMammoth/DublinLassesReel.abc", tmp_path)
    assert notes is None and reason.startswith("ExpanderException")
    assert parse_piece("ryansMammoth/DublinLassesReel.abc", tmp_path) == (None, reason), "cached outcome"
    notes, reason = parse_piece("bach/bwv265.mxl", tmp_path)
    assert reason == "" and notes.shape[1] == 4 and notes[:, 0].min() == 0
    assert unusable_reason(notes, 1000.0, 0.9).startswith("too short")
    assert unusable_reason(notes, 16.0, 0.9) == ""


def test_note_coverage_and_quiet_fraction() -> None:
    notes = np.array([[0.0, 2.0, 60, 0], [1.0, 3.0, 64, 1], [6.0, 8.0, 67, 0]])
    assert note_coverage(notes, 8.0) == pytest.approx(5 / 8)
    assert unusable_reason(notes, 8.0, 0.9).startswith("too little sound")
    half = np.concatenate([np.sin(np.arange(SR) / 5.0), np.zeros(SR)])
    assert quiet_fraction(half, SR) == pytest.approx(0.5)
    assert quiet_fraction(np.zeros(SR), SR) == 1.0


def test_quiet_tracks_are_dropped_with_the_queries_they_source() -> None:
    specs = [
        {"track_id": "t0000", "source_ids": []},
        {"track_id": "t0001", "source_ids": []},
        {"track_id": "q_near_copy_00", "source_ids": ["t0000"]},
        {"track_id": "q_production_00", "source_ids": ["t0000", "t0001"]},
    ]
    stats = [{"track_id": s["track_id"], "quiet_fraction": 0.5 if s["track_id"] == "t0000" else 0.0} for s in specs]
    kept, dropped = drop_quiet(specs, stats, 0.2)
    assert [s["track_id"] for s in kept] == ["t0001", "q_production_00"]
    assert kept[1]["source_ids"] == ["t0001"]
    assert {d["track_id"] for d in dropped} == {"t0000", "q_near_copy_00"}


def test_missing_fluidsynth(tiny_music21_cfg: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CorpusError, match=r"FluidSynth .*not found.*make system"):
        build_corpus(dict(tiny_music21_cfg, fluidsynth="/nonexistent/fluidsynth"), tmp_path, progress=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CorpusError, match=r"apt-get install fluidsynth"):
        build_corpus(tiny_music21_cfg, tmp_path, progress=False)


def test_missing_soundfont(tiny_music21_cfg: dict, tmp_path: Path) -> None:
    missing = tmp_path / "missing.sf2"
    for key in ("soundfont", "alt_soundfont"):
        with pytest.raises(CorpusError, match=re.escape(str(missing))) as caught:
            build_corpus(dict(tiny_music21_cfg, **{key: str(missing)}), tmp_path, progress=False)
        assert "fluid-soundfont-gm" in str(caught.value) and f"data.{key}" in str(caught.value)
    assert not (tmp_path / "corpus").exists() or not list((tmp_path / "corpus").glob("*/manifest.csv"))


def test_bad_design_settings(tiny_music21_cfg: dict) -> None:
    with pytest.raises(ParameterError, match="near-copy variant"):
        check_design(dict(tiny_music21_cfg, near_copy_variants=["louder"]))
    with pytest.raises(ParameterError, match="composition variant"):
        check_design(dict(tiny_music21_cfg, composition_variants=["instrument+faster"]))
    with pytest.raises(ParameterError, match="renderings_per_piece"):
        check_design(dict(tiny_music21_cfg, renderings_per_piece=8))
    with pytest.raises(ParameterError, match="disjoint"):
        check_design(dict(tiny_music21_cfg, held_out_programs=[0]))


# --- data=folder -------------------------------------------------------------------------------------------------

def tone(seconds: float, sample_rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    mono = 0.3 * np.sin(2 * np.pi * 330 * t)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


def catalogue(root: Path) -> Path:
    """A folder with three good files (mono 32 kHz, stereo 44.1 kHz FLAC, 16 kHz in a subfolder), four bad
    ones (corrupt, unsupported, silent, shorter than a frame) and files that are not audio or hidden."""
    music = root / "music"
    (music / "live").mkdir(parents=True)
    sf.write(music / "song.wav", tone(1.0, SR), SR)
    sf.write(music / "stereo.flac", tone(1.0, 44100, channels=2), 44100)
    sf.write(music / "live" / "low.wav", tone(1.5, 16000), 16000)
    (music / "corrupt.wav").write_bytes(np.random.default_rng(0).bytes(2048))
    (music / "notes.mp3").write_text("not a recording\n" * 50)
    sf.write(music / "silent.wav", np.zeros(SR), SR)
    sf.write(music / "blip.wav", tone(0.004, SR), SR)
    (music / "readme.txt").write_text("ignored: not an audio extension")
    sf.write(music / ".hidden.wav", tone(1.0, SR), SR)
    return music


def folder_cfg(path: Path, **overrides: object) -> dict:
    return data_config("folder", path=str(path), **overrides)


def test_folder_builds_a_manifest_and_skips_bad_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    music = catalogue(tmp_path)
    with caplog.at_level(logging.WARNING):
        manifest = build_corpus(folder_cfg(music), tmp_path / "cache", threads=2, progress=False)
    train = rows(manifest, "train")
    assert sorted(train.index) == ["live__low", "song", "stereo"]
    assert train.loc["stereo", "sample_rate"] == 44100 and train.loc["live__low", "sample_rate"] == 16000
    assert train.loc["stereo", "duration_s"] == pytest.approx(1.0)
    assert train.loc["live__low", "duration_s"] == pytest.approx(1.5)
    assert manifest.path_of("stereo") == (music / "stereo.flac").resolve()
    rejected = pd.read_csv(manifest.root / "rejected.csv").set_index("path")
    problems = {Path(p).name: problem for p, problem in rejected["problem"].items()}
    assert set(problems) == {"corrupt.wav", "notes.mp3", "silent.wav", "blip.wav"}
    assert problems["silent.wav"].startswith("silent") and problems["blip.wav"].startswith("too short")
    assert problems["corrupt.wav"].startswith("cannot decode")
    assert problems["notes.mp3"] == "not an audio file: it holds text"
    for name in problems:  # each skipped file gets a warning naming it
        assert any(name in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records), name


def test_folder_on_bad_file_error_lists_every_bad_file(tmp_path: Path) -> None:
    music = catalogue(tmp_path)
    with pytest.raises(CorpusError, match="4 unusable audio files") as caught:
        build_corpus(folder_cfg(music, on_bad_file="error"), tmp_path / "cache", progress=False)
    for name in ("corrupt.wav", "notes.mp3", "silent.wav", "blip.wav"):
        assert str(music / name) in str(caught.value)


def test_folder_revalidates_only_new_or_changed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    music = catalogue(tmp_path)
    seen: list[str] = []
    original = folder.validate

    def counting(path: Path, sample_rate: int) -> dict:
        seen.append(path.name)
        return original(path, sample_rate)

    monkeypatch.setattr(folder, "validate", counting)
    build_corpus(folder_cfg(music), tmp_path / "cache", progress=False)
    assert len(seen) == 7
    seen.clear()
    sf.write(music / "new.wav", tone(1.0, SR), SR)
    sf.write(music / "song.wav", tone(2.0, SR), SR)  # changed: size and mtime differ
    manifest = build_corpus(folder_cfg(music), tmp_path / "cache", progress=False)
    assert sorted(seen) == ["new.wav", "song.wav"]
    assert rows(manifest, "train").loc["song", "duration_s"] == pytest.approx(2.0)
    assert "new" in manifest.train_ids


def test_folder_metadata_and_queries(tmp_path: Path) -> None:
    music = catalogue(tmp_path)
    queries = tmp_path / "generated"
    queries.mkdir()
    sf.write(queries / "out1.ogg", tone(1.0, 48000, channels=2), 48000)
    metadata = tmp_path / "meta.csv"
    pd.DataFrame({
        "path": ["song.wav", "live/low.wav", "", "gone.wav"],
        "track_id": ["my-song", "", "stereo", ""],
        "split": ["", "control", "", ""],
        "description": ["rock guitar", "", "synth pop", "lost"],
        "genre": ["rock", "live", "pop", "x"],
    }).to_csv(metadata, index=False)
    manifest = build_corpus(folder_cfg(music, metadata=str(metadata), queries=str(queries)), tmp_path / "cache",
                            progress=False)
    table = manifest.table.set_index("track_id")
    assert table.loc["my-song", ["split", "description", "genre"]].tolist() == ["train", "rock guitar", "rock"]
    assert table.loc["live__low", "split"] == "control"
    assert table.loc["stereo", "description"] == "synth pop"
    assert manifest.query_ids == ["out1"] and table.loc["out1", "sample_rate"] == 48000


def test_folder_catalogue_is_keyed_by_its_content(tmp_path: Path) -> None:
    """docs/corpus.md#how-a-folder-catalogue-is-keyed: the corpus folder and `catalogue_key` follow the files, not
    `data.name`."""
    def recordings(name: str, seconds: dict[str, float]) -> Path:
        music = tmp_path / name
        music.mkdir()
        for file, length in seconds.items():
            sf.write(music / file, tone(length, SR), SR)
        return music

    cache = tmp_path / "cache"
    a = recordings("a", {"song.wav": 1.0, "other.wav": 1.5})
    b = recordings("b", {"song.wav": 2.0, "other.wav": 1.5})  # same file names, one file's audio differs
    copy = recordings("copy", {"song.wav": 1.0, "other.wav": 1.5})  # a's files in another place
    built = {m.name: build_corpus(folder_cfg(m), cache, progress=False) for m in (a, b, copy)}
    assert built["a"].root != built["b"].root and built["a"].root.name.startswith("folder-")
    assert built["a"].catalogue_key != built["b"].catalogue_key
    assert built["copy"].root == built["a"].root and built["copy"].catalogue_key == built["a"].catalogue_key
    assert built["copy"].path_of("song") == (copy / "song.wav").resolve()
    again = build_corpus(folder_cfg(a), cache, progress=False)
    assert again.root == built["a"].root and again.catalogue_key == built["a"].catalogue_key
    without_hashes = Manifest(again.table.drop(columns="audio_sha256"), again.root)
    assert without_hashes.catalogue_key == again.catalogue_key, "the hash column only spares reading the files"
    sf.write(a / "new.wav", tone(1.5, 16000), 16000)  # nothing renamed, one file added
    grown = build_corpus(folder_cfg(a), cache, progress=False)
    assert grown.root != built["a"].root and grown.catalogue_key != built["a"].catalogue_key
    metadata = tmp_path / "meta.csv"
    pd.DataFrame({"path": ["song.wav"], "description": ["a tone"]}).to_csv(metadata, index=False)
    assert corpus_dir(folder_cfg(a, metadata=str(metadata)), cache) != grown.root


def test_folder_empty_or_unusable(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no audio here")
    with pytest.raises(CorpusError, match=re.escape(str(empty.resolve()))):
        build_corpus(folder_cfg(empty), tmp_path / "cache", progress=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    sf.write(bad / "silent.wav", np.zeros(SR), SR)
    with pytest.raises(CorpusError, match=r"no usable training tracks .*1 of 1 files were rejected"):
        build_corpus(folder_cfg(bad), tmp_path / "cache", progress=False)
    with pytest.raises(CorpusError, match="audio folder not found"):
        build_corpus(folder_cfg(tmp_path / "nowhere"), tmp_path / "cache", progress=False)
    with pytest.raises(CorpusError, match="data.path is required"):
        build_corpus(data_config("folder"), tmp_path / "cache", progress=False)


def test_folder_rejects_cut_files_and_non_audio_accurately(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """docs/corpus.md#bad-files: an MP3 cut to 2 KB decodes to a fraction of a second and is rejected below
    `data.min_duration_s`; a PNG or text renamed as audio is named for what it is; libmpg123's notes about the
    broken files never reach the terminal (file descriptor 2)."""
    music = tmp_path / "music"
    music.mkdir()
    sf.write(music / "song.mp3", tone(3.0, 44100), 44100, format="MP3")
    (music / "cut.mp3").write_bytes((music / "song.mp3").read_bytes()[:2048])
    (music / "cover.mp3").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(600))
    (music / "lyrics.wav").write_text("la la la\n" * 40)
    (music / "noise.mp3").write_bytes(np.random.default_rng(1).bytes(4096))
    manifest = build_corpus(folder_cfg(music), tmp_path / "cache", progress=False)
    assert manifest.train_ids == ["song"]
    rejected = pd.read_csv(manifest.root / "rejected.csv").set_index("path")
    problems = {Path(p).name: problem for p, problem in rejected["problem"].items()}
    fixes = {Path(p).name: fix for p, fix in rejected["fix"].items()}
    cut_s = float(re.match(r"too short: ([0-9.]+) s, less than data.min_duration_s = 1 s", problems["cut.mp3"])[1])
    assert 0.02 < cut_s < 0.5  # 2 KB of a 44.1 kHz MP3: a few frames
    assert "lower data.min_duration_s" in fixes["cut.mp3"]
    assert problems["cover.mp3"] == "not an audio file: it holds a PNG image"
    assert problems["lyrics.wav"] == "not an audio file: it holds text"
    assert problems["noise.mp3"].startswith("cannot decode: not audio that libsndfile")
    assert "pipe" not in " ".join(problems.values())
    err = capfd.readouterr().err
    assert "MPEG" not in err and "resync" not in err and "Xing" not in err, err
    kept = build_corpus(folder_cfg(music, min_duration_s=0.0), tmp_path / "cache", progress=False)
    assert sorted(kept.train_ids) == ["cut", "song"], "the minimum is a setting, and part of the build's key"
    assert kept.root != manifest.root
    with pytest.raises(ParameterError, match="min_duration_s"):
        build_corpus(folder_cfg(music, min_duration_s=-1), tmp_path / "cache", progress=False)
