"""The embedded corpus (`data=music21`): music21 scores rendered through FluidSynth, with planted-influence
queries and control tracks, deterministic from a seed (docs/corpus.md)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Mapping
from contextlib import closing
from functools import partial
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pretty_midi
from tqdm import tqdm

from execution.files import write_json
from execution.parallel import parallel_map
from lumina.data.common import read_json, settings_key
from lumina.data.manifest import COLUMNS, Manifest
from lumina.data.music21_pieces import collection_pieces, parse_piece, unusable_reason
from lumina.data.plan import Piece, check_design, plan_tracks, required_quarters, role_counts
from lumina.data.render import QUIET_BELOW_DB, render_task
from lumina.runs.errors import CorpusError
from lumina.runs.layout import parsed_scores_dir

BUILDER_VERSION = "music21-2"
"""Part of the cache key: bump it whenever a change to this builder changes its output."""

INSTALL_HINT = "run `make system`, or `apt-get install fluidsynth fluid-soundfont-gm`"
BUNDLED_SOUNDFONT = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def identity(cfg: Mapping) -> dict:
    """What, besides the settings, decides the output (part of `cache_key`)."""
    return {"builder_version": BUILDER_VERSION, "music21": version("music21")}


GENERATED_SETTINGS = ("generated", "generated_dir")
"""Data settings read by the generated-queries stage, not by the corpus build."""


def cache_key(cfg: Mapping, corpus_root: Path, *, threads: int = 2, progress: bool = False) -> str:
    """Short hash of the settings and `identity` (the corpus folder's name ends with it); the generated queries'
    settings are not the corpus's (`lumina.models.generate`)."""
    settings = {k: v for k, v in cfg.items() if k not in GENERATED_SETTINGS}
    return settings_key({"settings": settings, "identity": identity(settings)})


def soundfont_path(configured: str | None) -> Path:
    """The soundfont file a setting names (None: pretty_midi's bundled TimGM6mb.sf2)."""
    return BUNDLED_SOUNDFONT if configured in (None, "") else Path(configured).expanduser()


def check_tools(cfg: Mapping) -> dict:
    """Find FluidSynth and the soundfonts the design needs; raise `CorpusError` naming what is missing and
    the fix. Returns {"fluidsynth": executable, "soundfonts": {"main": path, "alt": path}, "version": str}."""
    executable = shutil.which(str(cfg["fluidsynth"]))
    if executable is None:
        raise CorpusError(f"FluidSynth (`{cfg['fluidsynth']}`) not found on PATH; it renders the embedded "
                          f"corpus: {INSTALL_HINT} (or set data.fluidsynth=/path/to/fluidsynth)")
    soundfonts = {"main": soundfont_path(cfg["soundfont"]), "alt": soundfont_path(cfg["alt_soundfont"])}
    needs_alt = int(cfg["queries"]["near_copy"]) > 0 and "soundfont" in cfg["near_copy_variants"]
    for role, path in soundfonts.items():
        if (role == "main" or needs_alt) and not path.is_file():
            setting = "soundfont" if role == "main" else "alt_soundfont"
            raise CorpusError(f"soundfont not found: {path} (data.{setting}); {INSTALL_HINT}, "
                              "or point the setting at a General MIDI .sf2 file")
    done = subprocess.run([executable, "--version"], capture_output=True, text=True, check=False)
    version = (done.stdout.strip().splitlines() or ["unknown"])[0]
    return {"fluidsynth": executable, "soundfonts": {k: str(v) for k, v in soundfonts.items()}, "version": version}


def candidate_pieces(cfg: Mapping) -> list[Piece]:
    """Every score of the configured collections, each collection shuffled by the seed, interleaved
    round-robin so that any prefix mixes the collections evenly."""
    rng = np.random.default_rng([int(cfg["seed"]), 0])
    shuffled = []
    for collection in cfg["collections"]:
        pieces = collection_pieces(collection)
        if not pieces:
            raise CorpusError(f"the music21 corpus has no collection `{collection}` (data.collections)")
        shuffled.append([(pieces[i], collection) for i in rng.permutation(len(pieces))])
    longest = max(len(s) for s in shuffled)
    return [s[i] for i in range(longest) for s in shuffled if i < len(s)]


def select_pieces(cfg: Mapping, scores_dir: Path, threads: int, progress: bool
                  ) -> tuple[dict[str, list[Piece]], dict[str, np.ndarray], list[dict]]:
    """Parse candidates in order (parses cached in `scores_dir`, `threads` worker processes) until every role
    has its pieces.

    Returns (pieces by role, note tables by piece, skipped [{"piece", "reason"}]); pieces that fail to
    parse or expand, are too short or have too little sound are skipped, always the same ones for a seed.
    """
    counts = role_counts(cfg)
    total = sum(counts.values())
    need = required_quarters(cfg)
    candidates = candidate_pieces(cfg)
    accepted: list[Piece] = []
    notes: dict[str, np.ndarray] = {}
    skipped: list[dict] = []
    parsed = parallel_map(partial(parse_piece, cache_dir=scores_dir), [p for p, _ in candidates], workers=threads)
    with tqdm(total=total, desc="music21 pieces", disable=not progress) as bar, closing(parsed):
        for piece, (table, reason) in zip(candidates, parsed, strict=True):
            reason = reason or unusable_reason(table, need, float(cfg["min_note_coverage"]))
            if reason:
                skipped.append({"piece": piece[0], "reason": reason})
                continue
            accepted.append(piece)
            notes[piece[0]] = table
            bar.update()
            if len(accepted) == total:
                break
    if len(accepted) < total:
        raise CorpusError(f"only {len(accepted)} usable pieces in the collections {list(cfg['collections'])}, "
                          f"{total} needed; lower train_pieces/queries/control_tracks or track_s")
    roles, start = {}, 0
    for role, count in counts.items():
        roles[role] = accepted[start:start + count]
        start += count
    return roles, notes, skipped


def drop_quiet(specs: list[dict], stats: list[dict], max_quiet: float) -> tuple[list[dict], list[dict]]:
    """Drop tracks whose excerpt has too little sound, the planted sources they were, and queries left
    without sources. Returns (kept specs, dropped [{"track_id", "reason"}])."""
    quiet = {s["track_id"]: s["quiet_fraction"] for s in stats if s["quiet_fraction"] > max_quiet}
    dropped = [{"track_id": t, "reason": f"too little sound: {q:.0%} of 50 ms frames {QUIET_BELOW_DB:g} dB "
                f"below the track's RMS (max {max_quiet:.0%})"} for t, q in quiet.items()]
    kept = []
    for spec in specs:
        if spec["track_id"] in quiet:
            continue
        sources = [s for s in spec["source_ids"] if s not in quiet]
        if spec["source_ids"] and not sources:
            dropped.append({"track_id": spec["track_id"], "reason": "all its planted sources were dropped"})
            continue
        kept.append(dict(spec, source_ids=sources))
    return kept, dropped


def manifest_table(specs: list[dict], sample_rate: int, track_s: float) -> pd.DataFrame:
    """The manifest rows (docs/formats.md columns) of rendered track specs."""
    length = int(round(track_s * sample_rate))
    rows = [{
        "track_id": s["track_id"], "split": s["split"], "path": f"audio/{s['track_id']}.wav",
        "duration_s": length / sample_rate, "sample_rate": sample_rate,
        "description": " ".join(w for w in (s["instrument"], s["word"]) if w), "piece": s["piece"],
        "collection": s["collection"],
        "program": s["program"], "instrument": s["instrument"], "instrument_family": s["instrument_family"],
        "tempo_factor": s["tempo_factor"], "transpose": s["transpose"], "query_kind": s["query_kind"],
        "source_ids": ";".join(s["source_ids"]), "variant": s["variant"], "offset_s": s["offset_s"],
    } for s in specs]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def is_complete(out_dir: Path) -> bool:
    """Whether `out_dir` holds a finished build whose audio files are all present."""
    if not read_json(out_dir / "build.json").get("complete") or not (out_dir / "manifest.csv").exists():
        return False
    manifest = Manifest.load(out_dir / "manifest.csv")
    return all(manifest.path_of(t).exists() for t in manifest.table["track_id"])


def build(cfg: Mapping, out_dir: Path, *, threads: int = 2, progress: bool = True) -> Manifest:
    """Build the embedded corpus into `out_dir` (manifest.csv, audio/, build.json) or reuse it.

    An interrupted build keeps the files it rendered; the next call renders only the missing ones.
    """
    if is_complete(out_dir):
        return Manifest.load(out_dir / "manifest.csv")
    check_design(cfg)
    tools = check_tools(cfg)
    started = time.perf_counter()
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    logging.getLogger(__name__).info("building the music21 corpus in %s", out_dir)
    settings = {key: cfg[key] for key in ("sample_rate", "track_s", "velocity", "eq_lowpass_hz", "reverb_rt60_s",
                                          "reverb_wet", "noise_snr_db", "target_rms_dbfs")}
    settings.update(soundfonts=tools["soundfonts"], fluidsynth=tools["fluidsynth"])
    scores_dir = parsed_scores_dir(out_dir.parent, f"music21-scores-{BUILDER_VERSION}-{identity(cfg)['music21']}")
    pieces, notes, skipped = select_pieces(cfg, scores_dir, threads, progress)
    parsed_s = time.perf_counter() - started
    specs = plan_tracks(cfg, pieces)
    tasks = [(s, notes.get(s["piece"]), out_dir / "audio" / f"{s['track_id']}.wav",
              notes[s["sample"]["source"]["piece"]] if "sample" in s else None) for s in specs]
    stats = list(tqdm(parallel_map(partial(render_task, settings=settings), tasks, workers=threads),
                      total=len(specs), desc="render tracks", disable=not progress))
    kept, dropped = drop_quiet(specs, stats, float(cfg["max_quiet_fraction"]))
    for item in dropped:
        (out_dir / "audio" / f"{item['track_id']}.wav").unlink(missing_ok=True)
    manifest = Manifest(manifest_table(kept, int(cfg["sample_rate"]), float(cfg["track_s"])), out_dir)
    manifest.save(out_dir / "manifest.csv")
    split_sizes = manifest.table["split"].value_counts().to_dict()
    write_json(out_dir / "build.json", {
        "complete": True, "builder": "music21", "settings": dict(cfg), **identity(cfg),
        "fluidsynth": tools["version"], "soundfonts": tools["soundfonts"], "threads": threads,
        "seconds": round(time.perf_counter() - started, 1), "parse_seconds": round(parsed_s, 1),
        "split_sizes": split_sizes, "pieces_parsed": len(notes) + len(skipped),
        "skipped_pieces": skipped, "dropped_tracks": dropped, "manifest_sha256": manifest.sha256(),
    })
    return Manifest.load(out_dir / "manifest.csv")
