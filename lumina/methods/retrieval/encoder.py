"""The encoder interface: a loaded audio encoder, the registry of encoders, and time-averaged embeddings.

Every encoder, whatever its model, is used the same way: resample the waveform to the encoder's own rate,
cut it into chunks, run the model on each chunk, average over time (docs/baselines.md#method-definitions).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lumina.data.audio import chunk_bounds, resample
from lumina.runs.errors import ParameterError

ENCODERS: dict[str, str] = {
    "clap": "lumina.methods.retrieval.clap:load_clap",
    "mert": "lumina.methods.retrieval.mert:load_mert",
    "madmom-deepchroma": "lumina.methods.retrieval.madmom_encoders:load_deepchroma",
    "madmom-chordfeat": "lumina.methods.retrieval.madmom_encoders:load_chordfeat",
    "madmom-notes": "lumina.methods.retrieval.madmom_encoders:load_notes",
}
"""Encoder name → `module:function` of its loader. Loaders import their heavy dependencies themselves."""

CHECKPOINT_ENCODERS = ("clap", "mert")
"""Encoders that need a local checkpoint directory (option `checkpoint`); the others ship with a package."""


@dataclass
class Encoder:
    """A loaded audio encoder.

    frames: maps a chunk, (n,) mono float32 at `sample_rate`, to its frame embeddings (frames, dim).
    name: the setting name, naming the encoder really used (`clap-larger_clap_music`, `madmom-deepchroma`).
    identity: everything that determines the embedding (model hash, rate, chunking, …); the cache key.
    checkpoint: the local checkpoint directory, when there is one (recorded, not part of the cache key).
    kind, options: the registry name and loader options it was made from, to load it again in a worker.
    processes: whether worker processes speed it up: single-threaded numpy/ONNX work (not torch models) that
        costs clearly more per file than starting a worker (seconds of imports).
    """

    name: str
    sample_rate: int
    dim: int
    chunk_s: float
    min_chunk_s: float
    frames: Callable[[np.ndarray], np.ndarray]
    identity: dict[str, Any]
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    processes: bool = False

    @property
    def settings(self) -> dict[str, Any]:
        """The score matrix's `settings_json`: the identity plus the checkpoint path."""
        return {**self.identity, "checkpoint": self.checkpoint}


def load_encoder(kind: str, options: Mapping[str, Any] | None = None) -> Encoder:
    """Load the encoder registered as `kind`, passing it the `options` its loader accepts (others ignored)."""
    if kind not in ENCODERS:
        raise ParameterError(f"unknown encoder {kind!r}; registered: {sorted(ENCODERS)}")
    module, function = ENCODERS[kind].split(":")
    loader = getattr(importlib.import_module(module), function)
    accepted = inspect.signature(loader).parameters
    kwargs = {k: v for k, v in (options or {}).items() if k in accepted}
    encoder = loader(**kwargs)
    encoder.kind, encoder.options = kind, kwargs
    return encoder


def embed_waveform(encoder: Encoder, audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Time-averaged embedding (dim,) float32 of (n,) mono `audio` at any `sample_rate`.

    The audio is resampled to the encoder's rate and cut into `chunk_s` chunks (a tail shorter than
    `min_chunk_s` is dropped unless it is all there is); each chunk's frames are averaged, and the chunk means
    are averaged weighted by chunk length, so the result is a mean over time.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ParameterError(f"audio must be a non-empty 1-D array, got shape {audio.shape}")
    audio = resample(audio, int(sample_rate), encoder.sample_rate)
    bounds = chunk_bounds(audio.shape[0], encoder.sample_rate, encoder.chunk_s, encoder.min_chunk_s)
    total = np.zeros(encoder.dim, dtype=np.float64)
    for start, stop in bounds:
        frames = np.asarray(encoder.frames(audio[start:stop]), dtype=np.float64)
        if frames.ndim != 2 or frames.shape[1] != encoder.dim or frames.shape[0] == 0:
            raise ParameterError(f"{encoder.name}: a chunk gave frames of shape {frames.shape}, "
                                 f"expected (frames, {encoder.dim})")
        total += frames.mean(axis=0) * (stop - start)
    return (total / sum(stop - start for start, stop in bounds)).astype(np.float32)


def cosine_matrix(train: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Cosine similarity (N, Q) float32 between rows of `train` (N, D) and rows of `queries` (Q, D).

    A zero vector has cosine 0 with everything.
    """
    def unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)

    return (unit(train) @ unit(queries).T).astype(np.float32)
