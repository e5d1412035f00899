"""Ground truth on the embedded default (SPEC §5): every method run judged against subset retraining.

    python -m experiments.ground_truth                            # M = 32 subset models, every run found
    python -m experiments.ground_truth ground_truth.n_models=8    # the first 8 subset models only

Trains the subset models that are missing (experiments.subsets), measures the in-vs-out effect of the
planted sources (experiments.influence_check), then for every `scores.h5` under `ground_truth.runs`:
LDS with a bootstrap interval over queries (dattri's LDS), hit@K / MRR / precision@K of the planted
sources per query kind with their chance levels, Aria's reliability diagnostics of the raw matrix and, when
the leaderboard has been run, its homogeneity z per channel. Then: whether LUMINA's Channel P finds
composition sources and Channel M production sources better than chance and than the other channel; and
whether Aria's diagnostics rank the settings as LDS does (Spearman, Kendall). Writes `ground_truth.csv`,
`ground_truth_aria.csv`, `ground_truth_channels.csv`, `planted_influence.{md,csv}` and `README.md` into
`ground_truth.results`, each with this command.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from lumina.scores import ScoreMatrix
from omegaconf import DictConfig
from scipy import stats
from tqdm.auto import tqdm

from aria.features import CHANNELS
from aria.leaderboard import QUERIES_FILE
from aria.reliability import is_collapsed, reliability
from experiments.influence_check import PLANTED_KINDS, planted_effects, write_report
from experiments.setup import configure_runtime, load_corpus
from experiments.subsets import Study, study_from_config
from lumina.errors import ParameterError
from lumina.ground_truth import (
    bootstrap_ci,
    chance_hit_at_k,
    chance_mrr,
    chance_pvalues,
    hit_at_k,
    lds_per_query,
    mean_reciprocal_rank,
    planted_ranks,
    top_k_precision,
    track_matrix,
)
from lumina.manifest import QUERY_KINDS, Manifest

RELIABILITY = ("rho1", "rho2_5", "concentration", "inter_query_corr")
ARIA_BETTER_HIGH = {"rho1": False, "rho2_5": True, "concentration": False, "inter_query_corr": False}
"""Aria's reading of each diagnostic: does a larger value mean a more trustworthy (query-dependent) matrix?"""


def find_matrices(runs: str | Path) -> list[tuple[Path, ScoreMatrix]]:
    """Every finished run (`run.json` with status ok and its `scores.h5`) under `runs`, sorted by folder."""
    out = []
    for record_path in sorted(Path(runs).rglob("run.json")):
        record = json.loads(record_path.read_text())
        scores = record_path.parent / record.get("scores", "scores.h5")
        if record.get("status") == "ok" and scores.is_file():
            out.append((record_path.parent, ScoreMatrix.load(scores)))
    return out


def judge(matrix: ScoreMatrix, study: Study, manifest: Manifest, *, k: int, n_bootstrap: int, confidence: float,
          seed: int) -> tuple[dict, pd.DataFrame]:
    """One setting against the truth: (row of ground_truth.csv, per-query table of LDS, rank, precision@K)."""
    queries = [q for q in matrix.query_ids if q in set(study.track_ids)]
    columns = [matrix.query_ids.index(q) for q in queries]
    tau = track_matrix(matrix.scores[:, columns], matrix.segment_track, study.train_ids)
    per_query_lds = lds_per_query(tau, study.membership, study.loss_of(queries))
    low, high = bootstrap_ci(per_query_lds, n_resamples=n_bootstrap, confidence=confidence, seed=seed)
    kinds = [manifest.row(q)["query_kind"] for q in queries]
    sources = [manifest.sources_of(q) for q in queries]
    ranks = planted_ranks(tau, study.train_ids, sources)
    precision = top_k_precision(tau, study.train_ids, sources, k)
    row = {"method": matrix.method, "setting": matrix.setting, "lds": float(per_query_lds.mean()),
           "lds_ci_low": low, "lds_ci_high": high}
    for kind in PLANTED_KINDS:
        picked = [i for i, c in enumerate(kinds) if c == kind]
        row[f"{kind}_hit_at_{k}"] = hit_at_k(ranks[picked], k) if picked else math.nan
    for kind in PLANTED_KINDS:
        picked = [i for i, c in enumerate(kinds) if c == kind]
        row[f"{kind}_mrr"] = mean_reciprocal_rank(ranks[picked]) if picked else math.nan
        row[f"{kind}_precision_at_{k}"] = float(precision[picked].mean()) if picked else math.nan
    for kind in QUERY_KINDS:
        picked = [i for i, c in enumerate(kinds) if c == kind]
        row[f"lds_{kind}"] = float(per_query_lds[picked].mean()) if picked else math.nan
    rel = reliability(matrix.scores.astype(np.float64))
    row.update({name: rel[name] for name in RELIABILITY})
    row.update({"n_models": study.n_models, "n_queries": len(queries), "level": matrix.level})
    per_query = pd.DataFrame({"method": matrix.method, "setting": matrix.setting, "query_id": queries,
                              "kind": kinds, "lds": per_query_lds, "first_source_rank": ranks,
                              f"precision_at_{k}": precision, "n_sources": [len(s) for s in sources]})
    return row, per_query


