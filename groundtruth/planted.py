"""Planted sources as ground truth (docs/ground_truth.md#planted-source-retrieval): how well a matrix retrieves
each query's planted sources (hit@K, MRR, precision@K) with their chance levels under a random ranking, and
whether those sources really influence their queries, measured on the subset models (the in-vs-out effect).

The in-vs-out effect: for each query kind, a query's loss under each subset model is regressed on the
fraction of its planted sources in that model's training subset, with query and model fixed effects (two-way
demeaning): the slope is the loss change in nats from none to all of its sources in the subset, with its
t-statistic. The same for training tracks on their own presence (sanity check: a model learns its training
set) and for a placebo (each query's sources replaced by as many random other training tracks). Also per
codebook and per query.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import comb

from groundtruth.study import Study
from lumina.manifest import Manifest

PLANTED_KINDS = ("near_copy", "composition", "production", "sample")


def _ranked_sources(tau: np.ndarray, q: int, position: dict[str, int], planted: Sequence[str]) -> np.ndarray:
    """Whether each training track is one of `planted` (N,) bool, in the ranking order of column `q` of `tau`:
    tracks without a score (NaN) last, ties broken against the planted sources."""
    column = np.nan_to_num(np.asarray(tau[:, q], dtype=np.float64), nan=-np.inf)
    is_source = np.zeros(len(position), dtype=bool)
    is_source[[position[t] for t in planted]] = True
    return is_source[np.lexsort((is_source, -column))]


def planted_ranks(tau: np.ndarray, train_ids: Sequence[str], sources: Sequence[Sequence[str]]) -> np.ndarray:
    """Rank (1 = top) of the best-ranked planted source of each query (Q,); 0 where a query has no source.

    tau: (N, Q); sources: Q lists of track ids. Tracks without a score (NaN) rank last; ties are broken against
    the planted sources, so a constant column earns no credit.
    """
    position = {t: i for i, t in enumerate(train_ids)}
    ranks = np.zeros(len(sources), dtype=np.int64)
    for q, planted in enumerate(sources):
        if planted:
            ranks[q] = int(np.flatnonzero(_ranked_sources(tau, q, position, planted))[0]) + 1
    return ranks


def top_k_precision(tau: np.ndarray, train_ids: Sequence[str], sources: Sequence[Sequence[str]], k: int
                    ) -> np.ndarray:
    """Fraction of each query's top `k` tracks that are planted sources (Q,), same ordering as `planted_ranks`."""
    position = {t: i for i, t in enumerate(train_ids)}
    return np.array([_ranked_sources(tau, q, position, planted)[:k].mean() for q, planted in enumerate(sources)],
                    dtype=np.float64)


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


def chance_levels(manifest: Manifest, n_tracks: int, k: int) -> dict[str, dict[str, float]]:
    """hit@K, MRR and precision@K of a random ranking of `n_tracks` training tracks, per planted kind
    (averaged over the kind's queries): {kind: {"hit", "mrr", "precision"}}."""
    out = {}
    for kind in PLANTED_KINDS:
        counts = [len(manifest.sources_of(q)) for q in manifest.query_ids if manifest.row(q)["query_kind"] == kind]
        if counts:
            out[kind] = {"hit": float(np.mean([chance_hit_at_k(n_tracks, s, k) for s in counts])),
                         "mrr": float(np.mean([chance_mrr(n_tracks, s) for s in counts])),
                         "precision": float(np.mean(counts) / n_tracks)}
    return out


# -- do the planted sources influence their queries? (in-vs-out on the subset models) ---------------------------

