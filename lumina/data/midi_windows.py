"""The symbolic corpus (`builder: symbolic`, docs/symbolic.md#the-corpus): pieces as notes, cut into windows of at
most `window` event tokens, each window one MIDI file and one training instance (a manifest row); planted queries
with known sources (near-copies, compositions), held-out windows and, from a folder, windows sampled from the
trained model (`generated`).

Pieces come from the music21 corpus (`source: music21`, e.g. the Bach chorales, optionally folk tunes, each
collection a group label) or from a user's folder of MIDI files (`source: folder`). music21's scores carry no
dynamics: with `synthetic_velocity` every piece gets a velocity profile drawn from the corpus seed (documented
as synthetic), so that the dynamic channel carries information. The build is cached under a hash of the
settings and of every MIDI file it reads.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from execution import parallel_map
from execution.files import write_json
from lumina.data.common import settings_key
from lumina.data.manifest import AUDIO_SHA256, Manifest
from lumina.data.midi import TICK_S, VELOCITY_STEP, encode_notes, quantise, read_midi, write_midi
from lumina.data.music21_pieces import SECONDS_PER_QUARTER, collection_pieces, parse_piece
from lumina.runs.errors import CorpusError
from lumina.runs.layout import parsed_scores_dir

BUILDER_VERSION = "symbolic-1"
PROFILES = ("flat", "crescendo", "decrescendo", "arch", "terraced")
MIN_WINDOW_SHARE = 4
"""A piece's tail shorter than a quarter of a window gives no window."""


def midi_files(folder: str | Path) -> list[Path]:
    """MIDI files under `folder` (recursive, sorted); CorpusError when the folder is missing or holds none."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CorpusError(f"{folder}: no such folder of MIDI files (set data.path / data.generated_dir)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())
    if not files:
        raise CorpusError(f"{folder}: holds no .mid/.midi files")
    return files


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_key(cfg: Mapping, corpus_root: Path, *, threads: int = 2, progress: bool = False) -> str:
    """Short hash of the settings and the bytes of every MIDI file the build reads."""
    files = {key: [_sha(p) for p in midi_files(cfg[key])] for key in ("path", "generated_dir") if cfg.get(key)}
    return settings_key({"settings": {k: v for k, v in cfg.items() if k not in ("path", "generated_dir", "generated")},
                         "files": files, "version": BUILDER_VERSION})


def velocity_profile(n_notes_times: np.ndarray, parts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Synthetic velocities (n,) for notes at relative times (n,) in [0, 1] and their part indices (n,): a base
    level, one of `PROFILES` with a depth, and a louder top part; drawn from `rng`. Returns them and the draw."""
    base = int(rng.integers(44, 96))
    shape = str(rng.choice(PROFILES))
    depth = int(rng.integers(12, 33))
    lead = int(rng.integers(0, 13))
    t = np.asarray(n_notes_times, dtype=np.float64)
    curve = {"flat": np.zeros_like(t), "crescendo": t - 0.5, "decrescendo": 0.5 - t,
             "arch": 0.5 - np.abs(2 * t - 1), "terraced": np.where((t * 4).astype(int) % 2 == 0, 0.5, -0.5)}[shape]
    velocity = base + depth * curve + lead * (np.asarray(parts) == 0)
    return np.clip(np.rint(velocity), 8, 124).astype(np.int64), {"base": base, "shape": shape, "depth": depth,
                                                                 "lead": lead}


def piece_notes(notes_q: np.ndarray, rng: np.random.Generator, synthetic: bool) -> tuple[np.ndarray, dict]:
    """A music21 note table (n, 4: onset, end in quarters, pitch, part) → canonical notes (n, 4), at 120 bpm
    as written, with synthetic velocities (or a constant 80 when `synthetic` is false)."""
    starts, ends = notes_q[:, 0] * SECONDS_PER_QUARTER, notes_q[:, 1] * SECONDS_PER_QUARTER
    span = max(float(ends.max()), 1e-9)
    if synthetic:
        velocity, profile = velocity_profile(starts / span, notes_q[:, 3], rng)
    else:
        velocity, profile = np.full(len(starts), 80), {"shape": "constant", "base": 80}
    return quantise(starts, ends, notes_q[:, 2], velocity), profile