def chance_levels(study: Study, manifest: Manifest, k: int) -> dict[str, dict[str, float]]:
    """hit@K, MRR and precision@K of a random ranking, per planted kind."""
    out = {}
    n = len(study.train_ids)
    for kind in PLANTED_KINDS:
        counts = [len(manifest.sources_of(q)) for q in manifest.query_ids if manifest.row(q)["query_kind"] == kind]
        if counts:
            out[kind] = {"hit": float(np.mean([chance_hit_at_k(n, s, k) for s in counts])),
                         "mrr": float(np.mean([chance_mrr(n, s) for s in counts])),
                         "precision": float(np.mean(counts) / n)}
    return out


def attach_aria(table: pd.DataFrame, leaderboard: str | Path) -> pd.DataFrame:
    """Add Aria's homogeneity z̄ per channel and its rank from the leaderboard CSV, where it has the setting."""
    path = Path(leaderboard)
    wanted = [f"{c}_z" for c in CHANNELS] + ["rank"]
    if not path.is_file():
        return table.assign(**{f"aria_{c}": math.nan for c in wanted})
    board = pd.read_csv(path)
    board = board[["method", "setting", *[c for c in wanted if c in board.columns]]]
    board = board.rename(columns={c: f"aria_{c}" for c in wanted})
    merged = table.merge(board, on=["method", "setting"], how="left")
    for c in wanted:
        merged[f"aria_{c}"] = merged.get(f"aria_{c}", math.nan)
    return merged


def query_homogeneity(folder: Path, headline_k: int) -> pd.DataFrame:
    """Aria's per-query z per channel (original matrix, K = `headline_k`) from a run folder's
    `aria_queries.csv`, as columns `z_<channel>`; empty when the leaderboard has not diagnosed the run."""
    path = folder / QUERIES_FILE
    if not path.is_file():
        return pd.DataFrame(columns=["query_id", *[f"z_{c}" for c in CHANNELS]])
    table = pd.read_csv(path)
    table = table[(table["stage"] == "original") & (table["k"] == headline_k)]
    return table[["query_id", *[c for c in CHANNELS if c in table.columns]]].rename(
        columns={c: f"z_{c}" for c in CHANNELS})


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


def aria_vs_truth(table: pd.DataFrame, per_query: pd.DataFrame, k: int) -> pd.DataFrame:
    """Agreement of Aria's rankings with the truth over the non-collapsed settings.

    Each reliability diagnostic (oriented so that larger = more trustworthy by Aria's reading) and Aria's own
    rank against LDS; each channel's z̄ against LDS and against planted precision@K of each kind, across
    settings; and each channel's per-query z against the query's precision@K, pooled over settings and the
    queries of a kind (`<kind>_precision_at_K per query`).
    """
    ranked = table[~table["collapsed"]]
    pooled = per_query.merge(ranked[["method", "setting"]], on=["method", "setting"])
    rows = []
    for name in RELIABILITY:
        sign = 1.0 if ARIA_BETTER_HIGH[name] else -1.0
        rows.append({"aria": name, "truth": "lds", **rank_agreement(sign * ranked[name], ranked["lds"])})
    rows.append({"aria": "rank", "truth": "lds", **rank_agreement(-ranked["aria_rank"], ranked["lds"])})
    for channel in CHANNELS:
        z = ranked[f"aria_{channel}_z"]
        rows.append({"aria": f"{channel}_z", "truth": "lds", **rank_agreement(z, ranked["lds"])})
        for kind in PLANTED_KINDS:
            rows.append({"aria": f"{channel}_z", "truth": f"{kind}_precision_at_{k}",
                         **rank_agreement(z, ranked[f"{kind}_precision_at_{k}"])})
            of_kind = pooled[pooled["kind"] == kind]
            rows.append({"aria": f"{channel}_z", "truth": f"{kind}_precision_at_{k} per query",
                         **rank_agreement(of_kind[f"z_{channel}"], of_kind[f"precision_at_{k}"])})
    return pd.DataFrame(rows)


