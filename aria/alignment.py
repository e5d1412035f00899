"""Axis–channel alignment (paper §4.3 Eq. 8; docs/aria.md#axis-channel-alignment): how the dominant track axis
of a score matrix lines up with each channel's features."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from aria.channels import AUDIO, ChannelSet
from aria.errors import ParameterError
from aria.reliability import dominant_component


def dominant_axis(T_raw: np.ndarray) -> np.ndarray:
    """Dominant left singular vector u₁ of the raw track-level matrix T_raw: (N, Q) → (N,)."""
    return dominant_component(T_raw)[1]


def _abs_corr(u: np.ndarray, X: np.ndarray) -> np.ndarray:
    """|Pearson| of u (N,) with each column of X (N, D) → (D,); 0 for a constant column."""
    uc = u - u.mean()
    Xc = X - X.mean(axis=0)
    denom = np.linalg.norm(uc) * np.linalg.norm(Xc, axis=0)
    return np.divide(np.abs(uc @ Xc), denom, out=np.zeros(X.shape[1]), where=denom > 1e-12 * max(denom.max(), 1e-300))


def pc_r2(u: np.ndarray, X: np.ndarray, n_components: int = 5) -> float:
    """R² of the least-squares regression (with intercept) of u (N,) on the first `n_components` principal
    components of X (N, D), each dimension first scaled to unit std (constant dimensions dropped)."""
    std = X.std(axis=0)
    Xs = (X[:, std > 0] - X[:, std > 0].mean(axis=0)) / std[std > 0]
    uc = u - u.mean()
    total = float(uc @ uc)
    if Xs.shape[1] == 0 or total == 0.0:
        return 0.0
    eig, vec = np.linalg.eigh(Xs.T @ Xs)  # ascending; the principal axes are the last columns
    keep = eig > 1e-10 * eig[-1]
    m = min(n_components, int(keep.sum()), X.shape[0] - 2)
    if m < 1:
        return 0.0
    scores = Xs @ vec[:, -m:]  # orthogonal, centred columns with squared norms eig[-m:]
    return float(np.sum((scores.T @ uc) ** 2 / eig[-m:]) / total)


def alignment(
    u: np.ndarray,
    vectors: Mapping[str, np.ndarray],
    *,
    channel_set: ChannelSet = AUDIO,
    n_components: int = 5,
) -> dict[str, dict]:
    """r_max and R² of each channel of `channel_set` for the track axis u (N,); `vectors[name]` (N, D) per
    vector feature.

    r_max,c = max over the channel's dimensions of |Pearson(u, x_d)|; R²_c = max over the channel's
    feature groups of `pc_r2`, each over the tracks whose vector is defined (a feature defined for fewer than
    three tracks is skipped). Features without vectors (sequences such as chords, precomputed similarities)
    have no dimensions and are not part of it; a channel without any is left out.
    """
    u = np.asarray(u, dtype=np.float64)
    out = {}
    for channel, names in channel_set.channels.items():
        names = [n for n in names if n in vectors]
        if not names:
            continue
        best_r, best_r2 = (0.0, "", -1), (0.0, "")
        for name in names:
            X = np.asarray(vectors[name], dtype=np.float64)
            if X.shape[0] != u.shape[0]:
                raise ParameterError(f"feature `{name}` has {X.shape[0]} tracks, the axis {u.shape[0]}")
            defined = np.isfinite(X).all(axis=1)  # tracks without a beat have no beat-interval histogram
            if defined.sum() < 3:
                continue
            X, u_defined = (X, u) if defined.all() else (X[defined], u[defined])
            r = _abs_corr(u_defined, X)
            if r.max() > best_r[0]:
                best_r = (float(r.max()), name, int(r.argmax()))
            r2 = pc_r2(u_defined, X, n_components)
            if r2 > best_r2[0]:
                best_r2 = (r2, name)
        out[channel] = {"r_max": best_r[0], "r_max_feature": best_r[1], "r_max_dim": best_r[2],
                        "r2": best_r2[0], "r2_feature": best_r2[1]}
    return out
