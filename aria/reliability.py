"""Reliability of a raw score matrix (paper §3.2; docs/aria.md#reliability-diagnostics): energy ratios,
concentration, inter-query correlation.

S has rows training units and columns queries, and is used as given (before normalisation).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from aria.errors import AriaWarning
from aria.matrix import centred_columns, score_matrix

_CONSTANT_RTOL = 1e-10


def _gram(S: np.ndarray) -> np.ndarray:
    """The smaller of SᵀS and SSᵀ: its eigenvalues are the squared singular values of S."""
    return S.T @ S if S.shape[0] >= S.shape[1] else S @ S.T


def energy_spectrum(S: np.ndarray) -> np.ndarray:
    """Energy ratios e_k = σ_k² / ‖S‖_F², largest first; S: (N, Q) → (min(N, Q),). Zeros for S = 0."""
    S = score_matrix(S)
    total = float(np.sum(S**2))
    if total == 0.0:
        return np.zeros(min(S.shape))
    eig = np.clip(np.linalg.eigvalsh(_gram(S))[::-1], 0.0, None)
    return eig / eig.sum()


def dominant_component(S: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Leading singular triplet (σ₁, u₁ (N,), v₁ (Q,)) of S: (N, Q); sign fixed so that Σu₁ ≥ 0."""
    S = score_matrix(S)
    gram = _gram(S)
    n = gram.shape[0]
    eig, vec = scipy.linalg.eigh(gram, subset_by_index=[n - 1, n - 1])
    sigma = float(np.sqrt(max(eig[0], 0.0)))
    if S.shape[0] >= S.shape[1]:
        v = vec[:, 0]
        u = S @ v / sigma if sigma > 0 else np.zeros(S.shape[0])
    else:
        u = vec[:, 0]
        v = S.T @ u / sigma if sigma > 0 else np.zeros(S.shape[1])
    if u.sum() < 0:
        u, v = -u, -v
    return sigma, u, v


def remove_rank1(S: np.ndarray) -> np.ndarray:
    """Residual S − σ₁u₁v₁ᵀ (paper §4.4); S: (N, Q) → (N, Q) float64."""
    sigma, u, v = dominant_component(S)
    return score_matrix(S) - sigma * np.outer(u, v)


def inter_query_corr(S: np.ndarray) -> float:
    """Mean |Pearson| over query pairs q < q′; a constant column correlates 0. NaN (warning) for one query."""
    S = score_matrix(S)
    n, q = S.shape
    if q < 2:
        warnings.warn("inter-query correlation needs at least two queries; reported as NaN", AriaWarning,
                      stacklevel=2)
        return float("nan")
    centred, _, constant = centred_columns(S, _CONSTANT_RTOL)
    norms = np.linalg.norm(centred, axis=0)
    unit = np.divide(centred, norms, out=np.zeros_like(centred), where=~constant)
    corr = np.abs(unit.T @ unit)
    upper = np.triu_indices(q, k=1)
    return float(np.clip(corr[upper], 0.0, 1.0).mean())


def concentration(S: np.ndarray) -> float:
    """Mean concentration ratio c̄ = mean_q N·mean(S[:, q])² / ‖S[:, q]‖²; a zero column counts 1."""
    S = score_matrix(S)
    n = S.shape[0]
    energy = np.sum(S**2, axis=0)
    offset = n * S.mean(axis=0) ** 2
    ratio = np.divide(offset, energy, out=np.ones_like(energy), where=energy > 0)
    return float(np.clip(ratio, 0.0, 1.0).mean())


def reliability(S: np.ndarray) -> dict[str, float | np.ndarray]:
    """The four reliability diagnostics of the raw matrix S: (N, Q), plus its energy spectrum.

    Returns `rho1` (e₁), `rho2_5` (e₂ + … + e₅), `concentration` (c̄), `inter_query_corr` (ρ̄) and
    `energy` (all e_k, largest first). All-zero S gives 0, 0, 1, 0. One query gives ρ̄ = NaN; one row
    gives NaN for all four (a single training unit cannot be judged); both with an `AriaWarning`.
    """
    S = score_matrix(S)
    energy = energy_spectrum(S)
    if S.shape[0] < 2:
        warnings.warn("reliability is undefined for a single training unit (one row); reported as NaN",
                      AriaWarning, stacklevel=2)
        nan = float("nan")
        return {"rho1": nan, "rho2_5": nan, "concentration": nan, "inter_query_corr": nan, "energy": energy}
    return {
        "rho1": float(energy[0]),
        "rho2_5": float(energy[1:5].sum()),
        "concentration": concentration(S),
        "inter_query_corr": inter_query_corr(S),
        "energy": energy,
    }


def is_collapsed(rho1: float, concentration_ratio: float, *, rho1_max: float = 0.78,
                 concentration_max: float = 0.5) -> bool:
    """Collapse flag (docs/aria.md#collapse-flag): ρ₁ ≥ `rho1_max` or c̄ ≥ `concentration_max`. NaN values do
    not flag."""
    return bool(rho1 >= rho1_max or concentration_ratio >= concentration_max)
