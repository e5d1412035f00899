"""Replication across model seeds (docs/replication.md): every headline number of each seed's study side by side,
its mean and spread, the stability of the method rankings and of each query's top tracks, and which findings
hold in how many seeds.

Inputs per seed: the tables `scripts/study.sh SEED` writes into `results/seed<SEED>/` (leaderboard.csv,
ground_truth.csv, ground_truth_aria.csv, planted_influence.csv, abstention.csv) and the score matrices of its
runs (for the top-10 overlap).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from aria.io import ScoreArtefact
from aria.normalize import track_scores

SETTING_QUANTITIES = {
    "ground_truth.csv": ("lds", "near_copy_hit_at_10", "composition_hit_at_10", "production_hit_at_10",
                         "sample_hit_at_10", "top1_effect", "top10_effect"),
    "leaderboard.csv": ("rho1", "rho2_5", "concentration", "inter_query_corr", "rhythm_z", "harmony_z", "timbre_z",
                        "rank"),
}
"""Per-setting headline numbers and the table each comes from."""


def read_seed_tables(results: Path, seeds: Sequence[int]) -> dict[int, dict[str, pd.DataFrame]]:
    """{seed: {table name: DataFrame}} of the tables each seed's study wrote (missing tables are left out)."""
    names = ("leaderboard.csv", "ground_truth.csv", "ground_truth_aria.csv", "planted_influence.csv",
             "abstention.csv")
    out = {}
    for seed in seeds:
        folder = Path(results) / f"seed{seed}"
        out[seed] = {n: pd.read_csv(folder / n) for n in names if (folder / n).is_file()}
    return out


def headline_values(tables: Mapping[int, Mapping[str, pd.DataFrame]]) -> pd.DataFrame:
    """Long table (quantity, method, setting, seed, value) of every headline number of every seed."""
    rows = []
    for seed, by_name in tables.items():
        for name, quantities in SETTING_QUANTITIES.items():
            table = by_name.get(name)
            if table is None:
                continue
            table = table[table["status"] == "ok"] if "status" in table else table
            for r in table.itertuples():
                for q in quantities:
                    if q in table.columns:
                        rows.append({"quantity": q, "method": r.method, "setting": r.setting, "seed": seed,
                                     "value": getattr(r, q)})
        effects = by_name.get("planted_influence.csv")
        if effects is not None:
            for r in effects[effects["level"] == "group"].itertuples():
                for q in ("effect", "p_holm"):
                    if q in effects.columns:
                        rows.append({"quantity": f"planted_{q}", "method": "", "setting": r.group, "seed": seed,
                                     "value": getattr(r, q)})
        agreement = by_name.get("ground_truth_aria.csv")
        if agreement is not None:
            for r in agreement[agreement["truth"] == "lds"].itertuples():
                rows.append({"quantity": "aria_vs_lds_spearman", "method": "", "setting": r.aria, "seed": seed,
                             "value": r.spearman})
        abstention = by_name.get("abstention.csv")
        if abstention is not None:
            for r in abstention[abstention["level"] == "setting"].itertuples():
                for q in ("evaluation_auc", "recall_near_copy", "false_share_negatives"):
                    rows.append({"quantity": f"abstention_{q}", "method": r.method, "setting": r.setting,
                                 "seed": seed, "value": getattr(r, q)})
    return pd.DataFrame(rows, columns=["quantity", "method", "setting", "seed", "value"])


MIN_SEEDS = 3
"""Seeds a finding must be tested in before it counts as replicated (fewer: the page says so)."""


def spread(values: pd.DataFrame) -> pd.DataFrame:
    """Per (quantity, method, setting): n_seeds, mean, sd (ddof 1), min, max and `identical` (every seed gave
    the same value: nothing random reached it; empty with a single seed, where it cannot be told)."""
    grouped = values.groupby(["quantity", "method", "setting"], sort=True)["value"]
    out = grouped.agg(n_seeds="count", mean="mean", sd="std", min="min", max="max").reset_index()
    out["identical"] = (out["max"] == out["min"]).astype(object).where(out["n_seeds"] >= 2, None)
    return out


