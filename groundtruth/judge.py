"""Every method run judged against the truth of a subset study: LDS with a bootstrap interval over queries,
planted retrieval per query kind and Aria's reliability diagnostics of the raw matrix; and LUMINA's Channel
P and Channel M each on its own kind of planted source.

Matrices are read with Aria's validated reader (`aria.io.read_scores`), so ground truth and Aria accept and
refuse the same files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from aria.errors import ArtefactError
from aria.io import ScoreArtefact, read_run, read_scores
from aria.reliability import is_collapsed, reliability
from groundtruth.agreement import RELIABILITY, attach_aria, query_homogeneity
from groundtruth.lds import bootstrap_ci, lds_per_query, track_matrix
from groundtruth.planted import (
    PLANTED_KINDS,
    across_queries,
    chance_hit_at_k,
    chance_mrr,
    chance_pvalues,
    hit_at_k,
    holm,
    mean_reciprocal_rank,
    planted_ranks,
    top_k_precision,
    top_ranked_effects,
)
from groundtruth.study import Study
from lumina.data.manifest import QUERY_KINDS, Manifest
from lumina.runs.errors import ParameterError

TOP_RANKED = (1, 10)
"""k of the top-ranked in-vs-out check: the method's first track, and its first ten."""


def find_matrices(runs: str | Path) -> tuple[list[tuple[Path, ScoreArtefact]], list[str]]:
    """Every finished run under `runs` (a `run.json` with status ok) with its matrix, sorted by folder, and
    the runs Aria's readers refuse (`run folder`: reason). A folder without runs gives two empty lists."""
    found, refused = [], []
    for record_path in sorted(Path(runs).rglob("run.json")):
        folder = record_path.parent
        try:
            record = read_run(folder)
            if record["status"] == "ok":
                found.append((folder, read_scores(folder / record.get("scores", "scores.h5"))))
        except ArtefactError as err:
            refused.append(f"`{folder}`: {err}")
    return found, refused


def judge(matrix: ScoreArtefact, study: Study, manifest: Manifest, *, k: int, n_bootstrap: int, confidence: float,
          seed: int) -> tuple[dict, pd.DataFrame]:
    """One setting against the truth: (row of ground_truth.csv, per-query table of LDS, rank, precision@K).

    matrix.scores: (N_seg, Q); its queries that the study has no loss for are left out.
    """
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
    top_slopes = {top: top_ranked_effects(tau, study, queries, top) for top in TOP_RANKED}
    for top, slopes in top_slopes.items():
        test = across_queries(slopes)
        row.update({f"top{top}_effect": test["effect"], f"top{top}_t": test["t"], f"top{top}_p": test["p"]})
    rel = reliability(matrix.scores.astype(np.float64))
    row.update({name: rel[name] for name in RELIABILITY})
    row.update({"n_models": study.n_models, "n_queries": len(queries), "level": matrix.level})
    per_query = pd.DataFrame({"method": matrix.method, "setting": matrix.setting, "query_id": queries,
                              "kind": kinds, "lds": per_query_lds, "first_source_rank": ranks,
                              f"precision_at_{k}": precision, "n_sources": [len(s) for s in sources],
                              **{f"top{top}_effect": slopes for top, slopes in top_slopes.items()}})
    return row, per_query


def judge_runs(
    runs: str | Path, study: Study, manifest: Manifest, *, k: int, n_bootstrap: int, confidence: float, seed: int,
    collapse_rho1: float, collapse_concentration: float, headline_k: int, leaderboard: str | Path,
    channel_names: Sequence[str], progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Judge every run under `runs` (`judge`), flag collapse as Aria does and attach Aria's numbers.

    Returns (table, per_query, skipped): table has one row per setting (`judge`'s row, `collapsed`, then
    `aria_<channel>_z` and `aria_rank` from `leaderboard`, and `top<k>_p_holm`: Holm over the settings);
    per_query one row per setting and query with Aria's per-query `z_<channel>` (K = `headline_k`); skipped the
    runs not judged, each with the reason.
    """
    matrices, skipped = find_matrices(runs)
    rows, per_query = [], []
    for folder, matrix in tqdm(matrices, desc="judging runs", unit="run", disable=not progress):
        try:
            row, queries = judge(matrix, study, manifest, k=k, n_bootstrap=n_bootstrap, confidence=confidence,
                                 seed=seed)
        except ParameterError as err:
            skipped.append(f"`{folder}`: {err}")
            continue
        row["collapsed"] = is_collapsed(row["rho1"], row["concentration"], rho1_max=collapse_rho1,
                                        concentration_max=collapse_concentration)
        rows.append(row)
        per_query.append(queries.merge(query_homogeneity(folder, headline_k, channel_names), on="query_id",
                                       how="left"))
    if rows:
        table = attach_aria(pd.DataFrame(rows), leaderboard, channel_names)
        for top in TOP_RANKED:  # one family of tests per k: every setting's top-ranked in-vs-out t-test
            table[f"top{top}_p_holm"] = holm(table[f"top{top}_p"])
    else:
        table = pd.DataFrame(columns=["method", "setting", "lds", "lds_ci_low", "lds_ci_high",
                                      *[f"{kind}_hit_at_{k}" for kind in PLANTED_KINDS]])
    per_query = pd.concat(per_query, ignore_index=True) if per_query else pd.DataFrame(
        columns=["method", "setting", "query_id", "kind", "first_source_rank", "n_sources"])
    return table, per_query, skipped


def lumina_channels(per_query: pd.DataFrame, n_tracks: int, *, k: int, seed: int) -> pd.DataFrame:
    """For each LUMINA P setting with its M twin: each channel on composition and production sources, against
    chance (Monte Carlo p of hit@K and MRR, `n_tracks` training tracks) and against the other channel (paired
    Wilcoxon on 1/rank). per_query: `judge_runs`' per-query table; one row per setting and kind."""
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
            p_hit, p_mrr = chance_pvalues(ranks_a, n_tracks, a["n_sources"].tolist(), k=k, seed=seed)
            diff = 1.0 / ranks_a - 1.0 / ranks_b
            wilcoxon_p = float(stats.wilcoxon(diff, alternative="greater").pvalue) if np.any(diff != 0) else 1.0
            rows.append({
                "setting": own, "other": other, "kind": kind, "channel": channel, "n_queries": len(a),
                f"hit_at_{k}": hit_at_k(ranks_a, k), "mrr": mean_reciprocal_rank(ranks_a),
                f"other_hit_at_{k}": hit_at_k(ranks_b, k), "other_mrr": mean_reciprocal_rank(ranks_b),
                f"chance_hit_at_{k}": float(np.mean([chance_hit_at_k(n_tracks, s, k) for s in a["n_sources"]])),
                "chance_mrr": float(np.mean([chance_mrr(n_tracks, s) for s in a["n_sources"]])),
                "p_hit_vs_chance": p_hit, "p_mrr_vs_chance": p_mrr,
                "mrr_minus_other": float(diff.mean()), "p_vs_other": wilcoxon_p,
            })
    return pd.DataFrame(rows)
