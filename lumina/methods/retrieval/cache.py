"""Embeddings of audio files, cached per file on disk and computed in worker processes where that helps.

Cache layout: `<cache_dir>/<encoder name>-<identity key>/<SHA-256 of the audio file>.npy`, one (dim,) float32
vector per file, written atomically as soon as it is computed, so an interrupted run keeps what it did.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from execution import parallel_map
from execution.files import atomic_path
from lumina.data.audio import file_sha256, load_audio
from lumina.methods.retrieval.encoder import Encoder, embed_waveform, load_encoder

MIN_FILES_PER_WORKER = 8
"""Worker processes start only when each gets at least this many files (starting one costs seconds)."""

_WORKER_ENCODER: Encoder | None = None


def cache_folder(encoder: Encoder, cache_dir: str | Path) -> Path:
    """The encoder's cache folder, keyed by its identity (not by the checkpoint's path)."""
    text = json.dumps(encoder.identity, sort_keys=True, default=str)
    folder = Path(cache_dir) / f"{encoder.name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    folder.mkdir(parents=True, exist_ok=True)
    identity_file = folder / "encoder.json"
    if not identity_file.exists():
        identity_file.write_text(json.dumps(encoder.settings, indent=2, sort_keys=True, default=str))
    return folder


def embed_file(encoder: Encoder, path: str | Path) -> np.ndarray:
    """Time-averaged embedding (dim,) of an audio file, read at the encoder's rate.

    BLAS runs on one thread here, in this process as in workers: a multi-threaded matrix product may round
    differently, and embeddings must not depend on where they were computed."""
    with threadpool_limits(limits=1):
        return embed_waveform(encoder, load_audio(path, encoder.sample_rate), encoder.sample_rate)


def _init_worker(kind: str, options: dict) -> None:
    global _WORKER_ENCODER
    _WORKER_ENCODER = load_encoder(kind, options)


def _embed_in_worker(path: str) -> np.ndarray:
    assert _WORKER_ENCODER is not None
    return embed_file(_WORKER_ENCODER, path)


def _save(vector: np.ndarray, target: Path) -> None:
    with atomic_path(target) as tmp:
        np.save(tmp, vector.astype(np.float32))


def embed_files(
    encoder: Encoder,
    paths: Mapping[str, str | Path],
    cache_dir: str | Path,
    *,
    workers: int = 1,
    progress: bool = True,
) -> np.ndarray:
    """Embeddings (len(paths), dim) float32 of the audio files `paths` (id → file), in that order.

    Cached vectors are reused; the others are computed, by `workers` processes when the encoder benefits
    from processes and there are at least MIN_FILES_PER_WORKER files per worker, else in this process.
    """
    folder = cache_folder(encoder, cache_dir)
    targets = {key: folder / f"{file_sha256(path)}.npy" for key, path in paths.items()}
    todo = {target: key for key, target in targets.items() if not target.exists()}  # one per distinct file
    bar = tqdm(total=len(todo), desc=f"{encoder.name} embeddings", unit="track", disable=not progress or not todo)
    if encoder.processes and workers > 1 and len(todo) >= MIN_FILES_PER_WORKER * workers:
        results = parallel_map(_embed_in_worker, [str(paths[key]) for key in todo.values()], workers=workers,
                               initializer=_init_worker, initargs=(encoder.kind, encoder.options))
        for target, vector in zip(todo, results, strict=True):
            _save(vector, target)
            bar.update()
    else:
        for target, key in todo.items():
            _save(embed_file(encoder, paths[key]), target)
            bar.update()
    bar.close()
    vectors = [np.load(targets[key]) for key in paths]
    return np.stack(vectors) if vectors else np.zeros((0, encoder.dim), dtype=np.float32)