def ranking_stability(values: pd.DataFrame, quantity: str) -> pd.DataFrame:
    """Kendall tau between every pair of seeds' rankings of the settings by `quantity` (settings in both)."""
    table = values[values["quantity"] == quantity].pivot_table(index=["method", "setting"], columns="seed",
                                                                values="value")
    rows = []
    for a, b in itertools.combinations(table.columns, 2):
        pair = table[[a, b]].dropna()
        tau, p = stats.kendalltau(pair[a], pair[b]) if len(pair) >= 3 else (np.nan, np.nan)
        rows.append({"quantity": quantity, "seed_a": a, "seed_b": b, "n_settings": len(pair), "kendall": tau,
                     "kendall_p": p})
    return pd.DataFrame(rows, columns=["quantity", "seed_a", "seed_b", "n_settings", "kendall", "kendall_p"])


def top_tracks(artefact: ScoreArtefact, k: int = 10) -> dict[str, set[str]]:
    """Each query's k top-ranked training tracks (raw track means)."""
    tracks = track_scores(artefact.scores, artefact.segment_track, artefact.track_ids, None)
    order = np.argsort(-tracks, axis=0, kind="stable")[:k]
    return {q: {artefact.track_ids[i] for i in order[:, j]} for j, q in enumerate(artefact.query_ids)}


def top_overlap(per_seed: Mapping[int, dict[str, set[str]]], k: int = 10) -> pd.DataFrame:
    """Per query present in every seed: the mean over seed pairs of |top-k ∩ top-k'| / k."""
    queries = set.intersection(*(set(t) for t in per_seed.values())) if per_seed else set()
    rows = []
    for q in sorted(queries):
        pairs = [len(per_seed[a][q] & per_seed[b][q]) / k for a, b in itertools.combinations(per_seed, 2)]
        rows.append({"query_id": q, "overlap": float(np.mean(pairs)) if pairs else np.nan})
    return pd.DataFrame(rows, columns=["query_id", "overlap"])


Claim = Callable[[Mapping[str, pd.DataFrame]], bool | None]


def _planted(kind: str) -> Claim:
    def claim(tables: Mapping[str, pd.DataFrame]) -> bool | None:
        effects = tables.get("planted_influence.csv")
        if effects is None or "label" not in effects:
            return None
        row = effects[(effects["level"] == "group") & (effects["group"] == kind)]
        return None if row.empty else bool(row["label"].iloc[0] == "influence")
    return claim


def _lumina_weakest(tables: Mapping[str, pd.DataFrame]) -> bool | None:
    truth = tables.get("ground_truth.csv")
    if truth is None or truth.empty:
        return None
    best = truth.groupby("method")["lds"].max()
    return bool("lumina" in best and best["lumina"] == best.min())


def _diagnostic_agrees(name: str) -> Claim:
    def claim(tables: Mapping[str, pd.DataFrame]) -> bool | None:
        agreement = tables.get("ground_truth_aria.csv")
        if agreement is None:
            return None
        row = agreement[(agreement["aria"] == name) & (agreement["truth"] == "lds")]
        if row.empty or not np.isfinite(row["spearman"].iloc[0]):
            return None
        return bool(row["spearman"].iloc[0] > 0 and row["spearman_p_holm"].iloc[0] < 0.05)
    return claim


def _best_by_lds(method: str) -> Claim:
    def claim(tables: Mapping[str, pd.DataFrame]) -> bool | None:
        truth = tables.get("ground_truth.csv")
        if truth is None or truth.empty:
            return None
        return bool(method in set(truth.loc[truth["lds"] == truth["lds"].max(), "method"]))
    return claim


