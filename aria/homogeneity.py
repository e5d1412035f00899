"""Within-group musical homogeneity against random reference groups (paper §3.4;
docs/aria.md#within-group-homogeneity).

`sims` maps each feature to its (N, N) track-similarity matrix over the training pool; `channel_set` (an
`aria.channels.ChannelSet`, default `AUDIO`) groups the features into channels. A group is an integer array
of K pool indices.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from aria.channels import AUDIO, ChannelSet
from aria.errors import AriaWarning, ParameterError

SIG_Z = 1.645
"""One-sided 5 % level of the random-reference distribution (paper Eq. 7)."""


def valid_ks(ks: Iterable[int], n_pool: int) -> list[int]:
    """The group sizes of a K-sweep that fit the pool: 2 ≤ K < n_pool, ascending."""
    return sorted({int(k) for k in ks if 2 <= int(k) < n_pool})


def random_groups(n_pool: int, k: int, n_groups: int, seed: int) -> np.ndarray:
    """`n_groups` groups of `k` pool indices drawn uniformly without replacement → (n_groups, k) int64."""
    if not 2 <= k <= n_pool:
        raise ParameterError(f"group size K = {k} must be between 2 and the pool size {n_pool}")
    rng = np.random.default_rng([seed, k])
    return np.argsort(rng.random((n_groups, n_pool)), axis=1)[:, :k]


def top_k_groups(T: np.ndarray, k: int) -> np.ndarray:
    """Top-k training tracks of each query, T: (N, Q) → (Q, k); ties keep the lower track index first."""
    T = np.asarray(T, dtype=np.float64)
    if not 1 <= k <= T.shape[0]:
        raise ParameterError(f"K = {k} must be between 1 and the number of tracks {T.shape[0]}")
    return np.argsort(-T, axis=0, kind="stable")[:k].T


def group_similarity(sim: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Mean pairwise similarity within each group (pairs of distinct members); sim: (N, N), groups: (G, K) → (G,).

    Undefined (NaN) similarities, such as between two tracks without a beat, are left out of the mean; a
    group without any defined pair gets NaN (docs/aria.md#beatless-and-short-audio).
    """
    groups = np.asarray(groups, dtype=np.int64)
    k = groups.shape[1]
    block = sim[groups[:, :, None], groups[:, None, :]].astype(np.float64)
    defined = np.isfinite(block)
    if not defined.all():
        defined &= ~np.eye(k, dtype=bool)
        count = defined.sum(axis=(1, 2))
        total = np.where(defined, block, 0.0).sum(axis=(1, 2))
        return np.divide(total, count, out=np.full(len(groups), np.nan), where=count > 0)
    return (block.sum(axis=(1, 2)) - np.trace(block, axis1=1, axis2=2)) / (k * (k - 1))