def lumina_channels(per_query: pd.DataFrame, study: Study, manifest: Manifest, *, k: int, seed: int
                    ) -> pd.DataFrame:
    """For each LUMINA P setting with its M twin: each channel on composition and production sources, against
    chance (Monte Carlo p of hit@K and MRR) and against the other channel (paired Wilcoxon on 1/rank)."""
    lumina = per_query[per_query["method"] == "lumina"]
    rows = []
    for p_setting in sorted(s for s in lumina["setting"].unique() if s.startswith("lumina-P") and
                            not s.startswith("lumina-PM")):
        m_setting = "lumina-M" + p_setting[len("lumina-P"):]
        if m_setting not in set(lumina["setting"]):
            continue
        for kind, channel in (("composition", "P"), ("production", "M")):
            own, other = (p_setting, m_setting) if channel == "P" else (m_setting, p_setting)
            a = lumina[(lumina["setting"] == own) & (lumina["kind"] == kind)].sort_values("query_id")
            b = lumina[(lumina["setting"] == other) & (lumina["kind"] == kind)].sort_values("query_id")
            if a.empty:
                continue
            ranks_a, ranks_b = a["first_source_rank"].to_numpy(), b["first_source_rank"].to_numpy()
            p_hit, p_mrr = chance_pvalues(ranks_a, len(study.train_ids), a["n_sources"].tolist(), k=k, seed=seed)
            diff = 1.0 / ranks_a - 1.0 / ranks_b
            wilcoxon_p = float(stats.wilcoxon(diff, alternative="greater").pvalue) if np.any(diff != 0) else 1.0
            rows.append({
                "setting": own, "other": other, "kind": kind, "channel": channel, "n_queries": len(a),
                f"hit_at_{k}": hit_at_k(ranks_a, k), "mrr": mean_reciprocal_rank(ranks_a),
                f"other_hit_at_{k}": hit_at_k(ranks_b, k), "other_mrr": mean_reciprocal_rank(ranks_b),
                f"chance_hit_at_{k}": float(np.mean([chance_hit_at_k(len(study.train_ids), s, k)
                                                     for s in a["n_sources"]])),
                "chance_mrr": float(np.mean([chance_mrr(len(study.train_ids), s) for s in a["n_sources"]])),
                "p_hit_vs_chance": p_hit, "p_mrr_vs_chance": p_mrr,
                "mrr_minus_other": float(diff.mean()), "p_vs_other": wilcoxon_p,
            })
    return pd.DataFrame(rows)


def _fmt(value: object, digits: int = 3) -> str:
    if isinstance(value, (float, np.floating)):
        return "—" if not np.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def markdown_table(frame: pd.DataFrame, columns: Sequence[str], digits: int = 3) -> str:
    """A Markdown table of `columns` of `frame` (floats with `digits` decimals, NaN as —)."""
    if frame.empty:
        return "(nothing to show yet: no method runs found)"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, r in frame.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c], digits) for c in columns) + " |")
    return "\n".join(lines)


def influence_label(t: float) -> str:
    """How the in-vs-out t-statistic of a planted kind reads: `influence` needs t ≤ −3."""
    return "influence" if t <= -3 else "weak evidence of influence" if t <= -2 else "no measured influence"


