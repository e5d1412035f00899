"""Run folders and score-matrix artefacts for the aria tests, written exactly as docs/formats.md describes."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np


def write_scores(path: Path, scores: np.ndarray, segment_track: list[str], query_ids: list[str], *, method: str,
                 setting: str, normalization: str, manifest: Path | None) -> Path:
    """A score-matrix artefact exactly as docs/formats.md describes it, written with h5py."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = h5py.string_dtype()
    with h5py.File(path, "w") as f:
        f.create_dataset("scores", data=np.asarray(scores, dtype=np.float32))
        f.create_dataset("segment_track", data=np.array(segment_track, dtype=object), dtype=text)
        f.create_dataset("segment_start_s", data=np.zeros(len(segment_track), dtype=np.float32))
        f.create_dataset("track_ids", data=np.array(list(dict.fromkeys(segment_track)), dtype=object), dtype=text)
        f.create_dataset("query_ids", data=np.array(query_ids, dtype=object), dtype=text)
        f.attrs.update({"method": method, "setting": setting, "orientation": "train x query",
                        "level": "segment" if len(segment_track) > len(set(segment_track)) else "track",
                        "normalization": normalization, "settings_json": "{}",
                        "provenance_json": json.dumps({"manifest": str(manifest)} if manifest else {})})
    return path


def write_run(run_dir: Path, record: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps(record))