def cut_windows(notes: np.ndarray, window: int, min_tokens: int | None = None) -> list[np.ndarray]:
    """Consecutive runs of notes (in start order) whose encoding holds at most `window` tokens, each shifted to
    start at tick 0; a tail under `min_tokens` tokens (default: a quarter of a window) is dropped."""
    min_tokens = window // MIN_WINDOW_SHARE if min_tokens is None else min_tokens
    out, first = [], 0
    while first < len(notes):
        low, high = first + 1, len(notes)
        while low < high:  # the largest count whose encoding fits
            mid = (low + high + 1) // 2
            if len(encode_notes(shifted(notes[first:mid]))) <= window:
                low = mid
            else:
                high = mid - 1
        chunk = shifted(notes[first:low])
        if len(encode_notes(chunk)) >= min_tokens:
            out.append(chunk)
        first = low
    return out


def shifted(notes: np.ndarray) -> np.ndarray:
    """Notes (n, 4) moved so that the first starts at tick 0."""
    out = notes.copy()
    if len(out):
        out[:, :2] -= out[:, 0].min()
    return out


def near_copy(notes: np.ndarray, rng: np.random.Generator, ticks: int, bins: int) -> np.ndarray:
    """The window played again: every distinct time (tick) moved by up to ±`ticks` (starts and ends at one tick
    move together, so chords stay chords) and every velocity by one offset of ±1 … ±`bins` bins."""
    moments = np.unique(notes[:, :2])
    moved = dict(zip(moments.tolist(), (moments + rng.integers(-ticks, ticks + 1, len(moments))).tolist(),
                     strict=True))
    start = np.array([moved[t] for t in notes[:, 0].tolist()])
    end = np.array([moved[t] for t in notes[:, 1].tolist()])
    offset = int(rng.choice([b for b in range(-bins, bins + 1) if b])) if bins else 0
    start, end = np.maximum(start, 0), np.maximum(np.maximum(end, 0), np.maximum(start, 0) + 1)
    return shifted(quantise(start * TICK_S, end * TICK_S, notes[:, 2],
                            np.clip(notes[:, 3] + VELOCITY_STEP * offset, 4, 124)))


def fitted(notes: np.ndarray, window: int) -> np.ndarray:
    """The longest first run of `notes` whose encoding holds at most `window` tokens (queries longer than a
    window are cropped)."""
    return cut_windows(notes, window, min_tokens=0)[0]


def transposed(notes: np.ndarray, semitones: int) -> np.ndarray:
    """The window moved by `semitones` (pitches kept within 0..127)."""
    out = notes.copy()
    out[:, 2] = np.clip(out[:, 2] + semitones, 0, 127)
    return quantise(out[:, 0] * TICK_S, out[:, 1] * TICK_S, out[:, 2], out[:, 3])


def _parse(job: tuple[str, str]) -> tuple[np.ndarray | None, str]:
    return parse_piece(job[0], Path(job[1]))


def read_pieces(cfg: Mapping, cache_root: Path, threads: int, progress: bool) -> list[dict]:
    """Every piece as {piece, collection, notes (canonical), profile}, in a fixed order; exact duplicates (same
    notes) are kept once."""
    rng_of = lambda i: np.random.default_rng([int(cfg["seed"]), i])  # noqa: E731
    synthetic = bool(cfg.get("synthetic_velocity", True))
    pieces: list[dict] = []
    if cfg.get("source", "music21") == "folder":
        for i, path in enumerate(midi_files(cfg["path"])):
            notes = read_midi(path)
            if synthetic and len(notes):
                notes[:, 3] = velocity_profile(notes[:, 0] / max(1, notes[:, 1].max()), np.zeros(len(notes)),
                                               rng_of(i))[0] // VELOCITY_STEP * VELOCITY_STEP
            pieces.append({"piece": path.stem, "collection": path.parent.name, "notes": notes,
                           "profile": {"shape": "synthetic" if synthetic else "from file"}})
    else:
        listed = [(p, label) for collection, label in cfg["collections"].items()
                  for p in collection_pieces(collection)[: cfg.get("max_pieces") or None]]
        jobs = [(p, str(parsed_scores_dir(cache_root, "music21_notes"))) for p, _ in listed]
        parsed = list(tqdm(parallel_map(_parse, jobs, workers=threads), total=len(jobs), desc="parsing scores",
                           disable=not progress))
        for i, ((piece, label), (notes_q, _)) in enumerate(zip(listed, parsed, strict=True)):
            if notes_q is not None:
                notes, profile = piece_notes(notes_q, rng_of(i), synthetic)
                pieces.append({"piece": piece, "collection": label, "notes": notes, "profile": profile})
    seen, unique = set(), []
    for p in pieces:
        key = hashlib.sha256(np.ascontiguousarray(p["notes"][:, :3]).tobytes()).hexdigest()
        if key not in seen and len(p["notes"]):
            seen.add(key)
            unique.append(p)
    if not unique:
        raise CorpusError("the symbolic corpus found no piece with notes")
    return unique