def findings(table: pd.DataFrame, effects: pd.DataFrame, channels: pd.DataFrame, agreement: pd.DataFrame,
             chance: dict, k: int) -> list[str]:
    """The findings in plain sentences, each computed from the tables."""
    out = []
    by_group = effects.set_index("group")
    for kind in PLANTED_KINDS:
        if kind in by_group.index:
            e = by_group.loc[kind]
            label = influence_label(e["t"])
            out.append(f"**{kind}** queries: {label} of their planted sources (loss change {e['effect']:+.3f} nats "
                       f"with all sources in, t = {e['t']:+.1f}, {int(e['n_models'])} subset models). Retrieving "
                       "these sources is " + ("retrieving influence." if label == "influence" else
                                              "musical similarity, not demonstrated influence."))
    if not table.empty:
        best = table.sort_values("lds", ascending=False).iloc[0]
        above = table[table["lds_ci_low"] > 0]
        out.append(f"**LDS**: best {best['method']}/{best['setting']} at {best['lds']:.3f} "
                   f"[{best['lds_ci_low']:.3f}, {best['lds_ci_high']:.3f}]; {len(above)} of {len(table)} settings "
                   "have an interval above 0.")
        for kind in PLANTED_KINDS:
            col = f"{kind}_hit_at_{k}"
            if kind in chance and table[col].notna().any():
                top = table.sort_values(col, ascending=False).iloc[0]
                out.append(f"**{kind} hit@{k}**: best {top['method']}/{top['setting']} {top[col]:.3f} "
                           f"(chance {chance[kind]['hit']:.3f}).")
    for r in channels.itertuples():
        better_chance = r.p_mrr_vs_chance < 0.05
        better_other = r.p_vs_other < 0.05
        out.append(f"**LUMINA {r.setting} on {r.kind} sources**: MRR {r.mrr:.3f} vs chance {r.chance_mrr:.3f} "
                   f"(p = {r.p_mrr_vs_chance:.3g}) and vs {r.other} {r.other_mrr:.3f} (Wilcoxon p = "
                   f"{r.p_vs_other:.3g}): {'better' if better_chance else 'not better'} than chance, "
                   f"{'better' if better_other else 'not better'} than the other channel.")
    for r in agreement[agreement["truth"] == "lds"].itertuples():
        if np.isfinite(r.spearman):
            out.append(f"**Aria {r.aria} vs LDS** over {r.n} settings: Spearman {r.spearman:+.2f} "
                       f"(p = {r.spearman_p:.2g}), Kendall {r.kendall:+.2f}.")
    return out


def write_results(results: str | Path, command: str, study: Study, table: pd.DataFrame, effects: pd.DataFrame,
                  channels: pd.DataFrame, agreement: pd.DataFrame, chance: dict, k: int, skipped: Sequence[str]
                  ) -> None:
    """ground_truth.csv, ground_truth_aria.csv, ground_truth_channels.csv and README.md into `results`;
    `skipped` lists the runs that could not be judged, with the reason."""
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    table.assign(command=command).to_csv(results / "ground_truth.csv", index=False)
    agreement.assign(command=command).to_csv(results / "ground_truth_aria.csv", index=False)
    channels.assign(command=command).to_csv(results / "ground_truth_channels.csv", index=False)
    hit = [f"{kind}_hit_at_{k}" for kind in PLANTED_KINDS]
    mrr = [f"{kind}_mrr" for kind in PLANTED_KINDS]
    seconds = [r["train_seconds"] for r in study.records if r.get("train_seconds")]
    lines = [
        "# Ground truth on the embedded default",
        "",
        f"Every table on this page: `{command}` (writes `ground_truth.csv`, `ground_truth_aria.csv`, "
        "`ground_truth_channels.csv`, `planted_influence.{md,csv}` and this page). Method runs are read from "
        "`outputs/runs/…/<method>/<setting>/scores.h5`; Aria's homogeneity z from `leaderboard.csv` "
        "(`python -m experiments.leaderboard`) when present.",
        "",
        f"Truth: {study.n_models} models of the embedded recipe, each trained on a random half of the "
        f"{len(study.train_ids)} training tracks (mean {np.mean(seconds) if seconds else math.nan:.0f} s of "
        f"training per model on {study.records[0]['threads']} thread). Method: docs/ground_truth.md.",
        "",
        "## Findings",
        "",
        *[f"- {s}" for s in findings(table, effects, channels, agreement, chance, k)],
        "",
        "## Do the planted sources influence the model? (in-vs-out on the subset models)",
        "",
        markdown_table(effects, ["group", "n_tracks", "n_models", "effect", "se", "t", "p"], 4),
        "",
        "Per codebook and per query: `planted_influence.md`.",
        "",
        "## LDS and planted retrieval per setting",
        "",
        f"LDS: mean over queries of the per-query Spearman; {int(table['n_queries'].max()) if len(table) else 0} "
        f"queries; 95 % bootstrap interval over queries. Chance hit@{k}: "
        + ", ".join(f"{kind} {c['hit']:.3f}" for kind, c in chance.items())
        + "; chance MRR: " + ", ".join(f"{kind} {c['mrr']:.3f}" for kind, c in chance.items())
        + f"; chance precision@{k}: " + ", ".join(f"{kind} {c['precision']:.3f}" for kind, c in chance.items()) + ". "
        "Measured influence of these sources (table above): "
        + ", ".join(f"{r.group} {r.effect:+.3f} nats (t {r.t:+.1f}: {influence_label(r.t)})"
                    for r in effects.itertuples() if r.group in PLANTED_KINDS) + ".",
        "",
        markdown_table(table, ["method", "setting", "lds", "lds_ci_low", "lds_ci_high", *hit, *mrr]),
        "",
        "LDS per query kind and Aria's numbers for the same settings:",
        "",
        markdown_table(table, ["method", "setting", *[f"lds_{q}" for q in QUERY_KINDS], *RELIABILITY,
                               "collapsed", *[f"aria_{c}_z" for c in CHANNELS]]),
        "",
        "## LUMINA's channels on their own kind of planted source",
        "",
        markdown_table(channels, ["setting", "kind", "n_queries", f"hit_at_{k}", "mrr", f"chance_hit_at_{k}",
                                  "chance_mrr", "p_mrr_vs_chance", "other", "other_mrr", "p_vs_other"])
        if not channels.empty else "No LUMINA P/M pair among the runs yet.",
        "",
        "## Aria versus the truth (non-collapsed settings)",
        "",
        "Diagnostics oriented so that larger means more trustworthy by Aria's reading (ρ₁, c̄, ρ̄ negated).",
        "",
        markdown_table(agreement, ["aria", "truth", "n", "spearman", "spearman_p", "kendall", "kendall_p"]),
        "",
        *(["## Runs not judged", "", *[f"- {s}" for s in skipped], ""] if skipped else []),
    ]
    (results / "README.md").write_text("\n".join(lines))


