"""Checks and column statistics of a score matrix shared by normalisation and the reliability diagnostics."""

from __future__ import annotations

import numpy as np

from aria.errors import ParameterError


def score_matrix(S: np.ndarray) -> np.ndarray:
    """S as float64 after checking it is a non-empty 2-D matrix (rows × queries) of finite values."""
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2 or 0 in S.shape:
        raise ParameterError(f"expected a non-empty 2-D score matrix (rows x queries), got shape {S.shape}")
    if not np.isfinite(S).all():
        raise ParameterError("the score matrix holds NaN or infinite values")
    return S


def centred_columns(S: np.ndarray, rtol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns of S (N, Q) minus their means, their population stds (Q,), and which are constant (Q,) bool:
    std ≤ `rtol` × the column's largest |value| (a zero column is constant)."""
    centred = S - S.mean(axis=0)
    std = np.sqrt(np.mean(centred**2, axis=0))
    constant = std <= rtol * np.maximum(np.abs(S).max(axis=0), np.finfo(float).tiny)
    return centred, std, constant
