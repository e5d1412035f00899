"""The LUMINA signature database (docs/lumina.md#signature-database): one HDF5 file, resumable, append-only, one
set of settings.

Layout: `song_ids` (n,) str, `splits` (n,) str, `contents` (n,) str (each row's content key: what was
signed, `track_content`), `signatures_p` (n, d_P) float32, `signatures_m` (n, d_M) float32; `skipped_ids`,
`skipped_splits`, `skipped_reasons`, `skipped_contents` (tracks without a signature, with the reason);
attributes: the provenance (model id and hash, layer ranges, mode, chunk length, weights, seed, package
version, …; all of it in `settings_json`).

Rows are committed in small batches, each by appending to a copy of the file and renaming the copy into place,
so the file on disk is always a complete database: a run killed at any moment loses nothing committed and
duplicates nothing when restarted (it recomputes at most the batch it was working on).

A database is a store shared by every version of a catalogue (docs/execution.md#incremental-catalogues): a row
is found by its track id and content, so a catalogue that grows signs only its new tracks, and `view(tracks)`
gives one catalogue version's rows (a track taken down is simply absent from it; nothing else is recomputed).
On the `ray` backend the tracks to sign are cut into shards, each signed by a task into its own file beside the
database (`<database>.shards/`) and merged in order (docs/execution.md#shards).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from execution import distributed, parallel_map
from execution import options as parallel_options
from execution.files import atomic_path
from lumina import __version__
from lumina.data.audio import file_sha256
from lumina.data.manifest import AUDIO_SHA256, Manifest
from lumina.methods.lumina.signatures import (
    SignatureConfig,
    Skipped,
    TrackGradients,
    channel_layers,
    signature_dims,
    signatures_from_gradients,
    track_gradients,
)
from lumina.models.codes import read_clip
from lumina.models.remote import generator_handle, use, worker_generator
from lumina.runs.errors import AudioError, GradientError, ParameterError
from lumina.runs.locking import cache_lock
from lumina.runs.provenance import stamp

FORMAT = "lumina-signatures/2"
DATASETS = {"P": "signatures_p", "M": "signatures_m"}
NOT_SETTINGS = ("model_id", "package_version", "created_utc", "torch_threads", "catalogue_key")
"""Provenance that is recorded but does not make a database incompatible."""


@dataclass(frozen=True)
class Track:
    """One audio file to sign: id, split (train / query / control), path, text description, and the SHA-256
    of its audio (read from the file when empty)."""

    track_id: str
    split: str
    path: Path
    description: str = ""
    audio_sha256: str = ""


@dataclass
class SignatureDatabase:
    """The committed content of a database file. signatures: {"P": (n, d_P), "M": (n, d_M)} float32."""

    path: Path
    song_ids: list[str]
    splits: list[str]
    signatures: dict[str, np.ndarray]
    skipped: list[tuple[str, str, str]]
    provenance: dict
    contents: list[str] = field(default_factory=list)
    skipped_contents: list[str] = field(default_factory=list)

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

    def view(self, tracks: Sequence[Track], catalogue_key: str = "") -> SignatureDatabase:
        """One catalogue version's rows: the signature of each of `tracks` whose content is stored (in the
        order of `tracks`, with their splits) and the skipped ones; other rows (tracks taken down, older
        content) are left out. `catalogue_key` is recorded in the provenance (the version reports name)."""
        stored = {key: i for i, key in enumerate(zip(self.song_ids, self.contents, strict=True))}
        missed = {key: i for i, key in enumerate(zip((t for t, _, _ in self.skipped), self.skipped_contents,
                                                     strict=True))}
        keys = [(t, (t.track_id, track_content(t))) for t in tracks]
        rows = [(t, stored[k]) for t, k in keys if k in stored]
        index = np.array([i for _, i in rows], dtype=np.int64)
        return SignatureDatabase(
            path=self.path, song_ids=[t.track_id for t, _ in rows], splits=[t.split for t, _ in rows],
            signatures={c: v[index] for c, v in self.signatures.items()},
            skipped=[(t.track_id, t.split, self.skipped[missed[k]][2]) for t, k in keys if k in missed],
            provenance={**self.provenance, "catalogue_key": catalogue_key},
            contents=[self.contents[i] for i in index], skipped_contents=[k[1] for _, k in keys if k in missed],
        )


def track_content(track: Track) -> str:
    """What a track's signature depends on besides the settings: SHA-256 of its audio and description (16 hex
    digits). The audio is hashed here when the track does not carry its SHA-256; a missing file keys by path."""
    audio = track.audio_sha256
    if not audio:
        audio = file_sha256(track.path) if Path(track.path).is_file() else f"missing:{track.path}"
    return hashlib.sha256(f"{audio}\n{track.description}".encode()).hexdigest()[:16]


def manifest_tracks(manifest: Manifest) -> list[Track]:
    """Every track of a manifest (training, queries, controls), in manifest order."""
    shas = manifest.table[AUDIO_SHA256] if AUDIO_SHA256 in manifest.table else [""] * len(manifest.table)
    return [
        Track(row.track_id, row.split, manifest.path_of(row.track_id), row.description, str(sha))
        for row, sha in zip(manifest.table.itertuples(), shas, strict=True)
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
    text = h5py.string_dtype()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for name in ("song_ids", "splits", "contents", "skipped_ids", "skipped_splits", "skipped_reasons",
                     "skipped_contents"):
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
        f.attrs["writes_json"] = json.dumps([stamp(rows=0).record()], sort_keys=True, default=str)


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
                contents=_strings(f["contents"][()]),
                skipped_contents=_strings(f["skipped_contents"][()]),
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
    """Commit signed rows and skipped tracks atomically: append to a copy of the file, then rename it into place.
    Tracks carry their content keys (`track_content`)."""
    columns: dict[str, list | np.ndarray] = {}
    if rows:
        columns |= {"song_ids": [t.track_id for t, _ in rows], "splits": [t.split for t, _ in rows],
                    "contents": [track_content(t) for t, _ in rows]}
        columns |= {name: np.stack([sig[c] for _, sig in rows]) for c, name in DATASETS.items()}
    if skipped:
        columns |= {"skipped_ids": [t.track_id for t, _ in skipped], "skipped_splits": [t.split for t, _ in skipped],
                    "skipped_reasons": [reason for _, reason in skipped],
                    "skipped_contents": [track_content(t) for t, _ in skipped]}
    _commit(Path(path), columns)


def _commit(path: Path, columns: dict[str, list | np.ndarray]) -> None:
    """Append `columns` (dataset name → values) to a copy of the database and rename the copy into place; the
    write is stamped (command, time, machine, rows) into the `writes_json` attribute, since a store may be signed
    by several machines (Ray workers, later catalogue versions)."""
    if not columns:
        return
    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "a") as f:
            for name, values in columns.items():
                start = f[name].shape[0]
                f[name].resize(start + len(values), axis=0)
                f[name][start:] = values
            rows = len(columns.get("song_ids", ()))
            writes = json.loads(f.attrs.get("writes_json", "[]")) + [stamp(rows=rows).record()]
            f.attrs["writes_json"] = json.dumps(writes, sort_keys=True, default=str)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())


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


def unsigned(db: SignatureDatabase, tracks: Sequence[Track]) -> list[Track]:
    """The tracks whose id and content have neither a row nor a skipped entry in `db`."""
    done = set(zip(db.song_ids, db.contents, strict=True))
    done |= set(zip((t for t, _, _ in db.skipped), db.skipped_contents, strict=True))
    return [t for t in tracks if (t.track_id, track_content(t)) not in done]


def with_audio_sha(track: Track) -> Track:
    """The track with its audio SHA-256 filled in (read from the file once; a missing file keys by path)."""
    if track.audio_sha256:
        return track
    sha = file_sha256(track.path) if Path(track.path).is_file() else f"missing:{track.path}"
    return replace(track, audio_sha256=sha)


def extend(path: Path, generator, todo: Sequence[Track], config: SignatureConfig, *, batch_size: int,
           progress: bool) -> None:
    """Sign `todo` in this process into the open database at `path`, committing `batch_size` tracks at a time."""
    n_skipped = 0
    with tqdm(total=len(todo), desc=f"LUMINA signatures ({path.name})", disable=not progress or not todo) as bar:
        for first in range(0, len(todo), batch_size):
            batch = todo[first : first + batch_size]
            rows, skipped = sign_batch(generator, batch, config)
            append(path, rows, skipped)
            n_skipped += len(skipped)
            bar.update(len(batch))
            bar.set_postfix(skipped=n_skipped)


@dataclass(frozen=True)
class ShardJob:
    """One `sign_shard` task: the shard's database file, its tracks, the settings, the database's provenance (made
    once by the caller: a task does not hash the model again), the commit batch size and the torch threads."""

    path: str
    tracks: list[Track]
    config: SignatureConfig
    provenance: dict
    batch_size: int
    threads: int


def sign_shard(job: ShardJob) -> str:
    """A task: sign the tracks of one shard into its own database file (resuming what it holds) and return its
    path."""
    torch.set_num_threads(job.threads)
    torch.use_deterministic_algorithms(True)
    with cache_lock(job.path):
        db = open_database(job.path, job.provenance)
        extend(Path(job.path), worker_generator(), unsigned(db, job.tracks), job.config, batch_size=job.batch_size,
               progress=False)
    return job.path


def merge_shards(path: Path, shards: Sequence[Path]) -> None:
    """Append the rows and skipped tracks of finished shards, in their order, to the database at `path` in one
    commit, then delete the shards."""
    parts: dict[str, list[np.ndarray]] = {}
    for shard in shards:
        with h5py.File(shard, "r") as f:
            for name in f:
                if f[name].shape[0]:
                    parts.setdefault(name, []).append(f[name][()])
    columns = {name: np.concatenate(values) for name, values in parts.items()}
    _commit(path, {k: _strings(v) if v.dtype.kind in "OS" else v for k, v in columns.items()})
    for shard in shards:
        shard.unlink()


def shard_jobs(path: Path, tracks: Sequence[Track], todo: Sequence[Track], config: SignatureConfig,
               provenance: dict, batch_size: int) -> list[ShardJob]:
    """The `sign_shard` jobs of `todo`: a shard is the unsigned tracks among `shard_size` consecutive tracks of
    `tracks`, written to `<path>.shards/<first>-<key>.h5`, its key naming its tracks and their contents (so a
    shard file left by an interrupted run is resumed, and a changed shard is never mixed in)."""
    size = parallel_options().shard_size
    wanted = {(t.track_id, track_content(t)) for t in todo}
    jobs = []
    for first in range(0, len(tracks), size):
        shard = [t for t in tracks[first : first + size] if (t.track_id, track_content(t)) in wanted]
        if shard:
            key = hashlib.sha256("|".join(f"{t.track_id}:{track_content(t)}" for t in shard).encode()).hexdigest()
            jobs.append(ShardJob(str(path.with_name(path.name + ".shards") / f"{first:07d}-{key[:12]}.h5"), shard,
                                 config, provenance, batch_size, torch.get_num_threads()))
    return jobs


def sign_sharded(path: Path, generator, tracks: Sequence[Track], todo: Sequence[Track], config: SignatureConfig,
                 provenance: dict, *, batch_size: int, progress: bool) -> None:
    """Sign `todo` as tasks of `parallel_map` (`shard_jobs`). A task runs with this process's torch thread count
    and requests as many CPUs (same threads, same bits). Finished shards are merged into `path` in catalogue
    order while later ones run, in groups that hold at least as many tracks as this run merged before them: a
    commit copies the database, so the copying grows with the tracks signed, not with their square."""
    jobs = shard_jobs(path, tracks, todo, config, provenance, batch_size)
    results = parallel_map(sign_shard, jobs, initializer=use, initargs=(generator_handle(generator),),
                           workers=parallel_options().workers, cpus=torch.get_num_threads(),
                           gpus=parallel_options().gpus_per_task, first_here=True)  # numba compiles once
    finished: list[Path] = []
    merged = waiting = 0
    for number, (job, shard) in tqdm(enumerate(zip(jobs, results, strict=True), 1), total=len(jobs),
                                     desc=f"LUMINA shards ({path.name})", disable=not progress, unit="shard"):
        finished.append(Path(shard))
        waiting += len(job.tracks)
        if waiting >= merged or number == len(jobs):
            merge_shards(path, finished)
            merged, waiting, finished = merged + waiting, 0, []


def build_database(
    path: str | Path,
    generator,
    tracks: Sequence[Track],
    config: SignatureConfig,
    *,
    batch_size: int = 8,
    progress: bool = True,
    catalogue_key: str = "",
) -> SignatureDatabase:
    """Sign every track not yet in the database at `path` (created when missing) and return the view of
    `tracks` (`SignatureDatabase.view`; `catalogue_key` names their catalogue version).

    A track is signed when no row holds its id with its content (`track_content`), so an interrupted run
    continues, new tracks are appended and a changed file is signed again. Tracks are committed `batch_size`
    at a time; the batch size does not change any signature. On the `ray` backend the work is sharded
    (`sign_sharded`); the signatures are the same bits. Processes building the same database take turns (a
    lock file beside it).
    """
    path = Path(path)
    ids = [t.track_id for t in tracks]
    if len(set(ids)) != len(ids):
        raise ParameterError(f"duplicated track ids: {sorted({i for i in ids if ids.count(i) > 1})[:5]}")
    tracks = [with_audio_sha(t) for t in tracks]
    provenance = database_provenance(generator, config)
    with cache_lock(path):
        db = open_database(path, provenance)
        todo = unsigned(db, tracks)
        if distributed() and todo:
            sign_sharded(path, generator, tracks, todo, config, provenance, batch_size=batch_size, progress=progress)
        else:
            extend(path, generator, todo, config, batch_size=batch_size, progress=progress)
        return read_database(path).view(tracks, catalogue_key)