def two_way_effect(y: np.ndarray, x: np.ndarray) -> dict[str, float]:
    """Slope of y on x with row (model) and column (track) fixed effects; y, x: (M, Q).

    Returns effect (the slope), se, t, dof (M·Q − M − Q) and a two-sided p-value; NaN when x does not vary
    within tracks and models.
    """
    def demean(a: np.ndarray) -> np.ndarray:
        return a - a.mean(axis=0, keepdims=True) - a.mean(axis=1, keepdims=True) + a.mean()

    xd, yd = demean(np.asarray(x, dtype=np.float64)), demean(np.asarray(y, dtype=np.float64))
    m, q = xd.shape
    dof = m * q - m - q
    sxx = float(np.sum(xd**2))
    if sxx <= 1e-12 or dof < 1:
        return {"effect": np.nan, "se": np.nan, "t": np.nan, "dof": dof, "p": np.nan}
    slope = float(np.sum(xd * yd) / sxx)
    se = float(np.sqrt(np.sum((yd - slope * xd) ** 2) / dof / sxx))
    t = slope / se if se > 0 else np.nan
    return {"effect": slope, "se": se, "t": t, "dof": dof, "p": float(2 * stats.t.sf(abs(t), dof))}


def query_effect(y: np.ndarray, x: np.ndarray) -> dict[str, float]:
    """Per-query slope of the loss (M,) on the fraction of its sources in (M,), with its t (M − 2 dof)."""
    if np.ptp(x) == 0:
        return {"effect": np.nan, "t": np.nan}
    fit = stats.linregress(x, y)
    return {"effect": float(fit.slope), "t": float(fit.slope / fit.stderr) if fit.stderr > 0 else np.nan}


def placebo_sources(manifest: Manifest, queries: Sequence[str], seed: int) -> dict[str, list[str]]:
    """For each query, as many random training tracks as it has planted sources, none of them a source."""
    rng = np.random.default_rng(seed)
    train = manifest.train_ids
    out = {}
    for q in queries:
        sources = set(manifest.sources_of(q))
        pool = [t for t in train if t not in sources]
        out[q] = [pool[i] for i in sorted(rng.choice(len(pool), size=len(sources), replace=False))]
    return out


def _panel(study: Study, ids: Sequence[str], sources: dict[str, list[str]], codebook: int | None
           ) -> tuple[np.ndarray, np.ndarray]:
    """Losses y (M, len(ids)) and the fraction x (M, len(ids)) of each track's `sources` in each model."""
    y = study.loss_of(ids, codebook)
    x = np.stack([study.fraction_in(sources[t]) for t in ids], axis=1)
    return y, x


def planted_effects(study: Study, manifest: Manifest, *, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Effects per group (kinds, own track, placebo) and per query.

    Returns (groups, queries): groups has one row per group with `effect` (nats), `se`, `t`, `dof`, `p`,
    `n_tracks`, `n_models` and `effect_cbK`, `t_cbK` per codebook; queries has one row per query with
    `kind`, `variant`, `n_sources`, `effect`, `t`.
    """
    kinds = {kind: [q for q in manifest.query_ids if manifest.row(q)["query_kind"] == kind] for kind in PLANTED_KINDS}
    kinds = {kind: ids for kind, ids in kinds.items() if ids}
    groups: dict[str, tuple[list[str], dict[str, list[str]]]] = {
        kind: (ids, {q: manifest.sources_of(q) for q in ids}) for kind, ids in kinds.items()
    }
    train = study.train_ids
    groups["own_track"] = (train, {t: [t] for t in train})
    planted = [q for ids in kinds.values() for q in ids]
    if planted:
        groups["placebo"] = (planted, placebo_sources(manifest, planted, seed))
    n_codebooks = study.codebook_losses.shape[2]
    rows = []
    for name, (ids, sources) in groups.items():
        row = {"group": name, "n_tracks": len(ids), "n_models": study.n_models,
               **two_way_effect(*_panel(study, ids, sources, None))}
        for k in range(n_codebooks):
            effect = two_way_effect(*_panel(study, ids, sources, k))
            row[f"effect_cb{k + 1}"], row[f"t_cb{k + 1}"] = effect["effect"], effect["t"]
        rows.append(row)
    per_query = []
    for kind, ids in kinds.items():
        y, x = _panel(study, ids, groups[kind][1], None)
        for j, q in enumerate(ids):
            per_query.append({"query_id": q, "kind": kind, "variant": manifest.row(q)["variant"],
                              "n_sources": len(groups[kind][1][q]), **query_effect(y[:, j], x[:, j])})
    return pd.DataFrame(rows), pd.DataFrame(per_query)
