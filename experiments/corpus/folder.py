"""A user's catalogue as a corpus (`data=folder`): a folder of audio files, an optional metadata CSV and an
optional folder of query files. Every file is validated with `lumina.audio.load_audio`; results are cached
by path, size and modification time, so a re-run only reads new or changed files (docs/corpus.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import soundfile as sf
from tqdm import tqdm

from experiments.corpus.common import read_json, write_json
from lumina.audio import load_audio
from lumina.errors import AudioError, CorpusError, ParameterError
from lumina.manifest import COLUMNS, Manifest

log = logging.getLogger(__name__)


def identity(cfg: Mapping) -> dict:
    """The resolved folders and metadata file (part of the cache key)."""
    return {key: str(Path(cfg[key]).expanduser().resolve()) if cfg.get(key) else None
            for key in ("path", "metadata", "queries")}


def audio_files(folder: Path, extensions: list[str]) -> list[Path]:
    """Audio files under `folder` (recursive), by extension (case-insensitive), hidden files skipped, sorted."""
    suffixes = {f".{e.lower().lstrip('.')}" for e in extensions}
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def file_id(relative: Path) -> str:
    """Track id of a file from its path relative to its folder: `rock/song 1.wav` → `rock__song 1`."""
    return "__".join(relative.with_suffix("").parts)


def validate(path: Path, sample_rate: int) -> dict:
    """Check one file with `load_audio`: {"ok", "problem", "fix", "duration_s", "sample_rate"}."""
    try:
        audio = load_audio(path, sample_rate)
    except AudioError as err:
        return {"ok": False, "problem": err.problem, "fix": err.fix, "duration_s": None, "sample_rate": None}
    return {"ok": True, "problem": "", "fix": "", "duration_s": audio.shape[0] / sample_rate,
            "sample_rate": int(sf.info(str(path)).samplerate)}


def validate_all(files: list[Path], sample_rate: int, cache_path: Path, threads: int,
                 progress: bool) -> dict[str, dict]:
    """Validation results by absolute path; files whose size and mtime match the cache are not read again.
    The cache is saved even when validation is interrupted."""
    cache = read_json(cache_path)
    results, todo = {}, []
    for path in files:
        stat = path.stat()
        key, known = str(path), cache.get(str(path), {})
        if known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns:
            results[key] = known
        else:
            todo.append((path, {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}))
    try:
        with ThreadPoolExecutor(max(1, threads)) as pool:
            checked = pool.map(lambda item: validate(item[0], sample_rate), todo)
            for (path, stamp), result in tqdm(zip(todo, checked, strict=True), total=len(todo),
                                              desc="validate audio", disable=not progress):
                results[str(path)] = {**stamp, **result}
    finally:
        write_json(cache_path, {**{k: v for k, v in cache.items() if k not in results}, **results})
    return results


def read_metadata(path: Path) -> pd.DataFrame:
    """The metadata CSV as strings; it must have a `track_id` or a `path` column to join on."""
    if not path.is_file():
        raise CorpusError(f"metadata file not found: {path} (data.metadata)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "track_id" not in table.columns and "path" not in table.columns:
        raise CorpusError(f"{path}: metadata needs a `track_id` or `path` column to join rows to audio files")
    return table


def join_metadata(rows: list[dict], metadata: pd.DataFrame, source: Path) -> list[dict]:
    """Overlay metadata rows on file rows. A row joins on `path` (the file's path relative to its folder, or
    its name) when it has one, else on `track_id` (the generated id or the file's stem); metadata values
    override the generated ones, `path` excepted. Unmatched metadata rows are reported."""
    keys: dict[str, int] = {}
    for index, row in enumerate(rows):
        for key in (row["_relative"], Path(row["_relative"]).name, row["track_id"], Path(row["_relative"]).stem):
            keys.setdefault(key, index)
    unmatched = []
    for record in metadata.to_dict("records"):
        key = record.get("path") or record.get("track_id", "")
        if key not in keys:
            unmatched.append(key)
            continue
        row = rows[keys[key]]
        row.update({k: v for k, v in record.items() if k != "path" and v != ""})
    if unmatched:
        log.warning("%s: %d metadata rows match no usable audio file (missing or rejected): %s",
                    source, len(unmatched), ", ".join(unmatched[:10]))
    return rows


def build(cfg: Mapping, out_dir: Path, *, threads: int = 2, progress: bool = True) -> Manifest:
    """Validate the folder's audio files and write manifest.csv, rejected.csv and build.json in `out_dir`.

    Bad files are skipped with a warning naming the file and the problem (`on_bad_file: skip`) or raise
    `CorpusError` listing them all (`on_bad_file: error`); validation results are kept either way.
    """
    if cfg.get("path") in (None, "", "???"):
        raise CorpusError("data.path is required for data=folder: python -m experiments.run data=folder "
                          "data.path=/path/to/audio")
    if cfg["on_bad_file"] not in ("skip", "error"):
        raise ParameterError(f"data.on_bad_file must be skip or error, got {cfg['on_bad_file']!r}")
    started = time.perf_counter()
    folders = {"train": Path(cfg["path"]).expanduser().resolve()}
    if cfg.get("queries"):
        folders["query"] = Path(cfg["queries"]).expanduser().resolve()
    files: list[tuple[str, Path, Path]] = []
    for split, folder in folders.items():
        if not folder.is_dir():
            raise CorpusError(f"audio folder not found: {folder} (data.{'path' if split == 'train' else 'queries'})")
        found = audio_files(folder, list(cfg["extensions"]))
        if not found:
            raise CorpusError(f"no audio files ({', '.join(cfg['extensions'])}) under {folder}; "
                              "point data.path at a folder of recordings")
        files.extend((split, folder, path) for path in found)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = validate_all([p for _, _, p in files], int(cfg["sample_rate"]), out_dir / "validation.json",
                           threads, progress)
    rows, rejected = [], []
    for split, folder, path in files:
        result = results[str(path)]
        if not result["ok"]:
            rejected.append({"path": str(path), "problem": result["problem"], "fix": result["fix"]})
            continue
        relative = path.relative_to(folder)
        rows.append({"track_id": file_id(relative), "split": split, "path": str(path),
                     "duration_s": result["duration_s"], "sample_rate": result["sample_rate"],
                     "_relative": relative.as_posix()})
    pd.DataFrame(rejected, columns=["path", "problem", "fix"]).to_csv(out_dir / "rejected.csv", index=False)
    if rejected and cfg["on_bad_file"] == "error":
        listing = "\n".join(f"  {r['path']}: {r['problem']} ({r['fix']})" for r in rejected)
        raise CorpusError(f"{len(rejected)} unusable audio files (data.on_bad_file=error; set it to skip to leave "
                          f"them out):\n{listing}")
    for item in rejected:
        log.warning("skipping %s: %s (%s)", item["path"], item["problem"], item["fix"])
    if cfg.get("metadata"):
        rows = join_metadata(rows, read_metadata(Path(cfg["metadata"]).expanduser()), Path(cfg["metadata"]))
    table = pd.DataFrame(rows).drop(columns="_relative", errors="ignore")
    ids = table["track_id"] if len(table) else pd.Series(dtype=str)
    if ids.duplicated().any():
        raise CorpusError(f"{folders['train']}: several files get the same track id "
                          f"{sorted(set(ids[ids.duplicated()]))[:5]}; rename them or set track_id in the metadata")
    if not len(table) or not (table["split"] == "train").any():
        raise CorpusError(f"no usable training tracks under {folders['train']}: {len(rejected)} of {len(files)} "
                          f"files were rejected (see {out_dir / 'rejected.csv'})")
    manifest = Manifest(table, out_dir)
    manifest.table = manifest.table[[*COLUMNS, *[c for c in manifest.table if c not in COLUMNS]]]
    manifest.save(out_dir / "manifest.csv")
    write_json(out_dir / "build.json", {
        "complete": True, "builder": "folder", "settings": dict(cfg), **identity(cfg),
        "files": len(files), "rejected": len(rejected), "seconds": round(time.perf_counter() - started, 1),
        "split_sizes": manifest.table["split"].value_counts().to_dict(), "manifest_sha256": manifest.sha256(),
    })
    return Manifest.load(out_dir / "manifest.csv")