def build(cfg: Mapping, out_dir: Path, *, threads: int = 2, progress: bool = True) -> Manifest:
    """Build the symbolic corpus into `out_dir` (manifest.csv, midi/, build.json), or reuse it."""
    manifest_path = out_dir / "manifest.csv"
    if manifest_path.exists():
        return Manifest.load(manifest_path)
    started = time.perf_counter()
    pieces = read_pieces(cfg, out_dir.parent.parent, threads, progress)
    rng = np.random.default_rng([int(cfg["seed"]), 10_000])
    queries = dict(cfg.get("queries") or {})
    n_held = min(int(queries.get("held_out", 0)), len(pieces) - 1)
    held = set(rng.choice(len(pieces), size=n_held, replace=False).tolist()) if n_held else set()
    rows, files = [], {}

    def add(track_id: str, notes: np.ndarray, **row: object) -> None:
        files[track_id] = notes
        rows.append({"track_id": track_id, "path": f"midi/{track_id}.mid",
                     "duration_s": round(float(notes[:, 1].max()) * TICK_S, 2) if len(notes) else 0.0, **row})

    train: list[tuple[str, np.ndarray, dict]] = []
    window, n_held_out = int(cfg["window"]), 0
    for index, piece in enumerate(pieces):
        windows = cut_windows(piece["notes"], window)
        label = piece["collection"]
        common = {"piece": piece["piece"], "collection": label, "description": f"{label}",
                  "variant": f"velocity {piece['profile']['shape']}"}
        if index in held:
            if windows:
                add(f"q_held_out_{n_held_out:02d}", windows[0], split="query", query_kind="held_out", **common)
                n_held_out += 1
            continue
        for w, notes in enumerate(windows):
            track_id = f"w{index:04d}_{w:02d}"
            add(track_id, notes, split="train", **common)
            train.append((track_id, notes, common))
    chosen = rng.permutation(len(train))
    n_near, n_comp = int(queries.get("near_copy", 0)), int(queries.get("composition", 0))
    for q, i in enumerate(chosen[:n_near]):
        source, notes, common = train[i]
        copy = near_copy(notes, rng, int(cfg["jitter_ticks"]), int(cfg["jitter_velocity_bins"]))
        add(f"q_near_copy_{q:02d}", fitted(copy, window),
            split="query", query_kind="near_copy", source_ids=source,
            **{**common, "variant": f"jitter ±{cfg['jitter_ticks']} ticks, velocity offset"})
    shifts = [s for s in range(-int(cfg["max_transpose"]), int(cfg["max_transpose"]) + 1) if s]
    for q, i in enumerate(chosen[n_near : n_near + n_comp]):
        source, notes, common = train[i]
        semitones = int(rng.choice(shifts))
        add(f"q_composition_{q:02d}", fitted(transposed(notes, semitones), window), split="query",
            query_kind="composition", source_ids=source, transpose=semitones,
            **{**common, "variant": f"transposed {semitones:+d}"})
    if cfg.get("generated_dir"):
        for q, path in enumerate(midi_files(cfg["generated_dir"])):
            notes = read_midi(path)
            if not len(notes):
                raise CorpusError(f"{path}: holds no notes, so it cannot be a generated query; sample it again "
                                  "(another sample.seed, a longer sample.primer) or remove it from data.generated_dir")
            add(f"q_generated_{q:02d}", fitted(notes, window), split="query", query_kind="generated",
                piece=path.stem, collection="generated", description="generated",
                variant="sampled from the trained model")
    out_dir.mkdir(parents=True, exist_ok=True)
    for track_id, notes in tqdm(files.items(), desc="writing windows", disable=not progress):
        write_midi(notes, out_dir / "midi" / f"{track_id}.mid")
    table = pd.DataFrame(rows)
    table[AUDIO_SHA256] = [_sha(out_dir / p) for p in table["path"]]
    write_json(out_dir / "build.json", {
        "builder": BUILDER_VERSION, "settings": dict(cfg), "pieces": len(pieces), "held_out_pieces": sorted(held),
        "windows": len(train), "seconds": round(time.perf_counter() - started, 1),
        "velocity_profiles": {p["piece"]: p["profile"] for p in pieces},
        "synthetic": "velocities are drawn per piece from the corpus seed (docs/symbolic.md#what-is-synthetic)"
        if cfg.get("synthetic_velocity", True) else "velocities as in the files",
    })
    manifest = Manifest(table, out_dir)
    partial = out_dir / "manifest.csv.partial"
    manifest.save(partial)
    partial.replace(manifest_path)
    return Manifest.load(manifest_path)
