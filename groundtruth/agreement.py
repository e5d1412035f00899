"""Does Aria agree with the truth? Aria's numbers for the judged settings (reliability diagnostics, homogeneity
z per channel, leaderboard rank) and rank correlations between them and LDS / planted precision@K.

Channel names are a parameter (a sequence such as ("rhythm", "harmony", "timbre")): the columns read are
`<channel>_z` of the leaderboard and `<channel>` of a run folder's per-query table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from aria.leaderboard import QUERIES_FILE
from groundtruth.planted import PLANTED_KINDS, holm

RELIABILITY = ("rho1", "rho2_5", "concentration", "inter_query_corr")
"""Aria's reliability diagnostics of a raw matrix that ground truth records and compares."""
ARIA_BETTER_HIGH = {"rho1": False, "rho2_5": False, "concentration": False, "inter_query_corr": False}
"""Aria's reading of each diagnostic: does a larger value mean a more trustworthy matrix? None does: in the Aria
paper's Table 1 the method best by LDS has the lowest ρ₁, ρ₂:₅, c̄ and ρ̄ alike (docs/aria.md#reliability-diagnostics)."""
AGREEMENT_COLUMNS = ("aria", "truth", "n", "spearman", "spearman_p", "spearman_p_holm", "kendall", "kendall_p")


def attach_aria(table: pd.DataFrame, leaderboard: str | Path, channel_names: Sequence[str]) -> pd.DataFrame:
    """Add Aria's homogeneity z̄ per channel (`aria_<channel>_z`) and its rank (`aria_rank`) from the
    leaderboard CSV, where it has the setting; NaN columns when there is no leaderboard."""
    path = Path(leaderboard)
    wanted = [f"{c}_z" for c in channel_names] + ["rank"]
    if not path.is_file():
        return table.assign(**{f"aria_{c}": math.nan for c in wanted})
    board = pd.read_csv(path)
    board = board[["method", "setting", *[c for c in wanted if c in board.columns]]]
    board = board.rename(columns={c: f"aria_{c}" for c in wanted})
    merged = table.merge(board, on=["method", "setting"], how="left")
    for c in wanted:
        merged[f"aria_{c}"] = merged.get(f"aria_{c}", math.nan)
    return merged


def query_homogeneity(folder: Path, headline_k: int, channel_names: Sequence[str]) -> pd.DataFrame:
    """Aria's per-query z per channel (original matrix, K = `headline_k`) from a run folder's
    `aria_queries.csv`, as columns `query_id`, `z_<channel>`; empty when the leaderboard has not diagnosed
    the run."""
    path = folder / QUERIES_FILE
    if not path.is_file():
        return pd.DataFrame(columns=["query_id", *[f"z_{c}" for c in channel_names]])
    table = pd.read_csv(path)
    table = table[(table["stage"] == "original") & (table["k"] == headline_k)]
    return table[["query_id", *[c for c in channel_names if c in table.columns]]].rename(
        columns={c: f"z_{c}" for c in channel_names})


