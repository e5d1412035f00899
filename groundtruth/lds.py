"""The linear datamodeling score (LDS) of an attribution matrix against subset retraining
(docs/ground_truth.md#linear-datamodeling-score-lds), with a bootstrap interval over queries, and the
track-level scores it is computed on. Plain functions on NumPy arrays."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from dattri.metric import lds as dattri_lds

from lumina.runs.errors import ParameterError


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


def own_effect_to_spread(losses: np.ndarray, membership: np.ndarray) -> dict[str, float]:
    """How well a loss target can show training influence at all: each training track's mean loss when it is in
    a subset model minus when it is out (`own_effect`, averaged over tracks), its standard deviation across the
    models (`spread`, population sd, averaged over tracks), and their ratio. losses, membership: (M, N) for the
    N training tracks; tracks in every model or in none are left out of `own_effect`."""
    losses = np.asarray(losses, dtype=np.float64)
    membership = np.asarray(membership, dtype=bool)
    if losses.shape != membership.shape:
        raise ParameterError(f"losses {losses.shape} and membership {membership.shape} differ in shape")
    varied = membership.any(axis=0) & (~membership).any(axis=0)
    inside = np.where(membership, losses, 0.0).sum(axis=0)[varied] / membership.sum(axis=0)[varied]
    outside = np.where(~membership, losses, 0.0).sum(axis=0)[varied] / (~membership).sum(axis=0)[varied]
    effect = float(np.mean(inside - outside)) if varied.any() else float("nan")
    spread = float(losses.std(axis=0).mean())
    return {"own_effect": effect, "spread": spread, "ratio": effect / spread if spread > 0 else float("nan")}
