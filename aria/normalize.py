"""Per-query normalisation of a score matrix and segment → track aggregation (paper §3.1;
docs/aria.md#per-query-normalisation-and-track-aggregation)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse
import scipy.stats

from aria.errors import ParameterError
from aria.matrix import centred_columns, score_matrix

METHODS = ("zscore", "rank")


def zscore(S: np.ndarray) -> np.ndarray:
    """Standardise each column to mean 0 and population std 1; a constant column becomes 0.

    S: (N, Q) → (N, Q) float64.
    """
    centred, std, constant = centred_columns(score_matrix(S), rtol=1e-12)
    return np.divide(centred, std, out=np.zeros_like(centred), where=~constant)


def rank(S: np.ndarray) -> np.ndarray:
    """Replace each column by its ranks scaled to [0, 1]: highest score → 1, ties share the average rank.

    S: (N, Q) → (N, Q) float64. A single row gets 0.5 (the rank of a tie with itself).
    """
    S = score_matrix(S)
    n = S.shape[0]
    if n == 1:
        return np.full_like(S, 0.5)
    return (scipy.stats.rankdata(S, method="average", axis=0) - 1.0) / (n - 1.0)


def normalize(S: np.ndarray, method: str) -> np.ndarray:
    """Per-query normalisation `method` (`zscore` or `rank`) of S: (N, Q) → (N, Q) float64."""
    if method == "zscore":
        return zscore(S)
    if method == "rank":
        return rank(S)
    raise ParameterError(f"normalization must be one of {METHODS}, got {method!r}")


def aggregate_tracks(S: np.ndarray, segment_track: Sequence[str], track_ids: Sequence[str]) -> np.ndarray:
    """Average the rows of each track: S (N_seg, Q) → T (N, Q), rows in the order of `track_ids`."""
    S = score_matrix(S)
    if len(segment_track) != S.shape[0]:
        raise ParameterError(f"segment_track has {len(segment_track)} entries for {S.shape[0]} rows")
    index = pd.Index(list(track_ids)).get_indexer(list(segment_track))
    if (index < 0).any():
        unknown = sorted(set(np.asarray(segment_track)[index < 0]))
        raise ParameterError(f"rows belong to tracks missing from track_ids: {unknown[:5]}")
    counts = np.bincount(index, minlength=len(track_ids))
    if (counts == 0).any():
        raise ParameterError("every track of track_ids needs at least one row")
    weights = scipy.sparse.csr_matrix(
        (1.0 / counts[index], (index, np.arange(S.shape[0]))), shape=(len(track_ids), S.shape[0])
    )
    return np.asarray(weights @ S)


def track_scores(
    S: np.ndarray, segment_track: Sequence[str], track_ids: Sequence[str], method: str | None
) -> np.ndarray:
    """The track-level matrix Aria judges: S (N_seg, Q) normalised per query with `method` (`zscore` or
    `rank`; None: raw scores), then the mean of each track's segments → T (N, Q), rows in `track_ids` order."""
    return aggregate_tracks(S if method is None else normalize(S, method), segment_track, track_ids)
