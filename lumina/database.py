"""The LUMINA signature database (docs/lumina.md#signature-database): one HDF5 file, resumable, append-only, one
set of settings.

Layout: `song_ids` (n,) str, `splits` (n,) str, `signatures_p` (n, d_P) float32, `signatures_m` (n, d_M)
float32; `skipped_ids`, `skipped_splits`, `skipped_reasons` (tracks without a signature, with the reason);
attributes: the provenance (model id and hash, layer ranges, mode, chunk length, weights, seed, package
version, …; all of it in `settings_json`).

Rows are committed in small batches, each by appending to a copy of the file and renaming the copy into place,
so the file on disk is always a complete database: a run killed at any moment loses nothing committed and
duplicates nothing when restarted (it recomputes at most the batch it was working on).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from lumina import __version__
from lumina.errors import AudioError, GradientError, ParameterError
from lumina.generator.codes import read_clip
from lumina.locking import cache_lock
from lumina.manifest import Manifest
from lumina.signatures import (
    SignatureConfig,
    Skipped,
    TrackGradients,
    channel_layers,
    signature_dims,
    signatures_from_gradients,
    track_gradients,
)

FORMAT = "lumina-signatures/1"
DATASETS = {"P": "signatures_p", "M": "signatures_m"}
NOT_SETTINGS = ("model_id", "package_version", "created_utc", "torch_threads")
"""Provenance that is recorded but does not make a database incompatible."""


@dataclass(frozen=True)
class Track:
    """One audio file to sign: id, split (train / query / control), path and text description."""

    track_id: str
    split: str
    path: Path
    description: str = ""


@dataclass
class SignatureDatabase:
    """The committed content of a database file. signatures: {"P": (n, d_P), "M": (n, d_M)} float32."""

    path: Path
    song_ids: list[str]
    splits: list[str]
    signatures: dict[str, np.ndarray]
    skipped: list[tuple[str, str, str]]
    provenance: dict

    def rows(self, split: str) -> np.ndarray:
        """Row indices of one split, in database order."""
        return np.array([i for i, s in enumerate(self.splits) if s == split], dtype=np.int64)

    def ids(self, split: str) -> list[str]:
        return [self.song_ids[i] for i in self.rows(split)]

    def matrix(self, channel: str, split: str) -> np.ndarray:
        """Signatures (n_split, d) of one channel and split."""
        return self.signatures[channel][self.rows(split)]

    def row_of(self, track_id: str) -> int:
        try:
            return self.song_ids.index(track_id)
        except ValueError:
            raise ParameterError(f"{self.path}: no signature for {track_id!r}") from None


def manifest_tracks(manifest: Manifest) -> list[Track]:
    """Every track of a manifest (training, queries, controls), in manifest order."""
    return [
        Track(row.track_id, row.split, manifest.path_of(row.track_id), row.description)
        for row in manifest.table.itertuples()
    ]


def database_provenance(generator, config: SignatureConfig) -> dict:
    """What a database records about how its signatures were made (and must match to be reused)."""
    layers = channel_layers(generator.num_layers, config)
    return {
        "format": FORMAT,
        "model_id": generator.source or "(in memory)",
        "model_hash": generator.identity(),
        "sample_rate": int(generator.codec.sample_rate),
        "num_layers": generator.num_layers,
        "p_layers_resolved": layers["P"],
        "m_layers_resolved": layers["M"],
        "dims": signature_dims(generator, config),
        "package_version": __version__,
        "torch_threads": torch.get_num_threads(),
        **asdict(config),
    }


def _canonical(provenance: dict) -> dict:
    return json.loads(json.dumps({k: v for k, v in provenance.items() if k not in NOT_SETTINGS}, default=list))


def _create(path: Path, provenance: dict) -> None:
    """A new empty database, written to a temporary file and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    text = h5py.string_dtype()
    with h5py.File(tmp, "w") as f:
        for name in ("song_ids", "splits", "skipped_ids", "skipped_splits", "skipped_reasons"):
            f.create_dataset(name, shape=(0,), maxshape=(None,), dtype=text, chunks=(256,))
        for channel, name in DATASETS.items():
            dim = provenance["dims"][channel]
            f.create_dataset(name, shape=(0, dim), maxshape=(None, dim), dtype=np.float32,
                             chunks=(max(1, min(256, 65536 // dim)), dim))
        for key, value in provenance.items():
            if value is not None and not isinstance(value, dict):
                f.attrs[key] = np.asarray(value) if isinstance(value, list | tuple) else value
        f.attrs["settings_json"] = json.dumps(provenance, sort_keys=True, default=list)
        f.attrs["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    tmp.replace(path)


def _strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_database(path: str | Path) -> SignatureDatabase:
    """The content of a database file."""
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"{path}: no signature database here (build one with `python -m experiments.run "
                             "+method=lumina`, or check the path)")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ParameterError(f"{path}: not a LUMINA signature database (format {f.attrs.get('format')!r})")
            return SignatureDatabase(
                path=path,
                song_ids=_strings(f["song_ids"][()]),
                splits=_strings(f["splits"][()]),
                signatures={c: f[name][()] for c, name in DATASETS.items()},
                skipped=list(zip(_strings(f["skipped_ids"][()]), _strings(f["skipped_splits"][()]),
                                 _strings(f["skipped_reasons"][()]), strict=True)),
                provenance=json.loads(f.attrs["settings_json"]) | {"created_utc": str(f.attrs["created_utc"])},
            )
    except OSError as err:
        raise ParameterError(f"{path}: cannot read the signature database ({err}); delete it to rebuild") from err


def open_database(path: str | Path, provenance: dict) -> SignatureDatabase:
    """Create the database, or reopen it when it was made with the same settings and model; refuse otherwise."""
    path = Path(path)
    if not path.exists():
        _create(path, provenance)
    db = read_database(path)
    stored, wanted = _canonical(db.provenance), _canonical(provenance)
    if stored != wanted:
        changes = [f"{k}: {stored.get(k)!r} in the database, {wanted.get(k)!r} now"
                   for k in sorted(set(stored) | set(wanted)) if stored.get(k) != wanted.get(k)]
        raise ParameterError(
            f"{path}: this signature database was made with other settings, so its signatures cannot be mixed "
            f"with new ones ({'; '.join(changes)}). Use another database path (method.database=...) or delete "
            "the file to rebuild it."
        )
    return db


def append(path: str | Path, rows: Sequence[tuple[Track, dict[str, np.ndarray]]],
           skipped: Sequence[tuple[Track, str]]) -> None:
    """Commit signed rows and skipped tracks atomically: append to a copy of the file, then rename it into place."""
    if not rows and not skipped:
        return
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.copyfile(path, tmp)
    columns: dict[str, list | np.ndarray] = {}
    if rows:
        columns |= {"song_ids": [t.track_id for t, _ in rows], "splits": [t.split for t, _ in rows]}
        columns |= {name: np.stack([sig[c] for _, sig in rows]) for c, name in DATASETS.items()}
    if skipped:
        columns |= {"skipped_ids": [t.track_id for t, _ in skipped], "skipped_splits": [t.split for t, _ in skipped],
                    "skipped_reasons": [reason for _, reason in skipped]}
    with h5py.File(tmp, "a") as f:
        for name, values in columns.items():
            start = f[name].shape[0]
            f[name].resize(start + len(values), axis=0)
            f[name][start:] = values
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    tmp.replace(path)


def sign_batch(generator, tracks: Sequence[Track], config: SignatureConfig
               ) -> tuple[list[tuple[Track, dict[str, np.ndarray]]], list[tuple[Track, str]]]:
    """Signatures of a few tracks (a JL batch shares its projection blocks) and the tracks skipped, with why."""
    signed: list[tuple[Track, TrackGradients]] = []
    skipped: list[tuple[Track, str]] = []
    for track in tracks:
        try:
            audio = read_clip(generator.codec, track.path, allow_silent=True)
        except AudioError as err:
            skipped.append((track, str(err)))
            continue
        try:
            grads = track_gradients(generator, audio, track.description, config)
        except GradientError as err:
            skipped.append((track, f"{track.path}: {err}"))
            continue
        if isinstance(grads, Skipped):
            skipped.append((track, grads.reason))
        else:
            signed.append((track, grads))
    rows = []
    for (track, _), sig in zip(signed, signatures_from_gradients([g for _, g in signed], config), strict=True):
        if isinstance(sig, Skipped):
            skipped.append((track, sig.reason))
        else:
            rows.append((track, sig))
    return rows, skipped


def build_database(
    path: str | Path,
    generator,
    tracks: Sequence[Track],
    config: SignatureConfig,
    *,
    batch_size: int = 8,
    progress: bool = True,
) -> SignatureDatabase:
    """Sign every track not yet in the database at `path` (created when missing) and return the database.

    Tracks already signed or skipped are not recomputed, so an interrupted run continues and new tracks are
    appended. Tracks are committed `batch_size` at a time; the batch size does not change any signature.
    Processes building the same database take turns (a lock file beside it).
    """
    path = Path(path)
    ids = [t.track_id for t in tracks]
    if len(set(ids)) != len(ids):
        raise ParameterError(f"duplicated track ids: {sorted({i for i in ids if ids.count(i) > 1})[:5]}")
    with cache_lock(path):
        db = open_database(path, database_provenance(generator, config))
        done = set(db.song_ids) | {i for i, _, _ in db.skipped}
        todo = [t for t in tracks if t.track_id not in done]
        n_skipped = len(db.skipped)
        with tqdm(total=len(todo), desc=f"LUMINA signatures ({path.name})", disable=not progress or not todo) as bar:
            for first in range(0, len(todo), batch_size):
                batch = todo[first : first + batch_size]
                rows, skipped = sign_batch(generator, batch, config)
                append(path, rows, skipped)
                n_skipped += len(skipped)
                bar.update(len(batch))
                bar.set_postfix(skipped=n_skipped)
        return read_database(path)
