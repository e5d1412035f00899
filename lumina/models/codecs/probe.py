"""Does a codec's output carry what was played and how it sounds? Nearest-neighbour probes over code
statistics: how often a track's nearest neighbour shares its piece (composition) or its instrument."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lumina.runs.errors import ParameterError


def code_histograms(codes: Sequence[np.ndarray], codebook: int, cardinality: int) -> np.ndarray:
    """Normalised histogram of one codebook's codes per track: (N, cardinality) from N arrays (K, T)."""
    hist = np.stack([np.bincount(c[codebook], minlength=cardinality)[:cardinality] for c in codes]).astype(float)
    return hist / hist.sum(axis=1, keepdims=True)


def nearest_neighbours(features: np.ndarray) -> np.ndarray:
    """Index of each row's nearest other row by cosine similarity: (N,) from (N, D)."""
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    return sims.argmax(axis=1)


def recovery_rate(neighbours: np.ndarray, labels: Sequence[str]) -> float:
    """Fraction of tracks whose nearest neighbour has the same label."""
    labels = np.asarray(labels)
    return float(np.mean(labels[neighbours] == labels))


def chance_rate(labels: Sequence[str]) -> float:
    """Expected recovery rate of a random neighbour: mean over tracks of (same-label others)/(N - 1)."""
    labels = np.asarray(labels)
    if labels.size < 2:
        raise ParameterError("need at least two tracks")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return float(np.mean((counts[inverse] - 1) / (labels.size - 1)))


def probe(
    codes: Sequence[np.ndarray], cardinality: int, labels: dict[str, Sequence[str]]
) -> list[dict[str, float | int | str]]:
    """Recovery rate, chance and their ratio per codebook and label kind (e.g. piece, instrument)."""
    rows = []
    for k in range(codes[0].shape[0]):
        neighbours = nearest_neighbours(code_histograms(codes, k, cardinality))
        for kind, values in labels.items():
            rate, chance = recovery_rate(neighbours, values), chance_rate(values)
            rows.append({"codebook": k + 1, "label": kind, "recovery": rate, "chance": chance,
                         "ratio": rate / chance if chance > 0 else float("inf")})
    return rows