def ground_truth(cfg: DictConfig, command: str) -> pd.DataFrame:
    """Everything `python -m experiments.ground_truth` does; returns the ground-truth table."""
    gt = cfg.ground_truth
    k, seed = int(gt.k), int(gt.seed)
    manifest = load_corpus(cfg)
    study = study_from_config(cfg, manifest)
    effects, per_query_effects = planted_effects(study, manifest, seed=seed)
    write_report(effects, per_query_effects, study, gt.results, command)
    rows, per_query, skipped = [], [], []
    for folder, matrix in tqdm(find_matrices(gt.runs), desc="judging runs", unit="run",
                               disable=not bool(cfg.progress)):
        try:
            row, queries = judge(matrix, study, manifest, k=k, n_bootstrap=int(gt.n_bootstrap),
                                 confidence=float(gt.confidence), seed=seed)
        except ParameterError as err:
            skipped.append(f"`{folder}`: {err}")
            continue
        row["collapsed"] = is_collapsed(row["rho1"], row["concentration"], rho1_max=float(cfg.aria.collapse_rho1),
                                        concentration_max=float(cfg.aria.collapse_concentration))
        rows.append(row)
        per_query.append(queries.merge(query_homogeneity(folder, int(cfg.aria.headline_k)), on="query_id",
                                       how="left"))
    table = attach_aria(pd.DataFrame(rows), gt.leaderboard) if rows else pd.DataFrame(
        columns=["method", "setting", "lds", "lds_ci_low", "lds_ci_high",
                 *[f"{kind}_hit_at_{k}" for kind in PLANTED_KINDS]])
    per_query = pd.concat(per_query, ignore_index=True) if per_query else pd.DataFrame(
        columns=["method", "setting", "query_id", "kind", "first_source_rank", "n_sources"])
    channels = lumina_channels(per_query, study, manifest, k=k, seed=seed)
    agreement = aria_vs_truth(table, per_query, k) if rows else pd.DataFrame(
        columns=["aria", "truth", "n", "spearman", "spearman_p", "kendall", "kendall_p"])
    write_results(gt.results, command, study, table, effects, channels, agreement,
                  chance_levels(study, manifest, k), k, skipped)
    return table


@hydra.main(config_path="../conf", config_name="ground_truth", version_base="1.3")
def main(cfg: DictConfig) -> None:
    configure_runtime(cfg)
    command = " ".join(["python -m experiments.ground_truth", *sys.argv[1:]])
    table = ground_truth(cfg, command)
    shown = [c for c in table.columns if c in ("method", "setting", "lds", "lds_ci_low", "lds_ci_high")
             or c.endswith(f"hit_at_{int(cfg.ground_truth.k)}")]
    print(table[shown].to_string(index=False) if len(table) else "no method runs found under "
          f"{cfg.ground_truth.runs}")
    print(f"written to {cfg.ground_truth.results}/ground_truth.csv and README.md")


if __name__ == "__main__":
    main()
