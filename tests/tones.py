"""Synthetic tones for tests, importable without torch (the processes tests spawn start faster)."""

from __future__ import annotations

import numpy as np

SR = 32000


def tone(freqs: list[float], seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A sum of harmonic tones with a little noise, shape (n,) at 32 kHz."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    audio = sum(np.sin(2 * np.pi * f * t) * np.exp(-t % 0.5) for f in freqs) + 0.01 * rng.standard_normal(t.size)
    return (0.3 * audio / np.abs(audio).max()).astype(np.float32)
