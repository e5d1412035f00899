"""A user's catalogue as a corpus (`data=folder`): a folder of audio files, an optional metadata CSV and an
optional folder of query files. The build is keyed by the catalogue's content, not by its name or place
(docs/corpus.md#how-a-folder-catalogue-is-keyed). Every file is hashed and validated with
`lumina.data.audio.load_audio`; both results are
cached per source folder by path, size and modification time, so a re-run only reads new or changed files."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from execution.files import write_json
from lumina.data.audio import file_sha256, load_audio, read_file
from lumina.data.common import read_json, settings_key
from lumina.data.manifest import AUDIO_SHA256, COLUMNS, Manifest
from lumina.runs.errors import AudioError, CorpusError, ParameterError

log = logging.getLogger(__name__)

BUILDER_VERSION = "folder-3"
"""Part of the cache key: bump it whenever a change to this builder changes its output."""

CatalogueFile = tuple[str, Path, Path]
"""(split, the folder it was found in, the file's absolute path)"""


def locations(cfg: Mapping) -> dict:
    """The resolved folders and metadata file (recorded in build.json; not part of the cache key)."""
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


def catalogue_files(cfg: Mapping) -> list[CatalogueFile]:
    """Every audio file of the catalogue: `data.path` (split `train`), then `data.queries` (split `query`).
    Raises `CorpusError` for a missing setting, a missing folder or a folder without audio files."""
    if cfg.get("path") in (None, "", "???"):
        raise CorpusError("data.path is required for data=folder: python -m experiments.run data=folder "
                          "data.path=/path/to/audio")
    folders = {"train": Path(cfg["path"]).expanduser().resolve()}
    if cfg.get("queries"):
        folders["query"] = Path(cfg["queries"]).expanduser().resolve()
    files: list[CatalogueFile] = []
    for split, folder in folders.items():
        if not folder.is_dir():
            raise CorpusError(f"audio folder not found: {folder} (data.{'path' if split == 'train' else 'queries'})")
        found = audio_files(folder, list(cfg["extensions"]))
        if not found:
            raise CorpusError(f"no audio files ({', '.join(cfg['extensions'])}) under {folder}; "
                              "point data.path at a folder of recordings")
        files.extend((split, folder, path) for path in found)
    return files


def metadata_file(cfg: Mapping) -> Path | None:
    """The metadata CSV `data.metadata` names (None when unset); `CorpusError` when it is missing."""
    if not cfg.get("metadata"):
        return None
    path = Path(cfg["metadata"]).expanduser()
    if not path.is_file():
        raise CorpusError(f"metadata file not found: {path} (data.metadata)")
    return path


def per_file(files: list[CatalogueFile], compute: Callable[[Path], object], corpus_root: Path, name: str, *,
             threads: int, progress: bool) -> dict[str, object]:
    """`compute(path)` of every file, by absolute path, on `threads` threads. Results are cached in
    `corpus_root/folder-files/<source folder>-<hash of its path>/<name>.json`; a file whose size and modification
    time match its cached entry is not read again. The caches are saved even when the work is interrupted."""
    results: dict[str, object] = {}
    for folder in dict.fromkeys(folder for _, folder, _ in files):
        cache_path = corpus_root / "folder-files" / f"{folder.name}-{settings_key(str(folder))}" / f"{name}.json"
        cache, fresh, todo = read_json(cache_path), {}, []
        for path in (p for _, f, p in files if f == folder):
            stat = path.stat()
            stamp, known = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}, cache.get(str(path), {})
            if "value" in known and known["size"] == stamp["size"] and known["mtime_ns"] == stamp["mtime_ns"]:
                results[str(path)] = known["value"]
            else:
                todo.append((path, stamp))
        try:
            with ThreadPoolExecutor(max(1, threads)) as pool:
                done = pool.map(lambda item: compute(item[0]), todo)
                for (path, stamp), value in tqdm(zip(todo, done, strict=True), total=len(todo),
                                                 desc=f"{name} {folder.name}", disable=not progress):
                    results[str(path)] = value
                    fresh[str(path)] = {**stamp, "value": value}
        finally:
            if fresh:
                write_json(cache_path, {**cache, **fresh})
    return results


def cache_key(cfg: Mapping, corpus_root: Path, *, threads: int = 2, progress: bool = False) -> str:
    """Short hash of the catalogue's content (docs/corpus.md#how-a-folder-catalogue-is-keyed): the path relative to
    its folder and the
    SHA-256 of every audio file, by split, the metadata file's SHA-256, the check rate, the minimum duration and
    the builder version.
    Neither `data.name` nor where the folders lie is part of it."""
    files = catalogue_files(cfg)
    hashes = per_file(files, file_sha256, corpus_root, "sha256", threads=threads, progress=progress)
    listing: dict[str, list[list[str]]] = {}
    for split, folder, path in files:
        listing.setdefault(split, []).append([path.relative_to(folder).as_posix(), str(hashes[str(path)])])
    metadata = metadata_file(cfg)
    return settings_key({"builder_version": BUILDER_VERSION, "sample_rate": int(cfg["sample_rate"]),
                         "min_duration_s": float(cfg["min_duration_s"]), "files": listing,
                         "metadata": file_sha256(metadata) if metadata else None})


def validate(path: Path, sample_rate: int) -> dict:
    """Check one file with `load_audio`: {"ok", "problem", "fix", "duration_s", "sample_rate"}."""
    try:
        audio = load_audio(path, sample_rate)
    except AudioError as err:
        return {"ok": False, "problem": err.problem, "fix": err.fix, "duration_s": None, "sample_rate": None}
    return {"ok": True, "problem": "", "fix": "", "duration_s": audio.shape[0] / sample_rate,
            "sample_rate": read_file(path, info_only=True)[1]}


