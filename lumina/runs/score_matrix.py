"""The score-matrix artefact every method writes (docs/formats.md), and the run record beside it, both stamped
with their provenance when written (`write_run`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from execution.files import atomic_path, write_json
from lumina.runs.errors import ParameterError
from lumina.runs.provenance import Provenance

NORMALIZATIONS = ("zscore", "rank")
STALE_WITH_NEW_SCORES = ("aria.json", "aria_queries.csv")
"""Files beside a `scores.h5` that describe it (Aria's diagnoses): removed when the matrix is rewritten."""


@dataclass
class ScoreMatrix:
    """Scores of training units (rows) against queries (columns).

    scores: (N_seg, Q) float32; segment_track: (N_seg,) track id per row; segment_start_s: (N_seg,).
    provenance: before writing, the method's own fields (written under `method`); read back, the whole record.
    tables: name → per-query evidence the run writes beside the matrix as `<name>.csv` (LUMINA's tiers and
    shares), so readers never recompute a method's scoring.
    """

    scores: np.ndarray
    segment_track: list[str]
    query_ids: list[str]
    method: str
    setting: str
    normalization: str = "zscore"
    segment_start_s: np.ndarray | None = None
    settings: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float32)
        if self.scores.ndim != 2:
            raise ParameterError(f"scores must be 2-D (segments x queries), got shape {self.scores.shape}")
        n_seg, n_query = self.scores.shape
        if len(self.segment_track) != n_seg:
            raise ParameterError(f"segment_track has {len(self.segment_track)} entries for {n_seg} rows")
        if len(self.query_ids) != n_query:
            raise ParameterError(f"query_ids has {len(self.query_ids)} entries for {n_query} columns")
        if self.normalization not in NORMALIZATIONS:
            raise ParameterError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if self.segment_start_s is None:
            self.segment_start_s = np.zeros(n_seg, dtype=np.float32)
        self.segment_start_s = np.asarray(self.segment_start_s, dtype=np.float32)

    @property
    def track_ids(self) -> list[str]:
        """Training tracks in first-appearance order of the rows."""
        return list(dict.fromkeys(self.segment_track))

    @property
    def level(self) -> str:
        return "track" if len(self.track_ids) == len(self.segment_track) else "segment"

    def save(self, path: str | Path) -> Path:
        """Write the HDF5 artefact atomically (a temporary file renamed into place)."""
        text = h5py.string_dtype()
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("scores", data=self.scores)
            f.create_dataset("segment_track", data=np.array(self.segment_track, dtype=object), dtype=text)
            f.create_dataset("segment_start_s", data=self.segment_start_s)
            f.create_dataset("track_ids", data=np.array(self.track_ids, dtype=object), dtype=text)
            f.create_dataset("query_ids", data=np.array(self.query_ids, dtype=object), dtype=text)
            f.attrs["method"] = self.method
            f.attrs["setting"] = self.setting
            f.attrs["orientation"] = "train x query"
            f.attrs["level"] = self.level
            f.attrs["normalization"] = self.normalization
            f.attrs["settings_json"] = json.dumps(self.settings, sort_keys=True, default=str)
            f.attrs["provenance_json"] = json.dumps(self.provenance, sort_keys=True, default=str)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ScoreMatrix:
        with h5py.File(path, "r") as f:
            return cls(
                scores=f["scores"][()],
                segment_track=[s.decode() if isinstance(s, bytes) else s for s in f["segment_track"][()]],
                query_ids=[s.decode() if isinstance(s, bytes) else s for s in f["query_ids"][()]],
                method=str(f.attrs["method"]),
                setting=str(f.attrs["setting"]),
                normalization=str(f.attrs["normalization"]),
                segment_start_s=f["segment_start_s"][()],
                settings=json.loads(f.attrs["settings_json"]),
                provenance=json.loads(f.attrs["provenance_json"]),
            )


def write_run(run_dir: str | Path, record: dict, provenance: Provenance, matrix: ScoreMatrix | None = None) -> Path:
    """Write `run.json` (and `scores.h5` with the matrix's tables when a matrix is given) into `run_dir`, both
    stamped with `provenance` at this moment (the method's fields, `matrix.provenance`, go under `method`);
    returns the folder."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if matrix is not None:
        provenance = provenance.with_section("method", matrix.provenance)
    stamped = provenance.restamped().record()
    if matrix is not None:
        for stale in STALE_WITH_NEW_SCORES:  # diagnoses of the matrix being replaced (docs/formats.md)
            (run_dir / stale).unlink(missing_ok=True)
        matrix.provenance = stamped
        matrix.save(run_dir / "scores.h5")
        for name, table in matrix.tables.items():
            with atomic_path(run_dir / f"{name}.csv") as tmp:
                table.to_csv(tmp, index=False)
        record = {"scores": "scores.h5", "status": "ok", "tables": sorted(f"{n}.csv" for n in matrix.tables),
                  **record}
    write_json(run_dir / "run.json", {**record, "provenance": stamped})
    return run_dir
