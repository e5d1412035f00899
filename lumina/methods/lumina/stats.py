"""LUMINA's statistics and shares (docs/lumina.md#scoring-statistics-and-shares): STS, noise calibration,
confidence, LIP, tiers, gates, shares.

Plain functions on 1-D arrays of one query's scores against the training songs (shape (N,)). Other tools
call `sts`, `confidence`, `lip`, `lip_percent` and `gated_shares` by these names.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from lumina.runs.errors import ParameterError

CONFIDENCE_KINDS = ("two_sided", "one_sided")
CALIBRATIONS = ("empirical", "theoretical")
GATES = ("sts1", "conf95", "calibrated")
WEIGHTS = ("gated_sq", "lip", "excess")
TIER_NAMES = ("noise", "qualified", "high confidence", "definitive")
TIER_FLOORS = (1.0, 2.0, 3.0)
"""Threshold tiers on z_noise (docs/sources.md#lumina-due-diligence): tier code c (an index of TIER_NAMES) is the
number of floors a z_noise reaches, so below 1 is `noise` (0) and 3 or more `definitive` (3)."""


def _check(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise ParameterError(f"{name} must be one of {allowed}, got {value!r}")


def sts(scores: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    """z-scores (scores - mu) / sigma, shape of `scores`.

    With mu, sigma the mean and population std of the query's scores this is the STS; with the noise
    calibration (mu_0, sigma_0) it is z_noise. sigma = 0 gives zeros (no song stands out).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if sigma < 0 or not math.isfinite(sigma):
        raise ParameterError(f"sigma must be finite and >= 0, got {sigma}")
    if sigma == 0:
        return np.zeros_like(scores)
    return (scores - mu) / sigma


def population(scores: np.ndarray) -> tuple[float, float]:
    """Mean and population std (ddof = 0) of one query's scores (N,): the STS's mu and sigma."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        raise ParameterError("no scores: the database holds no training songs")
    return float(scores.mean()), float(scores.std())


def confidence(sts: np.ndarray, sided: str = "two_sided") -> np.ndarray:
    """erf(z / √2) (`two_sided`, as docs/sources.md#lumina-technical-paper-v7 writes it: 0.95 at z = 1.96) or Φ(z)
    (`one_sided`: 0.95 at z = 1.645), elementwise on z-scores of any shape. A song below the floor (z < 0) has
    confidence 0 under `two_sided`: the formula's negative values (-0.99 for z = -2.6) are not confidences."""
    _check(sided, CONFIDENCE_KINDS, "confidence")
    z = np.asarray(sts, dtype=np.float64)
    if sided == "two_sided":
        return erf(np.maximum(z, 0.0) / math.sqrt(2.0))
    return (1.0 + erf(z / math.sqrt(2.0))) / 2.0


def lip(sts: np.ndarray, k: float = 0.5) -> np.ndarray:
    """LUMINA Influence Potency tanh(k · STS), in (-1, 1)."""
    return np.tanh(k * np.asarray(sts, dtype=np.float64))


def lip_percent(sts: np.ndarray, k: float = 0.5) -> np.ndarray:
    """LIP% = (LIP + 1) / 2 · 100, in (0, 100) with 50 at STS = 0."""
    return (lip(sts, k) + 1.0) / 2.0 * 100.0


def shares(weights: np.ndarray, qualified: np.ndarray) -> np.ndarray:
    """share_i = w_i / Σ_j w_j over qualified songs (others 0); all zeros when no qualified weight is > 0.

    weights, qualified: (N,). Negative weights count as 0.
    """
    w = np.where(np.asarray(qualified, dtype=bool), np.maximum(np.asarray(weights, dtype=np.float64), 0.0), 0.0)
    total = w.sum()
    return w / total if total > 0 else np.zeros_like(w)


def gated_shares(sts: np.ndarray) -> np.ndarray:
    """docs/sources.md#lumina-technical-paper-v7's default shares: w = max(0, STS - 1)², share = w / Σ w; all zeros
    when no song has STS > 1."""
    sts = np.asarray(sts, dtype=np.float64)
    return shares(np.maximum(0.0, sts - 1.0) ** 2, sts > 1.0)


def tiers(z_noise: np.ndarray) -> np.ndarray:
    """docs/sources.md#lumina-due-diligence's tier of each z_noise as a code (int8, same shape; TIER_NAMES[code] is
    its name): noise (< 1), qualified (>= 1), high confidence (>= 2), definitive (>= 3)."""
    z = np.asarray(z_noise, dtype=np.float64)
    code = np.zeros(z.shape, dtype=np.int8)
    for floor in TIER_FLOORS:  # NaN reaches no floor: noise
        code += z >= floor
    return code


def calibration(
    control_scores: np.ndarray | None, dim: int, method: str = "empirical"
) -> tuple[float, float]:
    """Noise floor (mu_0, sigma_0) of one channel.

    `empirical`: mean and population std of the cosines between the control tracks and the training songs
    (control_scores: any shape, e.g. (n_control, N)); `theoretical`: (0, 1/√dim) with the real dimension.
    """
    _check(method, CALIBRATIONS, "calibration")
    if method == "theoretical":
        if dim < 1:
            raise ParameterError(f"signature dimension must be >= 1, got {dim}")
        return 0.0, 1.0 / math.sqrt(dim)
    values = np.asarray([] if control_scores is None else control_scores, dtype=np.float64).ravel()
    if values.size < 2:
        raise ParameterError(
            "empirical noise calibration needs control tracks (split `control` in the manifest) with signatures; "
            "add some, or choose calibration=theoretical"
        )
    return float(values.mean()), float(values.std())


def qualify(
    gate: str,
    *,
    scores: np.ndarray,
    sts_values: np.ndarray,
    z_noise: np.ndarray,
    tau: float,
    sided: str = "two_sided",
    positive_only: bool = True,
) -> np.ndarray:
    """Which songs qualify for a share, (N,) bool: gate `sts1` (STS > 1), `conf95` (confidence(z_noise) >= 0.95)
    or `calibrated` (score > tau = mu_0 + sigma_0). With `positive_only`, a song with score <= 0 never does."""
    _check(gate, GATES, "gate")
    scores = np.asarray(scores, dtype=np.float64)
    if gate == "sts1":
        passed = np.asarray(sts_values) > 1.0
    elif gate == "conf95":
        passed = confidence(z_noise, sided) >= 0.95
    else:
        passed = scores > tau
    return passed & (scores > 0) if positive_only else passed


def weigh(weight: str, *, scores: np.ndarray, sts_values: np.ndarray, tau: float, k: float = 0.5) -> np.ndarray:
    """Share weights (N,): `gated_sq` max(0, STS - 1)² (docs/sources.md#lumina-technical-paper-v7), `lip` tanh(k ·
    STS) (docs/sources.md#lumina-due-diligence) or `excess`
    score - tau (docs/sources.md#lumina-gradient-extraction-guide). `shares` counts negative weights as 0."""
    _check(weight, WEIGHTS, "weight")
    if weight == "gated_sq":
        return np.maximum(0.0, np.asarray(sts_values, dtype=np.float64) - 1.0) ** 2
    if weight == "lip":
        return lip(sts_values, k)
    return np.asarray(scores, dtype=np.float64) - tau