def group_values(
    sims: Mapping[str, np.ndarray], groups: np.ndarray, *, channel_set: ChannelSet = AUDIO
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """s̄_f per feature of `sims` and s̄_c (mean over the channel's features) per channel of `channel_set` for
    each group → (G,) each. A feature undefined for a group (NaN) is left out of its channel's mean."""
    missing = [f for f in channel_set.features if f not in sims]
    if missing:
        raise ParameterError(f"channel set {channel_set.name!r}: no similarity matrix for its features {missing}")
    features = {name: group_similarity(sim, groups) for name, sim in sims.items()}
    by_channel = {c: _mean_defined(np.array([features[f] for f in fs])) for c, fs in channel_set.channels.items()}
    return features, by_channel


def _mean_defined(values: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of the finite values, values: (F, G) → (G,); NaN where none is finite."""
    if np.isfinite(values).all():
        return np.mean(values, axis=0)
    defined = np.isfinite(values)
    count = defined.sum(axis=0)
    return np.divide(np.where(defined, values, 0.0).sum(axis=0), count, out=np.full(values.shape[1], np.nan),
                     where=count > 0)


def null_distribution(
    sims: Mapping[str, np.ndarray],
    k: int,
    *,
    channel_set: ChannelSet = AUDIO,
    n_groups: int = 1000,
    seed: int = 0,
) -> dict:
    """μ and σ (ddof = 1) of s̄_f and s̄_c over `n_groups` random groups of size `k` from the pool, over the
    groups where the value is defined (NaN μ and σ when fewer than two are).

    Depends only on the pool and K, so one null serves every query and every method.
    """
    n_pool = next(iter(sims.values())).shape[0]
    features, by_channel = group_values(sims, random_groups(n_pool, k, n_groups, seed), channel_set=channel_set)

    def stats(values: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
        defined = {n: v[np.isfinite(v)] for n, v in values.items()}
        return {n: {"mu": float(v.mean()), "sigma": float(v.std(ddof=1))} if len(v) > 1 else
                {"mu": float("nan"), "sigma": float("nan")} for n, v in defined.items()}

    return {"k": k, "n_groups": n_groups, "seed": seed, "features": stats(features), "channels": stats(by_channel)}


def zscores(values: Mapping[str, np.ndarray], null: Mapping[str, Mapping[str, float]]) -> dict[str, np.ndarray]:
    """z = (value − μ)/σ for each name in `values` with the matching entry of `null`; NaN where σ = 0."""
    out = {}
    for name, v in values.items():
        mu, sigma = null[name]["mu"], null[name]["sigma"]
        if not sigma > 0:
            warnings.warn(f"`{name}` does not vary over random groups (σ = 0); its z is NaN", AriaWarning,
                          stacklevel=2)
            out[name] = np.full(len(v), np.nan)
        else:
            out[name] = (np.asarray(v, dtype=np.float64) - mu) / sigma
    return out


def summarize(z: np.ndarray, sig_z: float = SIG_Z) -> dict[str, float]:
    """z̄ (mean), Pos (fraction z > 0), Sig (fraction z > sig_z) over the finite values of z (Q,)."""
    z = np.asarray(z, dtype=np.float64)
    z = z[np.isfinite(z)]
    if z.size == 0:
        return {"z_mean": float("nan"), "pos": float("nan"), "sig": float("nan"), "n": 0}
    return {"z_mean": float(z.mean()), "pos": float(np.mean(z > 0)), "sig": float(np.mean(z > sig_z)),
            "n": int(z.size)}


def homogeneity(
    T: np.ndarray,
    sims: Mapping[str, np.ndarray],
    ks: Iterable[int],
    null_for: Callable[[int], dict],
    *,
    channel_set: ChannelSet = AUDIO,
    sig_z: float = SIG_Z,
) -> dict[int, dict]:
    """Per-query z of every channel and feature for the top-K group of each query, for each K.

    T: (N, Q) normalised track-level scores over the pool of `sims`; `null_for(k)` gives the null of
    `null_distribution` for the same `channel_set`. Returns {K: {"channels": {c: z (Q,)}, "features": {f: z (Q,)},
    "summary": {c: summarize(z)}, "feature_summary": {f: summarize(z)}}}.
    """
    T = np.asarray(T, dtype=np.float64)
    n_pool = next(iter(sims.values())).shape[0]
    if T.shape[0] != n_pool:
        raise ParameterError(f"T has {T.shape[0]} tracks but the similarity matrices cover {n_pool}")
    out = {}
    for k in valid_ks(ks, n_pool):
        null = null_for(k)
        features, by_channel = group_values(sims, top_k_groups(T, k), channel_set=channel_set)
        z_channels = zscores(by_channel, null["channels"])
        z_features = zscores(features, null["features"])
        out[k] = {
            "channels": z_channels,
            "features": z_features,
            "summary": {c: summarize(z, sig_z) for c, z in z_channels.items()},
            "feature_summary": {f: summarize(z, sig_z) for f, z in z_features.items()},
        }
    return out


def stratify(z: np.ndarray, labels: Sequence[str], sig_z: float = SIG_Z) -> dict:
    """Confound check (paper B.6): z̄, Pos, Sig of z (Q,) within each query group, and the spread
    (sample std) of the group means. Returns {"groups": {label: summary}, "spread": float}."""
    z = np.asarray(z, dtype=np.float64)
    labels = np.asarray([str(x) for x in labels])
    if labels.shape != z.shape:
        raise ParameterError(f"{labels.size} labels for {z.size} queries")
    groups = {label: summarize(z[labels == label], sig_z) for label in sorted(set(labels))}
    means = np.array([g["z_mean"] for g in groups.values()])
    means = means[np.isfinite(means)]
    return {"groups": groups, "spread": float(means.std(ddof=1)) if means.size > 1 else float("nan")}
