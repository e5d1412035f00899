"""Ground-truth metrics of an attribution matrix (SPEC §5): the linear datamodeling score (LDS) against subset
retraining, with a bootstrap interval over queries, and planted-source retrieval (hit@K, MRR, precision@K)
with their chance levels under a random ranking. Plain functions on NumPy arrays."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from dattri.metric import lds as dattri_lds
from scipy.special import comb

from lumina.errors import ParameterError


def track_matrix(scores: np.ndarray, segment_track: Sequence[str], train_ids: Sequence[str]) -> np.ndarray:
    """Track-level τ (N, Q): the sum of each training track's raw segment scores (rows of `scores`, (N_seg, Q)).

    Tracks of `train_ids` without any row are NaN (the method gave them no score).
    """
    scores = np.asarray(scores, dtype=np.float64)
    position = {t: i for i, t in enumerate(train_ids)}
    unknown = sorted({t for t in segment_track if t not in position})
    if unknown:
        raise ParameterError(f"score rows name tracks that are not training tracks: {unknown[:5]}")
    rows = np.array([position[t] for t in segment_track], dtype=np.int64)
    out = np.zeros((len(train_ids), scores.shape[1]))
    np.add.at(out, rows, scores)
    out[np.bincount(rows, minlength=len(train_ids)) == 0] = np.nan
    return out


def lds_per_query(tau: np.ndarray, membership: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """Per-query LDS (Q,): Spearman over the M subsets between Σ_{i∈subset} τ(q, i) and the negated loss.

    tau: (N, Q) track scores (NaN counts as 0); membership: (M, N) bool, every subset the same size;
    losses: (M, Q) each query's loss under each subset model. Computed by `dattri.metric.lds`, which takes
    the target already negated (as its ground-truth helper returns it). A query whose summed scores or losses
    are constant across subsets has no ranking to compare: its LDS is 0.
    """
    membership = np.asarray(membership, dtype=bool)
    sizes = membership.sum(axis=1)
    if membership.shape[0] < 3:
        raise ParameterError(f"LDS needs at least 3 subset models, got {membership.shape[0]}")
    if np.any(sizes != sizes[0]):
        raise ParameterError("LDS needs subsets of equal size")
    indices = torch.from_numpy(np.stack([np.flatnonzero(row) for row in membership]))
    score = torch.from_numpy(np.nan_to_num(np.asarray(tau, dtype=np.float64)))
    target = torch.from_numpy(-np.asarray(losses, dtype=np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        corr, _ = dattri_lds(score, (target, indices))
    return np.nan_to_num(corr.numpy().astype(np.float64), nan=0.0)


def bootstrap_ci(values: np.ndarray, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (Q,), resampling queries with replacement."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_resamples, values.size))].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def planted_ranks(tau: np.ndarray, train_ids: Sequence[str], sources: Sequence[Sequence[str]]) -> np.ndarray:
    """Rank (1 = top) of the best-ranked planted source of each query (Q,); 0 where a query has no source.

    tau: (N, Q). Tracks without a score (NaN) rank last; ties are broken against the planted sources, so a
    constant column earns no credit.
    """
    position = {t: i for i, t in enumerate(train_ids)}
    ranks = np.zeros(len(sources), dtype=np.int64)
    for q, planted in enumerate(sources):
        if not planted:
            continue
        column = np.nan_to_num(np.asarray(tau[:, q], dtype=np.float64), nan=-np.inf)
        is_source = np.zeros(len(train_ids), dtype=bool)
        is_source[[position[t] for t in planted]] = True
        order = np.lexsort((is_source, -column))
        ranks[q] = int(np.flatnonzero(is_source[order])[0]) + 1
    return ranks


def top_k_precision(tau: np.ndarray, train_ids: Sequence[str], sources: Sequence[Sequence[str]], k: int
                    ) -> np.ndarray:
    """Fraction of each query's top `k` tracks that are planted sources (Q,), same ordering as `planted_ranks`."""
    position = {t: i for i, t in enumerate(train_ids)}
    out = np.zeros(len(sources))
    for q, planted in enumerate(sources):
        column = np.nan_to_num(np.asarray(tau[:, q], dtype=np.float64), nan=-np.inf)
        is_source = np.zeros(len(train_ids), dtype=bool)
        is_source[[position[t] for t in planted]] = True
        out[q] = is_source[np.lexsort((is_source, -column))[:k]].mean()
    return out


def hit_at_k(ranks: np.ndarray, k: int = 10) -> float:
    """Fraction of queries whose best planted source ranks within the top `k` (ranks from `planted_ranks`)."""
    return float(np.mean(np.asarray(ranks) <= k))


def mean_reciprocal_rank(ranks: np.ndarray) -> float:
    """Mean of 1 / rank of the best planted source."""
    return float(np.mean(1.0 / np.asarray(ranks, dtype=np.float64)))


def chance_first_rank(n_tracks: int, n_sources: int) -> np.ndarray:
    """Probability (N,) that the best of `n_sources` planted tracks sits at rank r = 1 … N in a random ranking."""
    r = np.arange(1, n_tracks + 1)
    return comb(n_tracks - r, n_sources - 1) / comb(n_tracks, n_sources)


def chance_hit_at_k(n_tracks: int, n_sources: int, k: int = 10) -> float:
    """hit@K of a random ranking: 1 − C(N − s, K) / C(N, K)."""
    k = min(k, n_tracks)
    return float(1.0 - comb(n_tracks - n_sources, k) / comb(n_tracks, k))


def chance_mrr(n_tracks: int, n_sources: int) -> float:
    """Expected reciprocal rank of the best planted source in a random ranking."""
    p = chance_first_rank(n_tracks, n_sources)
    return float(np.sum(p / np.arange(1, n_tracks + 1)))


def chance_pvalues(ranks: np.ndarray, n_tracks: int, n_sources: Sequence[int], *, k: int = 10,
                   n_draws: int = 10000, seed: int = 0) -> tuple[float, float]:
    """One-sided p-values of the observed hit@K and MRR (queries' best-source `ranks`, (Q,)) against random
    rankings of `n_tracks` tracks, query q having `n_sources[q]` planted sources (Monte Carlo, `n_draws`)."""
    rng = np.random.default_rng(seed)
    ranks = np.asarray(ranks)
    draws = np.stack([
        rng.choice(np.arange(1, n_tracks + 1), size=n_draws, p=chance_first_rank(n_tracks, s)) for s in n_sources
    ], axis=1)
    hits, mrr = np.mean(draws <= k, axis=1), np.mean(1.0 / draws, axis=1)
    p_hit = (1 + np.sum(hits >= hit_at_k(ranks, k))) / (1 + n_draws)
    p_mrr = (1 + np.sum(mrr >= mean_reciprocal_rank(ranks))) / (1 + n_draws)
    return float(p_hit), float(p_mrr)