def too_short(result: dict, min_duration_s: float) -> dict:
    """`result` of `validate`, rejected when the file lasts less than `min_duration_s` (`data.min_duration_s`,
    docs/corpus.md#bad-files)."""
    if not result["ok"] or result["duration_s"] >= min_duration_s:
        return result
    return {**result, "ok": False, "problem": f"too short: {result['duration_s']:.2f} s, less than "
            f"data.min_duration_s = {min_duration_s:g} s (a truncated or cut file?)",
            "fix": f"use a recording of at least {min_duration_s:g} s, or lower data.min_duration_s"}


def read_metadata(path: Path) -> pd.DataFrame:
    """The metadata CSV as strings; it must have a `track_id` or a `path` column to join on."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "track_id" not in table.columns and "path" not in table.columns:
        raise CorpusError(f"{path}: metadata needs a `track_id` or `path` column to join rows to audio files")
    return table


def join_metadata(rows: list[dict], metadata: pd.DataFrame, source: Path) -> list[dict]:
    """Overlay metadata rows on file rows. A row joins on `path` (the file's path relative to its folder, or
    its name) when it has one, else on `track_id` (the generated id or the file's stem); metadata values
    override the generated ones, `path` and `audio_sha256` excepted. Unmatched metadata rows are reported."""
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
        row.update({k: v for k, v in record.items() if k not in ("path", AUDIO_SHA256) and v != ""})
    if unmatched:
        log.warning("%s: %d metadata rows match no usable audio file (missing or rejected): %s",
                    source, len(unmatched), ", ".join(unmatched[:10]))
    return rows


def build(cfg: Mapping, out_dir: Path, *, threads: int = 2, progress: bool = True) -> Manifest:
    """Validate the catalogue's audio files and write manifest.csv, rejected.csv and build.json in `out_dir`
    (`<cache root>/corpus/<name>-<cache_key>`; the per-file caches live beside it).

    Bad files are skipped with a warning naming the file and the problem (`on_bad_file: skip`) or raise
    `CorpusError` listing them all (`on_bad_file: error`); validation results are kept either way.
    """
    if cfg["on_bad_file"] not in ("skip", "error"):
        raise ParameterError(f"data.on_bad_file must be skip or error, got {cfg['on_bad_file']!r}")
    min_duration_s = float(cfg["min_duration_s"])
    if not min_duration_s >= 0:
        raise ParameterError(f"data.min_duration_s must be >= 0 seconds, got {cfg['min_duration_s']!r}")
    started = time.perf_counter()
    files = catalogue_files(cfg)
    metadata = metadata_file(cfg)
    sample_rate = int(cfg["sample_rate"])
    hashes = per_file(files, file_sha256, out_dir.parent, "sha256", threads=threads, progress=progress)
    results = per_file(files, lambda path: validate(path, sample_rate), out_dir.parent, f"checks-{sample_rate}",
                       threads=threads, progress=progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, rejected = [], []
    for split, folder, path in files:
        result = too_short(results[str(path)], min_duration_s)
        if not result["ok"]:
            rejected.append({"path": str(path), "problem": result["problem"], "fix": result["fix"]})
            continue
        relative = path.relative_to(folder)
        rows.append({"track_id": file_id(relative), "split": split, "path": str(path),
                     "duration_s": result["duration_s"], "sample_rate": result["sample_rate"],
                     AUDIO_SHA256: hashes[str(path)], "_relative": relative.as_posix()})
    pd.DataFrame(rejected, columns=["path", "problem", "fix"]).to_csv(out_dir / "rejected.csv", index=False)
    if rejected and cfg["on_bad_file"] == "error":
        listing = "\n".join(f"  {r['path']}: {r['problem']} ({r['fix']})" for r in rejected)
        raise CorpusError(f"{len(rejected)} unusable audio files (data.on_bad_file=error; set it to skip to leave "
                          f"them out):\n{listing}")
    for item in rejected:
        log.warning("skipping %s: %s (%s)", item["path"], item["problem"], item["fix"])
    if metadata is not None:
        rows = join_metadata(rows, read_metadata(metadata), metadata)
    table = pd.DataFrame(rows).drop(columns="_relative", errors="ignore")
    train_folder = files[0][1]
    ids = table["track_id"] if len(table) else pd.Series(dtype=str)
    if ids.duplicated().any():
        raise CorpusError(f"{train_folder}: several files get the same track id "
                          f"{sorted(set(ids[ids.duplicated()]))[:5]}; rename them or set track_id in the metadata")
    if not len(table) or not (table["split"] == "train").any():
        raise CorpusError(f"no usable training tracks under {train_folder}: {len(rejected)} of {len(files)} "
                          f"files were rejected (see {out_dir / 'rejected.csv'})")
    manifest = Manifest(table, out_dir)
    manifest.table = manifest.table[[*COLUMNS, *[c for c in manifest.table if c not in COLUMNS]]]
    manifest.save(out_dir / "manifest.csv")
    write_json(out_dir / "build.json", {
        "complete": True, "builder": "folder", "builder_version": BUILDER_VERSION, "settings": dict(cfg),
        **locations(cfg), "files": len(files), "rejected": len(rejected),
        "seconds": round(time.perf_counter() - started, 1),
        "split_sizes": manifest.table["split"].value_counts().to_dict(), "manifest_sha256": manifest.sha256(),
        "catalogue_key": manifest.catalogue_key,
    })
    return Manifest.load(out_dir / "manifest.csv")
