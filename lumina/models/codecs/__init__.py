"""Audio codecs behind one protocol: audio (n,) → codes (K, T) at the codec's frame rate, and back.

`embedded`: the project's own codec, fitted to a corpus (chroma first codebook + residual k-means on
log-mel). `encodec`: a real EnCodec loaded from a local directory in transformers layout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from lumina.runs.errors import CheckpointError


@runtime_checkable
class Codec(Protocol):
    """What every codec offers. Codes are int64 arrays of shape (num_codebooks, T)."""

    kind: str
    decoder: str
    """What `decode` does (method and parameters): generated clips are keyed by it."""
    sample_rate: int
    frame_rate: float
    num_codebooks: int
    cardinality: int

    def encode(self, audio: np.ndarray) -> np.ndarray:
        """Mono float audio (n,) at `sample_rate` → codes (num_codebooks, T)."""

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes (num_codebooks, T) → mono float audio (n,)."""

    def identity(self) -> str:
        """A short hash of everything that determines the codes (for caches and provenance)."""

    def save(self, path: str | Path) -> None:
        """Write the codec to a directory so `load_codec` can read it back."""


def load_codec(path: str | Path) -> Codec:
    """Load a codec saved with `Codec.save` (its `codec.json` names the kind)."""
    path = Path(path)
    meta_path = path / "codec.json"
    if not meta_path.exists():
        raise CheckpointError(f"{path}: no codec.json; not a codec directory saved by this harness")
    kind = json.loads(meta_path.read_text())["kind"]
    if kind == "embedded":
        from lumina.models.codecs.chroma_mel import EmbeddedCodec

        return EmbeddedCodec.load(path)
    if kind == "encodec":
        from lumina.models.codecs.encodec import EncodecCodec

        return EncodecCodec.load(path)
    raise CheckpointError(f"{meta_path}: unknown codec kind {kind!r}")


__all__ = ["Codec", "load_codec"]
