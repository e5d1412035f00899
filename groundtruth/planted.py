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
from lumina.data.manifest import Manifest

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


def across_queries(slopes: np.ndarray) -> dict[str, float]:
    """The in-vs-out effect of a group with the query as the unit (docs/ground_truth.md#planted-influence): a
    one-sample t-test of the per-query slopes (n,) against 0, two-sided, n − 1 dof. Returns effect (the mean
    slope), se, t, dof, p; NaN with fewer than 2 queries."""
    slopes = np.asarray(slopes, dtype=np.float64)
    slopes = slopes[np.isfinite(slopes)]
    n = slopes.size
    if n < 2:
        return {"effect": np.nan, "se": np.nan, "t": np.nan, "dof": max(n - 1, 0), "p": np.nan}
    se = float(slopes.std(ddof=1) / np.sqrt(n))
    t = float(slopes.mean() / se) if se > 0 else np.nan
    return {"effect": float(slopes.mean()), "se": se, "t": t, "dof": n - 1,
            "p": float(2 * stats.t.sf(abs(t), n - 1)) if np.isfinite(t) else np.nan}


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries stay NaN and do not count)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    running = 0.0
    for i, index in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[index]))
        out[index] = running
    return out


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
    """Effects per group (kinds, own track, placebo) and per query, the query as the unit.

    Returns (groups, queries): groups has one row per group with `effect` (mean per-query slope, nats), `se`,
    `t`, `dof` (queries − 1), `p` (one-sample t-test over the queries, `across_queries`), `p_holm` (Holm over
    the planted kinds), `label` (α = 0.05), the pooled two-way fixed-effects estimate for reference
    (`pooled_effect`, `pooled_t`, `pooled_p`: cells as units, overstated when the effect differs by query),
    `n_tracks`, `n_models`, and `effect_cbK`, `t_cbK` per codebook; queries has one row per query with `kind`,
    `variant`, `n_sources`, `effect`, `t`.
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
    rows, per_query = [], []
    for name, (ids, sources) in groups.items():
        y, x = _panel(study, ids, sources, None)
        slopes = [query_effect(y[:, j], x[:, j]) for j in range(len(ids))]
        pooled = two_way_effect(y, x)
        row = {"group": name, "n_tracks": len(ids), "n_models": study.n_models,
               **across_queries(np.array([e["effect"] for e in slopes])),
               "pooled_effect": pooled["effect"], "pooled_t": pooled["t"], "pooled_p": pooled["p"]}
        for k in range(n_codebooks):
            yk, xk = _panel(study, ids, sources, k)
            effect = across_queries(np.array([query_effect(yk[:, j], xk[:, j])["effect"] for j in range(len(ids))]))
            row[f"effect_cb{k + 1}"], row[f"t_cb{k + 1}"] = effect["effect"], effect["t"]
        rows.append(row)
        if name in kinds:
            per_query += [{"query_id": q, "kind": name, "variant": manifest.row(q)["variant"],
                           "n_sources": len(sources[q]), **slopes[j]} for j, q in enumerate(ids)]
    groups_table = pd.DataFrame(rows)
    planted = groups_table["group"].isin(PLANTED_KINDS)
    groups_table["p_holm"] = np.nan
    groups_table.loc[planted, "p_holm"] = holm(groups_table.loc[planted, "p"])
    groups_table["label"] = [influence_label(r.effect, r.p_holm if r.group in PLANTED_KINDS else r.p)
                             for r in groups_table.itertuples()]
    return groups_table, pd.DataFrame(per_query)


def top_ranked_effects(tau: np.ndarray, study: Study, queries: Sequence[str], k: int) -> np.ndarray:
    """The causal check without retraining (docs/ground_truth.md#top-ranked-in-vs-out): for each query, the
    slope of its loss across the subset models on the fraction of its k top-ranked training tracks each model
    was trained on. tau: track-level scores (N, Q) in `study.train_ids` order; returns per-query slopes (Q,)
    (negative: the tracks the method ranks first do lower the query's loss)."""
    losses = study.loss_of(list(queries))
    order = np.argsort(-np.nan_to_num(tau, nan=-np.inf), axis=0, kind="stable")[:k]
    slopes = np.empty(len(queries))
    for j in range(len(queries)):
        x = study.membership[:, order[:, j]].mean(axis=1)
        slopes[j] = query_effect(losses[:, j], x)["effect"]
    return slopes


def influence_label(effect: float, p: float, alpha: float = 0.05) -> str:
    """`influence` when the loss falls with the sources in (effect < 0) at adjusted p < alpha, `no measured
    influence` otherwise (an increase at p < alpha is reported as such)."""
    if not (np.isfinite(p) and p < alpha):
        return "no measured influence"
    return "influence" if effect < 0 else "loss rises with the sources in"