def _top_ranked_lowers_loss(tables: Mapping[str, pd.DataFrame]) -> bool | None:
    truth = tables.get("ground_truth.csv")
    if truth is None or "top1_p_holm" not in truth:
        return None
    return bool(((truth["top1_effect"] < 0) & (truth["top1_p_holm"] < 0.05)).all())


def _abstention_keeps_false_shares(tables: Mapping[str, pd.DataFrame]) -> bool | None:
    table = tables.get("abstention.csv")
    if table is None:
        return None
    settings = table[table["level"] == "setting"]
    return bool((settings["false_share_negatives"] <= 0.1).all()) if len(settings) else None


CLAIMS: dict[str, Claim] = {
    "Near-copy queries: their planted sources measurably influence the model (t-test over queries, Holm, "
    "α = 0.05)": _planted("near_copy"),
    "Sample queries: their source measurably influences the model": _planted("sample"),
    "Composition queries: their sources measurably influence the model": _planted("composition"),
    "Production queries: their sources measurably influence the model": _planted("production"),
    "LUMINA is the weakest method family by LDS (its best setting below every other family's best)":
        _lumina_weakest,
    "GradDot is (among) the best settings by LDS": _best_by_lds("graddot"),
    "Aria's ρ₁ ranks settings as LDS does (Spearman > 0, Holm p < 0.05)": _diagnostic_agrees("rho1"),
    "Aria's ρ₂:₅ ranks settings as LDS does": _diagnostic_agrees("rho2_5"),
    "Aria's c̄ ranks settings as LDS does": _diagnostic_agrees("concentration"),
    "Aria's ρ̄ ranks settings as LDS does": _diagnostic_agrees("inter_query_corr"),
    "Every setting's top-ranked track measurably lowers its query's loss (top-1 in vs out on the subset models, "
    "t-test over queries, Holm over settings)": _top_ranked_lowers_loss,
    "Every setting's abstention rule keeps the false-share rate on held-out negatives at or below 10 %":
        _abstention_keeps_false_shares,
}
"""Findings of the study, each a test of one seed's tables (None: that seed lacks the table)."""


def claims_by_seed(tables: Mapping[int, Mapping[str, pd.DataFrame]]) -> pd.DataFrame:
    """One row per claim: holds (k), assessed (n) and the seeds where it holds."""
    rows = []
    for text, claim in CLAIMS.items():
        verdicts = {seed: claim(by_name) for seed, by_name in tables.items()}
        assessed = {s: v for s, v in verdicts.items() if v is not None}
        rows.append({"finding": text, "holds": sum(assessed.values()), "assessed": len(assessed),
                     "seeds_holding": " ".join(str(s) for s, v in assessed.items() if v)})
    return pd.DataFrame(rows)


def leaderboard_differences(new: pd.DataFrame, committed: pd.DataFrame, *, method: str = "lumina",
                            digits: int = 3) -> pd.DataFrame:
    """Cells of `method`'s rows whose values differ at `digits` decimals (the printed precision) between a fresh
    leaderboard and the committed one: (setting, column, new, committed); a row missing on one side is a
    difference in every numeric column. Aria's `rank` is left out: it places a setting among the leaderboard's
    other settings, and the demo's leaderboard holds LUMINA's alone."""
    numeric = [c for c in committed.columns
               if pd.api.types.is_numeric_dtype(committed[c]) and c in new.columns and c != "rank"]
    a = new[new["method"] == method].set_index("setting")
    b = committed[committed["method"] == method].set_index("setting")
    rows = []
    for setting in sorted(set(a.index) | set(b.index)):
        for column in numeric:
            x = a[column].get(setting, np.nan)
            y = b[column].get(setting, np.nan)
            same = (np.isnan(x) and np.isnan(y)) or (np.isfinite(x) and np.isfinite(y)
                                                     and round(float(x), digits) == round(float(y), digits))
            if not same:
                rows.append({"setting": setting, "column": column, "new": x, "committed": y})
    return pd.DataFrame(rows, columns=["setting", "column", "new", "committed"])