def rank_agreement(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Spearman and Kendall between two rankings (NaN pairs dropped), with p-values and the count."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    n = int(keep.sum())
    if n < 3 or np.ptp(a[keep]) == 0 or np.ptp(b[keep]) == 0:
        return {"n": n, "spearman": math.nan, "spearman_p": math.nan, "kendall": math.nan, "kendall_p": math.nan}
    rho, rho_p = stats.spearmanr(a[keep], b[keep])
    tau, tau_p = stats.kendalltau(a[keep], b[keep])
    return {"n": n, "spearman": float(rho), "spearman_p": float(rho_p), "kendall": float(tau),
            "kendall_p": float(tau_p)}


def aria_vs_truth(table: pd.DataFrame, per_query: pd.DataFrame, k: int, channel_names: Sequence[str]
                  ) -> pd.DataFrame:
    """Agreement of Aria's rankings with the truth over the non-collapsed settings.

    table: one row per setting (`judge_runs`); per_query: one row per setting and query, with `z_<channel>`.
    Each reliability diagnostic (oriented so that larger = more trustworthy by Aria's reading) and Aria's own
    rank against LDS; each channel's z̄ against LDS and against planted precision@K of each kind, across
    settings; and each channel's per-query z against the query's precision@K, pooled over settings and the
    queries of a kind (`<kind>_precision_at_K per query`). Columns: AGREEMENT_COLUMNS; no rows without settings.
    """
    if table.empty:
        return pd.DataFrame(columns=list(AGREEMENT_COLUMNS))
    ranked = table[~table["collapsed"]]
    pooled = per_query.merge(ranked[["method", "setting"]], on=["method", "setting"])
    rows = []
    for name in RELIABILITY:
        sign = 1.0 if ARIA_BETTER_HIGH[name] else -1.0
        rows.append({"aria": name, "truth": "lds", **rank_agreement(sign * ranked[name], ranked["lds"])})
    rows.append({"aria": "rank", "truth": "lds", **rank_agreement(-ranked["aria_rank"], ranked["lds"])})
    for channel in channel_names:
        z = ranked[f"aria_{channel}_z"]
        rows.append({"aria": f"{channel}_z", "truth": "lds", **rank_agreement(z, ranked["lds"])})
        for kind in PLANTED_KINDS:
            rows.append({"aria": f"{channel}_z", "truth": f"{kind}_precision_at_{k}",
                         **rank_agreement(z, ranked[f"{kind}_precision_at_{k}"])})
            per_query_means = pooled[pooled["kind"] == kind].groupby("query_id")[
                [f"z_{channel}", f"precision_at_{k}"]].mean()  # one row per query: the query is the unit
            rows.append({"aria": f"{channel}_z", "truth": f"{kind}_precision_at_{k} per query",
                         **rank_agreement(per_query_means[f"z_{channel}"], per_query_means[f"precision_at_{k}"])})
    out = pd.DataFrame(rows)
    out["spearman_p_holm"] = holm(out["spearman_p"])
    return out


def diagnostics_against_truth(table: pd.DataFrame, four: dict[str, str], channel_names: Sequence[str],
                              circular: str = "symbolic") -> pd.DataFrame:
    """Each reliability diagnostic (oriented as Aria reads it) against LDS, the test of the Aria paper's Table 1.

    table: one row per setting with `method`, `setting`, `collapsed`, the RELIABILITY columns, `lds`,
    `lds_window` and `aria_<channel>_z`; four: method → its default setting (the paper's four methods). Rows:
    each diagnostic over the four methods (does it order them as LDS does?) and over every non-collapsed setting,
    and each channel's z̄ over the non-collapsed settings without the `circular` method (whose homogeneity is its
    own score). Kendall τ with its exact or asymptotic p (scipy's `kendalltau`, two-sided) and Spearman beside
    it; `kendall_p_holm` is Holm's adjustment within each family (same truth and same set of settings).
    """
    ranked = table[~table["collapsed"].astype(bool)]
    chosen = table[[four.get(m) == s for m, s in zip(table["method"], table["setting"], strict=True)]]
    rows = []
    for target in ("lds", "lds_window"):
        for name in RELIABILITY:
            sign = 1.0 if ARIA_BETTER_HIGH[name] else -1.0
            rows.append({"diagnostic": name, "truth": target, "over": "four methods",
                         **rank_agreement(sign * chosen[name], chosen[target])})
            rows.append({"diagnostic": name, "truth": target, "over": "all settings",
                         **rank_agreement(sign * ranked[name], ranked[target])})
        honest = ranked[ranked["method"] != circular]
        for channel in channel_names:
            rows.append({"diagnostic": f"{channel}_z", "truth": target, "over": f"all settings but {circular}",
                         **rank_agreement(honest[f"aria_{channel}_z"], honest[target])})
    out = pd.DataFrame(rows)
    out["kendall_p_holm"] = out.groupby(["truth", "over"])["kendall_p"].transform(lambda p: holm(p.to_numpy()))
    return out
