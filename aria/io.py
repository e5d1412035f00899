"""Readers for the artefacts Aria judges: score matrix (HDF5), run record (JSON) and corpus manifest (CSV).

Formats: docs/formats.md. Every error names the file and what is wrong with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from aria.errors import ArtefactError

NORMALIZATIONS = ("zscore", "rank")
ORIENTATION = "train x query"


@dataclass
class ScoreArtefact:
    """A score matrix read from `scores.h5`.

    scores: (N_seg, Q) float32, rows training units, columns queries; segment_track: (N_seg,) track id
    of each row; track_ids: the N training tracks in first-appearance order; query_ids: the Q queries.
    """

    path: Path
    scores: np.ndarray
    segment_track: list[str]
    track_ids: list[str]
    query_ids: list[str]
    method: str
    setting: str
    level: str
    normalization: str
    settings: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


def _strings(f: h5py.File, name: str, path: Path) -> list[str]:
    if name not in f:
        raise ArtefactError(f"{path}: missing dataset `{name}` (see docs/formats.md)")
    values = f[name][()]
    if np.ndim(values) != 1:
        raise ArtefactError(f"{path}: dataset `{name}` must be 1-D, got shape {np.shape(values)}")
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _attr(f: h5py.File, name: str, default: str) -> str:
    value = f.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def _json_attr(f: h5py.File, name: str, path: Path) -> dict:
    text = _attr(f, name, "{}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ArtefactError(f"{path}: attribute `{name}` is not valid JSON ({err})") from err
    if not isinstance(value, dict):
        raise ArtefactError(f"{path}: attribute `{name}` must hold a JSON object")
    return value


def read_scores(path: str | Path) -> ScoreArtefact:
    """Read and check a score-matrix artefact; raises `ArtefactError` naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ArtefactError(f"{path}: score matrix not found")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ArtefactError(f"{path}: not a readable HDF5 file ({err})") from err
    with f:
        if "scores" not in f:
            raise ArtefactError(f"{path}: missing dataset `scores` (see docs/formats.md)")
        scores = np.asarray(f["scores"][()], dtype=np.float32)
        segment_track = _strings(f, "segment_track", path)
        query_ids = _strings(f, "query_ids", path)
        track_ids = _strings(f, "track_ids", path) if "track_ids" in f else list(dict.fromkeys(segment_track))
        orientation = _attr(f, "orientation", ORIENTATION)
        normalization = _attr(f, "normalization", "zscore")
        method = _attr(f, "method", "unknown")
        setting = _attr(f, "setting", "default")
        settings = _json_attr(f, "settings_json", path)
        provenance = _json_attr(f, "provenance_json", path)
    if scores.ndim != 2 or 0 in scores.shape:
        raise ArtefactError(f"{path}: `scores` must be a non-empty 2-D array, got shape {scores.shape}")
    n_seg, n_query = scores.shape
    if orientation != ORIENTATION:
        raise ArtefactError(f"{path}: orientation is {orientation!r}; Aria reads {ORIENTATION!r} (transpose it)")
    if len(segment_track) != n_seg:
        raise ArtefactError(f"{path}: `segment_track` has {len(segment_track)} entries for {n_seg} rows")
    if len(query_ids) != n_query:
        raise ArtefactError(f"{path}: `query_ids` has {len(query_ids)} entries for {n_query} columns")
    if set(track_ids) != set(segment_track) or len(set(track_ids)) != len(track_ids):
        raise ArtefactError(f"{path}: `track_ids` must list each track of `segment_track` exactly once")
    if not np.isfinite(scores).all():
        bad = int((~np.isfinite(scores)).sum())
        raise ArtefactError(f"{path}: `scores` holds {bad} NaN or infinite values")
    if normalization not in NORMALIZATIONS:
        raise ArtefactError(f"{path}: normalization {normalization!r} is not one of {NORMALIZATIONS}")
    level = "track" if len(track_ids) == n_seg else "segment"
    return ScoreArtefact(
        path, scores, segment_track, track_ids, query_ids, method, setting, level, normalization,
        settings, provenance,
    )


def read_run(run_dir: str | Path) -> dict:
    """Read `run.json` of a run folder; adds `dir` (the folder) and checks `status` and `scores`."""
    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ArtefactError(f"{path}: run record not found") from err
    except json.JSONDecodeError as err:
        raise ArtefactError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(record, dict):
        raise ArtefactError(f"{path}: must hold a JSON object")
    record.setdefault("method", run_dir.parent.name)
    record.setdefault("setting", run_dir.name)
    record.setdefault("status", "ok")
    record["dir"] = run_dir
    if record["status"] == "ok" and not (run_dir / record.get("scores", "scores.h5")).is_file():
        raise ArtefactError(f"{path}: status is ok but {run_dir / record.get('scores', 'scores.h5')} is missing")
    return record


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest CSV as strings; `path` becomes absolute, `split` defaults to `train`. Index: track_id."""
    path = Path(path)
    if not path.is_file():
        raise ArtefactError(f"{path}: manifest not found (set aria.manifest=PATH or build the corpus)")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ArtefactError(f"{path}: not a readable CSV manifest ({err})") from err
    for column in ("track_id", "path"):
        if column not in table.columns:
            raise ArtefactError(f"{path}: manifest lacks the required column `{column}`")
    duplicated = table["track_id"][table["track_id"].duplicated()].tolist()
    if duplicated:
        raise ArtefactError(f"{path}: duplicated track ids {duplicated[:5]}")
    if "split" not in table.columns:
        table["split"] = "train"
    table["split"] = table["split"].replace("", "train")
    root = path.parent.resolve()
    table["path"] = [str(p if Path(p).is_absolute() else root / p) for p in table["path"]]
    return table.set_index("track_id", drop=False)


def manifest_path(artefact: ScoreArtefact, explicit: str | Path | None = None) -> Path:
    """The manifest to read for `artefact`: `explicit` when given, else the one its provenance names."""
    if explicit:
        return Path(explicit)
    named = artefact.provenance.get("manifest")
    if not named:
        raise ArtefactError(
            f"{artefact.path}: its provenance names no manifest; give one with aria.manifest=PATH"
        )
    return Path(named)


def check_tracks(artefact: ScoreArtefact, manifest: pd.DataFrame, manifest_file: Path) -> None:
    """Raise `ArtefactError` naming both files when the matrix has training tracks the manifest lacks."""
    missing = [t for t in artefact.track_ids if t not in manifest.index]
    if missing:
        raise ArtefactError(
            f"{artefact.path}: {len(missing)} training track(s) not in the manifest {manifest_file} "
            f"(first: {missing[:5]}); the matrix and the manifest do not belong together"
        )
