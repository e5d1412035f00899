"""Features of many tracks: cached on disk (keyed by audio SHA-256 and feature settings), computed in
parallel worker processes with a progress bar."""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from aria.channels import AUDIO
from aria.errors import ArtefactError, ParameterError
from aria.features import FeatureSettings, track_features
from execution.files import atomic_path
from execution.parallel import parallel_map
from execution.stdio import native_stderr_silenced


@dataclass
class FeatureTable:
    """Features of N tracks: `vectors[name]` (N, D) float64, `sequences[name]` N int arrays,
    `audio_sha` the SHA-256 of each track's file, `seconds` (N,) the time its extraction took."""

    track_ids: list[str]
    vectors: dict[str, np.ndarray]
    sequences: dict[str, list[np.ndarray]]
    audio_sha: list[str]
    seconds: np.ndarray
    settings: FeatureSettings

    def index(self, track_ids: Sequence[str]) -> np.ndarray:
        """Row of each of `track_ids` (int64); `ParameterError` naming tracks that have no features."""
        position = {t: i for i, t in enumerate(self.track_ids)}
        missing = [t for t in track_ids if t not in position]
        if missing:
            raise ParameterError(f"no features for tracks {missing[:5]}")
        return np.array([position[t] for t in track_ids], dtype=np.int64)

    def subset(self, track_ids: Sequence[str]) -> FeatureTable:
        """The rows of `track_ids`, in that order."""
        index = self.index(track_ids)
        return FeatureTable(
            list(track_ids),
            {k: v[index] for k, v in self.vectors.items()},
            {k: [v[i] for i in index] for k, v in self.sequences.items()},
            [self.audio_sha[i] for i in index],
            self.seconds[index],
            self.settings,
        )

    @property
    def fingerprint(self) -> str:
        """Identifies the pool: feature settings and the audio of every track, in order."""
        text = "\n".join([self.settings.key, *self.audio_sha])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float32 audio (n,) and its sample rate; `ArtefactError` naming the file when unusable."""
    path = Path(path)
    try:
        with native_stderr_silenced():  # libmpg123's notes on an MP3
            data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise ArtefactError(f"{path}: cannot decode audio ({err})") from err
    if data.shape[0] == 0:
        raise ArtefactError(f"{path}: the audio file holds no samples")
    if not np.isfinite(data).all():
        raise ArtefactError(f"{path}: the audio file holds NaN or infinite samples")
    return data.mean(axis=1), int(sr)


def cache_file(cache_dir: str | Path, settings: FeatureSettings, audio_sha: str) -> Path:
    """Where the features of the audio with SHA-256 `audio_sha` under `settings` are cached."""
    return Path(cache_dir) / "features" / settings.key / f"{audio_sha}.npz"


def _extract_to_cache(job: tuple[str, str], settings: FeatureSettings) -> None:
    """Worker: features of the file `job[0]`, written atomically to the cache file `job[1]`."""
    path, out = job
    start = time.perf_counter()
    y, sr = load_audio(path)
    try:
        features = track_features(y, sr, settings)
    except ParameterError as err:  # a clip too short for the features
        raise ArtefactError(f"{path}: {err}") from None
    except Exception as err:  # any failure inside librosa/madmom is reported with the file's name
        raise ArtefactError(f"{path}: feature extraction failed ({type(err).__name__}: {err})") from None
    features["seconds"] = np.array(time.perf_counter() - start)
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, **features)


def extract_features(
    paths: Sequence[str | Path],
    track_ids: Sequence[str],
    settings: FeatureSettings,
    cache_dir: str | Path,
    *,
    workers: int = 2,
    progress: bool = True,
) -> FeatureTable:
    """Features of the tracks at `paths` (one per id in `track_ids`), from the cache or computed.

    Missing entries are computed by `execution.parallel_map` in `workers` spawned processes (1: in this
    process), each written to `cache_dir/features/<settings key>/<audio sha256>.npz` as soon as it is done,
    so an interrupted extraction resumes where it stopped. These are the features of `aria.channels.AUDIO`.
    """
    if len(paths) != len(track_ids):
        raise ParameterError(f"{len(paths)} paths for {len(track_ids)} track ids")
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise ArtefactError(f"{missing[0]}: audio file not found ({len(missing)} missing in all)")
    shas = [file_sha256(p) for p in paths]
    outs = [cache_file(cache_dir, settings, sha) for sha in shas]
    todo = {str(out): str(path) for path, out in zip(paths, outs, strict=True) if not out.exists()}
    jobs = [(path, out) for out, path in todo.items()]
    with tqdm(total=len(jobs), desc="aria features", unit="track", disable=not progress or not jobs) as bar:
        for _ in parallel_map(functools.partial(_extract_to_cache, settings=settings), jobs, workers=workers,
                              first_here=True):  # numba compiles (and caches) librosa's functions once
            bar.update()
    records = []
    for out in outs:
        with np.load(out) as data:
            records.append({k: data[k] for k in data.files})
    names = [k for k in records[0] if k != "seconds"]
    return FeatureTable(
        list(track_ids),
        {k: np.stack([r[k] for r in records]).astype(np.float64) for k in names if k not in AUDIO.sequences},
        {k: [r[k].astype(np.int64) for r in records] for k in names if k in AUDIO.sequences},
        shas,
        np.array([float(r["seconds"]) for r in records]),
        settings,
    )
