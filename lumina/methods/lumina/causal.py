"""LUMINA's causal verification (docs/sources.md#lumina-due-diligence, docs/lumina.md#causal-verification): ablate
a training song, retrain, re-sign, compare.

For a query, the song ranked first by one channel's cosine is removed from the training set, the model is
retrained without it, the query and the removed song are signed again under the ablated model, and the
check passes when their cosine dropped by at least `sigmas` (default 2) times the query's population std of
cosines under the full model (the STS denominator). Two controls. `control`: the same with a song drawn at
random from the middle third of the query's ranking removed. `top_kept`: the top song's own drop under that
control model, where the top song stayed in training: a song ranked first is likely to fall under any
retraining (it was selected for being high), and `top_kept` measures how much. The check means something only
where the top-song pass rate clearly exceeds both controls'.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lumina.data.manifest import QUERY_KINDS, Manifest
from lumina.methods.lumina.stats import population
from lumina.runs.errors import ParameterError

ROLES = ("top", "control", "top_kept")
"""`top`, `control`: the removed song measured; `top_kept`: the top song measured in the control's model."""


def choose_queries(manifest: Manifest, n: int, seed: int = 0) -> list[str]:
    """`n` queries taken in turn from each query kind (near copy, composition, production, held out, then any
    other), each kind's queries in a seeded random order."""
    rng = np.random.default_rng(seed)
    by_kind: dict[str, list[str]] = {}
    for row in manifest.table[manifest.table["split"] == "query"].itertuples():
        by_kind.setdefault(row.query_kind or "query", []).append(row.track_id)
    if n < 1 or not by_kind:
        raise ParameterError(f"need n >= 1 and a corpus with queries (n={n}, {len(by_kind)} query kinds)")
    kinds = [k for k in QUERY_KINDS if k in by_kind] + sorted(set(by_kind) - set(QUERY_KINDS))
    pools = {k: [by_kind[k][i] for i in rng.permutation(len(by_kind[k]))] for k in kinds}
    chosen: list[str] = []
    while len(chosen) < n and any(pools.values()):
        for kind in kinds:
            if pools[kind] and len(chosen) < n:
                chosen.append(pools[kind].pop(0))
    return chosen


def mid_ranked(ranking: Sequence[str], rng: np.random.Generator) -> str:
    """A song drawn uniformly from the middle third of a ranking (best first): ranks ⌊N/3⌋ … ⌈2N/3⌉ - 1, 0-based."""
    n = len(ranking)
    if n < 3:
        raise ParameterError(f"a ranking of {n} songs has no middle third")
    first, last = n // 3, -(-2 * n // 3)
    return ranking[first + int(rng.integers(last - first))]


def plan(cosines: np.ndarray, track_ids: Sequence[str], rng: np.random.Generator) -> dict:
    """The two ablations of one query from its cosines (N,) against the training songs under the full model:
    the population (mu, sigma) and, per role, the removed song with its rank (1 = best) and cosine."""
    cosines = np.asarray(cosines, dtype=np.float64)
    mu, sigma = population(cosines)
    order = np.argsort(-cosines, kind="stable")
    ranking = [track_ids[i] for i in order]
    rank = {t: r for r, t in enumerate(ranking, start=1)}
    removed = {"top": ranking[0], "control": mid_ranked(ranking, rng)}
    chosen = {role: {"removed": t, "rank": rank[t], "cosine": float(cosines[list(track_ids).index(t)])}
              for role, t in removed.items()}
    return {"mu": mu, "sigma": sigma, **chosen}


def verdict(before: float, after: float, sigma: float, sigmas: float = 2.0) -> dict:
    """The check of one ablation: drop = before - after, in units of sigma; passed when drop >= sigmas · sigma."""
    drop = before - after
    return {"drop": drop, "drop_sigmas": drop / sigma if sigma > 0 else float("nan"),
            "passed": bool(drop >= sigmas * sigma)}


def pass_rates(rows: Sequence[dict]) -> dict[str, tuple[int, int]]:
    """(passed, checked) per role over result rows (each with `role` and `passed`)."""
    return {role: (sum(r["passed"] for r in rows if r["role"] == role), sum(r["role"] == role for r in rows))
            for role in ROLES}
