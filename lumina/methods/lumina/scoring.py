"""LUMINA scoring (docs/lumina.md#signatures): cosine signature matching and kernel regression ("shared credit").

Training signatures K are (N, D), queries G are (Q, D); scores are (N, Q), rows training songs, columns
queries, never clipped (the positive-only policy belongs to reports and shares, `lumina.methods.lumina.attribution`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from lumina.methods.lumina.stats import CALIBRATIONS, CONFIDENCE_KINDS, GATES, WEIGHTS
from lumina.runs.errors import ParameterError

SCORINGS = ("cosine", "kernel")


@dataclass(frozen=True)
class ScoringConfig:
    """Scoring, statistics and share options (conf/method/lumina.yaml; docs/lumina.md#signatures defaults)."""

    kernel_lambda: float = 0.01
    calibration: str = "empirical"
    confidence: str = "two_sided"
    lip_k: float = 0.5
    gate: str = "sts1"
    weight: str = "gated_sq"
    positive_only: bool = True
    abstain: bool = True
    abstain_z: float = 2.02

    def __post_init__(self) -> None:
        for value, allowed, name in ((self.calibration, CALIBRATIONS, "calibration"),
                                     (self.confidence, CONFIDENCE_KINDS, "confidence"),
                                     (self.gate, GATES, "gate"), (self.weight, WEIGHTS, "weight")):
            if value not in allowed:
                raise ParameterError(f"method.{name} must be one of {allowed}, got {value!r}")
        if not self.kernel_lambda > 0:
            raise ParameterError(f"kernel_lambda must be > 0, got {self.kernel_lambda}")

    @classmethod
    def from_options(cls, options: Mapping) -> ScoringConfig:
        """The scoring settings among a method config's options (other keys are ignored)."""
        return cls(**{f.name: options[f.name] for f in fields(cls) if f.name in options})


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ParameterError(f"{name} must be 2-D (items x dims), got shape {x.shape}")
    return x


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm, float64 (n, D); a zero row has no direction and is refused."""
    x = _as_matrix(x, "signatures")
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        raise ParameterError("a zero signature has no direction; cosine is undefined")
    return x / norms[:, None]


def cosine_scores(train: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """s_iq = k_i · g_q / (‖k_i‖ ‖g_q‖): train (N, D), queries (Q, D) → (N, Q) float64.

    Against many queries, `unit_rows(train)` once and `unit_rows(train) @ unit_rows(queries).T` is the same."""
    k, g = unit_rows(train), unit_rows(queries)
    if k.shape[1] != g.shape[1]:
        raise ParameterError(f"signature dimensions differ: training {k.shape[1]}, queries {g.shape[1]}")
    return k @ g.T


def kernel_factor(train: np.ndarray, lam: float = 0.01) -> tuple:
    """Cholesky factor of Kᵀ K + λ I (D × D), reusable for every query against the same training set."""
    k = _as_matrix(train, "train")
    return cho_factor(k.T @ k + lam * np.eye(k.shape[1]), lower=True)


def kernel_scores(train: np.ndarray, queries: np.ndarray, lam: float = 0.01, factor: tuple | None = None
                  ) -> np.ndarray:
    """Kernel regression (K Kᵀ + λ I)⁻¹ K g for each query: train (N, D), queries (Q, D) → (N, Q).

    Computed as K (Kᵀ K + λ I)⁻¹ g (the same matrix, since K (KᵀK + λI) = (KKᵀ + λI) K), so the system
    is D × D whatever the number of training songs; `factor` from `kernel_factor` skips the factorisation.
    """
    k, g = _as_matrix(train, "train"), _as_matrix(queries, "queries")
    if k.shape[1] != g.shape[1]:
        raise ParameterError(f"signature dimensions differ: training {k.shape[1]}, queries {g.shape[1]}")
    factor = kernel_factor(k, lam) if factor is None else factor
    return k @ cho_solve(factor, g.T)


def combined(p: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The two channels as one signature, [P, M] / √2 (unit norm for unit P and M): (n, d_P + d_M).

    Its cosine is the mean of the two channels' cosines."""
    return np.hstack([np.asarray(p, dtype=np.float64), np.asarray(m, dtype=np.float64)]) / math.sqrt(2.0)
