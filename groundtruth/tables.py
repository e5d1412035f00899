"""The ground-truth reports: `planted_influence.{md,csv}` (the in-vs-out effects) and `ground_truth.csv`,
`ground_truth_aria.csv`, `ground_truth_channels.csv` and `README.md` (every setting judged, LUMINA's channels,
Aria versus the truth, and the findings in plain sentences computed from those tables). Each output records
the command that made it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from execution import files
from execution.files import cell
from groundtruth.agreement import RELIABILITY
from groundtruth.identity import write_truth_identity
from groundtruth.judge import TOP_RANKED
from groundtruth.planted import PLANTED_KINDS
from groundtruth.replication import MIN_SEEDS
from groundtruth.study import Study
from lumina.data.manifest import QUERY_KINDS
from lumina.runs.provenance import Provenance


def influence_markdown(groups: pd.DataFrame, queries: pd.DataFrame, command: str, study: Study) -> str:
    """The report: the group table, per-codebook effects and per-query effects, with the command."""
    n_codebooks = sum(c.startswith("effect_cb") for c in groups.columns)
    lines = [
        "# Planted influence: does a query's loss fall when its planted sources are in the training subset?",
        "",
        f"Command: `{command}`",
        "",
        f"{study.n_models} subset models (α = {study.membership.mean():.2f}, study `{study.folder}`). Effect = "
        "slope of the query's teacher-forcing loss (nats) on the fraction of its planted sources in the "
        "subset, with query and model fixed effects: the change from none to all of its sources in. "
        "Negative = the sources help. `own_track`: training tracks on their own presence (sanity check); "
        "`placebo`: each planted query with random other training tracks standing in for its sources.",
        "",
        files.markdown_table(pd.DataFrame({
            "group": groups["group"], "tracks": groups["n_tracks"], "models": groups["n_models"],
            "effect (nats)": groups["effect"].map("{:+.4f}".format), "se": groups["se"].map("{:.4f}".format),
            "t": groups["t"].map("{:+.2f}".format), "p": groups["p"].map("{:.2g}".format)})),
        "", "Per codebook (effect in nats, t):", "",
        files.markdown_table(pd.DataFrame({"group": groups["group"], **{
            f"codebook {k + 1}": [f"{e:+.4f} (t {s:+.2f})" for e, s in zip(groups[f"effect_cb{k + 1}"],
                                                                          groups[f"t_cb{k + 1}"], strict=True)]
            for k in range(n_codebooks)}})),
        "", "Per query (plain regression over the models, M − 2 dof):", "",
        files.markdown_table(pd.DataFrame({
            "query": queries["query_id"], "kind": queries["kind"], "variant": queries["variant"],
            "sources": queries["n_sources"], "effect (nats)": queries["effect"].map("{:+.4f}".format),
            "t": queries["t"].map("{:+.2f}".format)})),
    ]
    return "\n".join(lines) + "\n"


def write_influence_report(groups: pd.DataFrame, queries: pd.DataFrame, study: Study, results: str | Path,
                           command: str) -> Path:
    """Write `planted_influence.csv` (groups, then queries) and `planted_influence.md` into `results`;
    groups and queries as `planted_effects` returns them. Returns the Markdown file."""
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    table = pd.concat([groups.assign(level="group"), queries.rename(columns={"query_id": "group"})
                       .assign(level="query")], ignore_index=True)
    table.insert(0, "level", table.pop("level"))
    table.assign(command=command).to_csv(results / "planted_influence.csv", index=False)
    (results / "planted_influence.md").write_text(influence_markdown(groups, queries, command, study))
    return results / "planted_influence.md"


def markdown_table(frame: pd.DataFrame, columns: Sequence[str], digits: int = 3) -> str:
    """A Markdown table of `columns` of `frame` (`execution.files.markdown_table`), or a line saying there is
    nothing yet."""
    return files.markdown_table(frame, columns, digits, empty="(nothing to show yet: no method runs found)")


def findings(table: pd.DataFrame, effects: pd.DataFrame, channels: pd.DataFrame, agreement: pd.DataFrame,
             chance: dict, k: int) -> list[str]:
    """The findings in plain sentences, each computed from the tables."""
    out = []
    by_group = effects.set_index("group")
    for kind in PLANTED_KINDS:
        if kind in by_group.index:
            e = by_group.loc[kind]
            label = e["label"]
            out.append(f"**{kind}** queries: {label} of their planted sources (mean per-query loss change "
                       f"{e['effect']:+.3f} nats with all sources in, t({int(e['dof'])}) = {e['t']:+.2f} over "
                       f"{int(e['n_tracks'])} queries, p = {e['p']:.2g}, Holm-adjusted p = {e['p_holm']:.2g}; "
                       f"{int(e['n_models'])} subset models). Retrieving these sources is "
                       + ("retrieving influence." if label == "influence" else
                          "musical similarity, not demonstrated influence."))
    if not table.empty:
        best = table.sort_values("lds", ascending=False).iloc[0]
        above = table[table["lds_ci_low"] > 0]
        out.append(f"**LDS**: best {best_of(table, 'lds')} at {best['lds']:.3f} "
                   f"[{best['lds_ci_low']:.3f}, {best['lds_ci_high']:.3f}]; {len(above)} of {len(table)} settings "
                   "have an interval above 0.")
        for kind in PLANTED_KINDS:
            col = f"{kind}_hit_at_{k}"
            if kind in chance and col in table and table[col].notna().any():
                out.append(f"**{kind} hit@{k}**: best {best_of(table, col)} {table[col].max():.3f} "
                           f"(chance {chance[kind]['hit']:.3f}).")
    for top in TOP_RANKED:
        if f"top{top}_p_holm" in table and len(table):
            lowered = table[(table[f"top{top}_effect"] < 0) & (table[f"top{top}_p_holm"] < 0.05)]
            strongest = table.sort_values(f"top{top}_effect").iloc[0]
            out.append(f"**Top-{top} in vs out** (the causal check without retraining): the loss of a query falls "
                       f"when the method's top-{top} track{'s are' if top > 1 else ' is'} in a subset model's "
                       f"training data for {len(lowered)} of {len(table)} settings (t-test over queries, Holm "
                       f"over settings, α = 0.05); largest fall {strongest[f'top{top}_effect']:+.3f} nats "
                       f"({strongest['method']}/{strongest['setting']}).")
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
                       f"(p = {r.spearman_p:.2g}, Holm over the {int(agreement['spearman_p'].notna().sum())} "
                       f"Aria-vs-truth tests: {r.spearman_p_holm:.2g}), Kendall {r.kendall:+.2f}.")
    return out


def best_of(table: pd.DataFrame, column: str) -> str:
    """The setting(s) with the largest `column`, ties named together ("a/x and b/y (tied)")."""
    top = table[table[column] == table[column].max()]
    names = [f"{r.method}/{r.setting}" for r in top.itertuples()]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]} (tied)"


def write_results(results: str | Path, command: str, study: Study, table: pd.DataFrame, effects: pd.DataFrame,
                  channels: pd.DataFrame, agreement: pd.DataFrame, chance: dict, k: int, skipped: Sequence[str],
                  channel_names: Sequence[str], catalogue_key: str = "") -> None:
    """ground_truth.csv (with what it was measured on in truth.json), ground_truth_aria.csv,
    ground_truth_channels.csv and README.md into `results`.

    table, channels, agreement: from `judge_runs`, `lumina_channels`, `aria_vs_truth`; effects: the groups
    of `planted_effects`; chance: `chance_levels`; `skipped` lists the runs that could not be judged, with
    the reason; channel_names: Aria's channels whose z̄ the README shows; catalogue_key: the catalogue of the
    runs judged (`truth.json`).
    """
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    table.assign(command=command).to_csv(results / "ground_truth.csv", index=False)
    write_truth_identity(results, study, command, catalogue_key=catalogue_key)
    agreement.assign(command=command).to_csv(results / "ground_truth_aria.csv", index=False)
    channels.assign(command=command).to_csv(results / "ground_truth_channels.csv", index=False)
    hit = [f"{kind}_hit_at_{k}" for kind in PLANTED_KINDS]
    mrr = [f"{kind}_mrr" for kind in PLANTED_KINDS]
    seconds = [r["train_seconds"] for r in study.records if r.get("train_seconds")]
    lines = [
        "# Ground truth on the embedded default",
        "",
        f"Every table on this page: `{command}` (writes `ground_truth.csv`, `ground_truth_queries.csv`, "
        "`ground_truth_aria.csv`, "
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
        "Test: per-query slopes of the loss on the fraction of the query's sources in each model's subset, then a "
        "one-sample t-test over the queries of a group (the query is the unit; Holm over the planted kinds; "
        "label at α = 0.05). The pooled two-way fixed-effects estimate (every model × query cell as a unit) is "
        "shown for reference only: it overstates t when the effect differs by query.",
        "",
        markdown_table(effects, ["group", "n_tracks", "n_models", "effect", "se", "t", "dof", "p", "p_holm",
                                 "label", "pooled_t"], 4),
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
        + ", ".join(f"{r.group} {r.effect:+.3f} nats (t({int(r.dof)}) {r.t:+.2f}: {r.label})"
                    for r in effects.itertuples() if r.group in PLANTED_KINDS) + ".",
        "",
        markdown_table(table, ["method", "setting", "lds", "lds_ci_low", "lds_ci_high", *hit, *mrr]),
        "",
        "LDS per query kind and Aria's numbers for the same settings:",
        "",
        markdown_table(table, ["method", "setting", *[f"lds_{q}" for q in QUERY_KINDS], *RELIABILITY,
                               "collapsed", *[f"aria_{c}_z" for c in channel_names]]),
        "",
        "## The top-ranked tracks, in vs out of the subset models",
        "",
        "The causal check without retraining (docs/ground_truth.md#top-ranked-in-vs-out): per query, the slope of "
        "its loss across the subset models on the fraction of the method's top-k tracks each model was trained on "
        "(in nats, from none to all of them in); `effect` is the mean over the queries, `t` and `p` a one-sample "
        "t-test over the queries (the query is the unit), `p_holm` Holm over the settings for each k.",
        "",
        markdown_table(table, ["method", "setting", "n_queries", *[f"top{top}_{c}" for top in TOP_RANKED
                                                                  for c in ("effect", "t", "p", "p_holm")]], 4)
        if "top1_p_holm" in table else "No setting judged yet.",
        "",
        "## LUMINA's channels on their own kind of planted source",
        "",
        markdown_table(channels, ["setting", "kind", "n_queries", f"hit_at_{k}", "mrr", f"chance_hit_at_{k}",
                                  "chance_mrr", "p_mrr_vs_chance", "other", "other_mrr", "p_vs_other"])
        if not channels.empty else "No LUMINA P/M pair among the runs yet.",
        "",
        "## Aria versus the truth (non-collapsed settings)",
        "",
        "Diagnostics oriented as the Aria paper reads them: a smaller ρ₁, ρ₂:₅, c̄ and ρ̄ means a more trustworthy "
        "matrix, so each is negated before it is ranked against the truth. Across settings the unit is the "
        "setting; per query, each query's values are averaged over the settings first (the query is the unit). "
        "p_holm: Holm over every test of this table.",
        "",
        markdown_table(agreement, ["aria", "truth", "n", "spearman", "spearman_p", "spearman_p_holm", "kendall",
                                   "kendall_p"]),
        "",
        *(["## Runs not judged", "", *[f"- {s}" for s in skipped], ""] if skipped else []),
    ]
    (results / "README.md").write_text("\n".join(lines))


def abstention_markdown(table: pd.DataFrame, gates: pd.DataFrame, queries: pd.DataFrame, refused: Sequence[str],
                        command: str, description: pd.DataFrame | None = None) -> str:
    """The abstention page: per setting the rule and its rates on the evaluation half, LUMINA's gates before and
    after, and how the halves were drawn."""
    counts = queries.groupby(["kind", "half"]).size().unstack(fill_value=0)
    lines = ["# Abstention: is a query attributable at all?", "", f"Command: `{command}`", "",
             "Positives: near-copy queries (their sources measurably influence the model). Negatives: held-out and "
             "out-of-domain queries (no source in training). Each setting's rule (one signal, one threshold) is "
             "chosen and fitted on the calibration half, at most 5 % of its negatives attributable, and every rate "
             "below is measured on the evaluation half. Composition, production, sample and generated queries are "
             "reported apart (attributable rate), not as positives or negatives. Definitions: docs/abstention.md.", "",
             "Queries per kind and half: " + "; ".join(
                 f"{kind} {row.get('calibration', 0)}+{row.get('evaluation', 0)}" for kind, row in counts.iterrows()),
             "", "## Per method setting (evaluation half)", ""]
    other = [c for c in table.columns if c.startswith("attributable_") and c not in
             ("attributable_near_copy", "attributable_held_out", "attributable_out_of_domain")]
    lines.append(markdown_table(table, ["method", "setting", "signal", "threshold", "evaluation_auc",
                                        "recall_near_copy", "attributable_held_out", "attributable_out_of_domain",
                                        "false_share_negatives", *other]))
    if not gates.empty:
        lines += ["", "## LUMINA's gates: share given to a query without a source, before and after abstention", "",
                  "Before: the sources' rule (a query gets shares whenever a song passes the gate). After: shares "
                  "only when the channel's setting (lumina-P, lumina-M) finds the query attributable.", "",
                  markdown_table(gates, ["gate", "channel", "false_share_before", "false_share_after",
                                         "recall_before", "recall_after"])]
    if description is not None and not description.empty:
        lines += ["", "## The report's rule and the description's effect (LUMINA, evaluation half)", "",
                  "The attribution report abstains when a channel's `reference_z` (its top cosine against the "
                  "control tracks' top cosines) is below `method.abstain_z` (docs/abstention.md#the-report-rule). "
                  "That threshold, fitted here on the calibration half with each query's own description "
                  "(`report_threshold`), is then applied on the evaluation half to the signature extracted with "
                  "the query's own description and again with the empty one (a user who does not know the "
                  "prompt):", "",
                  markdown_table(description, ["setting", "report_threshold", "recall_own", "recall_empty",
                                               "false_share_own", "false_share_empty", "mean_reference_z_shift",
                                               "n_evaluation"])]
    if refused:
        lines += ["", "Runs not read: " + "; ".join(refused)]
    return "\n".join(lines) + "\n"


def write_abstention_report(table: pd.DataFrame, gates: pd.DataFrame, rocs: dict, queries: pd.DataFrame,
                            refused: Sequence[str], results: Path, provenance: Provenance,
                            description: pd.DataFrame | None = None) -> Path:
    """`abstention.csv` (settings, then gates, then the description's effect), `abstention.md`,
    `figures/abstention_roc.png` and `abstention.json` (`provenance`, stamped now) in `results`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results.mkdir(parents=True, exist_ok=True)
    parts = [table.assign(level="setting"), gates.assign(level="gate")]
    if description is not None and not description.empty:
        parts.append(description.assign(level="description"))
    combined = pd.concat(parts, ignore_index=True)
    combined.insert(0, "level", combined.pop("level"))
    with files.atomic_path(results / "abstention.csv") as tmp:
        combined.assign(command=provenance.command).to_csv(tmp, index=False)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for name, curve in sorted(rocs.items(), key=lambda kv: -kv[1]["auc"]):
        ax.plot(curve["fpr"], curve["tpr"], drawstyle="steps-post", label=f"{name} (AUC {curve['auc']:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("negatives attributable (false-share rate)")
    ax.set_ylabel("near-copies attributable (recall)")
    ax.set_title("Abstention: each setting's chosen signal, evaluation half")
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    with files.atomic_path(results / "figures" / "abstention_roc.png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    files.write_text(results / "abstention.md",
                     abstention_markdown(table, gates, queries, refused, provenance.command, description))
    files.write_json(results / "abstention.json", provenance.restamped().record())
    return results / "abstention.md"


def write_replication_report(values: pd.DataFrame, spreads: pd.DataFrame, stability: pd.DataFrame,
                             overlap: pd.DataFrame, claims: pd.DataFrame, seeds: Sequence[int], results: Path,
                             command: str) -> Path:
    """`replication.csv` (per-seed values, then the spread of each number), `replication.md` and the results
    page `README.md` (findings with the seeds they hold in) in `results`."""
    results.mkdir(parents=True, exist_ok=True)
    combined = pd.concat([values.assign(level="seed"), spreads.assign(level="spread")], ignore_index=True)
    combined.insert(0, "level", combined.pop("level"))
    combined.assign(command=command).to_csv(results / "replication.csv", index=False)
    n = len(seeds)
    per_setting = overlap.groupby("setting")["overlap"].mean().reset_index() if not overlap.empty else overlap
    main_numbers = spreads[spreads["quantity"].isin(["lds", "rho1", "rho2_5", "concentration",
                                                     "inter_query_corr", "near_copy_hit_at_10", "top1_effect"])]
    lines = [
        "# Replication across model seeds", "", f"Command: `{command}`; seeds {', '.join(map(str, seeds))}.", "",
        "Each seed retrains everything random in the model's life (codec fit, initialisation, batch order, "
        "subset draws, generated queries) on the same corpus, with each method's own seeds fixed "
        "(docs/replication.md). `identical` marks numbers that every seed gave exactly: nothing random reached "
        "them. Every per-seed value is in `replication.csv`.", "",
        "## Headline numbers per setting: mean, spread (sd over seeds) and range", "",
        markdown_table(main_numbers, ["quantity", "method", "setting", "n_seeds", "mean", "sd", "min", "max",
                                      "identical"]),
        "", "## Stability of the method rankings (Kendall τ between seeds, over settings)", "",
        markdown_table(stability, ["quantity", "seed_a", "seed_b", "n_settings", "kendall", "kendall_p"]),
        "", "`lds`: the ranking by LDS; `rank`: Aria's leaderboard rank.", "",
        "## Per query: overlap of the top-10 training tracks across seeds (mean over seed pairs, |A ∩ B| / 10)", "",
        markdown_table(per_setting, ["setting", "overlap"]) if not per_setting.empty else
        "(needs every seed's runs)",
        "", "## Planted effects and Aria-vs-LDS agreement per seed", "",
        markdown_table(spreads[spreads["quantity"].isin(["planted_effect", "planted_p_holm",
                                                         "aria_vs_lds_spearman"])],
                       ["quantity", "setting", "n_seeds", "mean", "sd", "min", "max"]),
    ]
    (results / "replication.md").write_text("\n".join(lines) + "\n")
    readme = [
        "# Results", "",
        f"Every table here is made by `make results` from the committed code: the whole study for each of {n} "
        f"model seed{'s' if n != 1 else ''} (`scripts/study.sh SEED`, tables in `seed<N>/`), then "
        "`python -m experiments.replication` (this page, `replication.{md,csv}`). Per seed: `leaderboard.md` "
        "(Aria), `README.md` (LDS, planted retrieval, the top-ranked in-vs-out check, Aria versus the truth), "
        "`planted_influence.md`, `abstention.md`. `symbolic/` is the symbolic setting, where the Aria paper's "
        "Table 1 is put to the test (its own README; docs/symbolic.md).",
        *(["", f"**Not yet replicated**: {n} of the {MIN_SEEDS} seeds a replicated finding needs have been run; "
               f"a finding that holds in {n} of {n} is a finding about "
               f"{'that model instance' if n == 1 else 'those model instances'}."] if n < MIN_SEEDS else []),
        "", "## Findings, and in how many seeds each holds", "",
        *[f"- {r.finding}: **holds in {r.holds} of {r.assessed} seeds**"
          + (f" (seeds {r.seeds_holding})" if r.holds else "") for r in claims.itertuples()],
        "", "Spread of every number across seeds: `replication.md`.", "",
    ]
    (results / "README.md").write_text("\n".join(readme))
    return results / "replication.md"


def _by_lds(lds: dict[str, float], names: dict[str, str]) -> str:
    """The methods by decreasing LDS, e.g. 'TRAK > TracIn > Grad-Cos > GradDot' (names: method → label)."""
    return " > ".join(names[m] for m in sorted(lds, key=lambda m: -lds[m]))


def symbolic_tables(table: pd.DataFrame, effects: pd.DataFrame, agreement: pd.DataFrame, targets: pd.DataFrame,
                    command: str,
                    n_models: int, paper_methods: dict[str, str], paper_lds: dict[str, float],
                    paper_names: dict[str, str], channel_names: Sequence[str]) -> str:
    """`results/symbolic/tables.md`: every setting judged, the planted effects, each diagnostic against LDS, the
    paper's four-method LDS beside ours, and the pre-registered criterion's two verdicts computed from them
    (docs/symbolic.md#ground-truth). targets: one row per LDS target with `own_effect_to_spread`'s columns;
    paper_methods: method → its default setting; paper_lds: method → the paper's LDS; paper_names: method → the
    paper's name for it."""
    labels = paper_names
    judged = table.sort_values("lds", ascending=False).assign(collapsed=table["collapsed"].map({True: "yes",
                                                                                              False: ""}))
    settings = ["method", "setting", "lds", "lds_ci_low", "lds_ci_high", "lds_window", "lds_window_ci_low",
                "lds_window_ci_high", *[c for c in ("lds_generated",) if c in judged],
                *[f"{kind}_hit_at_10" for kind in ("near_copy", "composition") if f"{kind}_hit_at_10" in judged],
                *RELIABILITY, "collapsed", *[f"aria_{c}_z" for c in channel_names]]
    planted = ["group", "n_tracks", "n_models", "effect", "se", "t", "dof", "p", "p_holm", "label"]
    tests = ["diagnostic", "truth", "over", "n", "kendall", "kendall_p", "kendall_p_holm", "spearman", "spearman_p"]
    chosen = {m: table[(table["method"] == m) & (table["setting"] == s)] for m, s in paper_methods.items()}
    ours = {truth: {m: float(rows[truth].iloc[0]) for m, rows in chosen.items() if len(rows)}
            for truth in ("lds", "lds_window")}
    four = agreement[(agreement["over"] == "four methods") & (agreement["truth"] == "lds")]
    reproduced = four.loc[np.isclose(four["kendall"], 1.0), "diagnostic"].tolist()
    tracking = agreement[(agreement["over"] != "four methods") & (agreement["kendall"] > 0)
                         & (agreement["kendall_p"] < 0.05)]
    lines = [
        "# The symbolic setting: tables", "",
        f"Command: `{command}`. {n_models} half-subset models; made by `python -m experiments.symbolic_truth` from "
        "the committed subset records and the method runs (docs/symbolic.md#ground-truth). The verdict in words: "
        "`README.md` beside this file.", "",
        "## Every setting judged", "",
        "LDS: the query as the unit, 95 % percentile bootstrap over queries; last token (the benchmark's target) "
        "and whole window. Reliability diagnostics as Aria computes them; channel z̄ at K = 10 from the "
        "symbolic leaderboard.", "",
        markdown_table(judged, settings), "",
        "## How much each LDS target can show", "",
        "Each training window's loss when it is in a subset model minus when it is out (own effect, nats), its "
        "standard deviation across the models (spread), and their ratio (`groundtruth.lds.own_effect_to_spread`): "
        "the closer the ratio is to 0, the less any attribution can agree with that target.", "",
        markdown_table(targets, ["target", "own_effect", "spread", "ratio"]), "",
        "## Planted sources, in vs out", "",
        "Per query, the slope of its loss on whether its source was in the subset model's training windows; "
        "one-sample t over the queries of a kind, Holm over the kinds.", "",
        markdown_table(effects[[c for c in planted if c in effects]], [c for c in planted if c in effects], 4), "",
        "## Each diagnostic against LDS", "",
        "Each reliability diagnostic oriented as Aria reads it (positive τ: agreement with Aria's reading); "
        "collapsed settings left out; Kendall's τ with scipy's two-sided p (exact over the four methods); Holm "
        "within each family of one truth and one set of settings.", "",
        markdown_table(agreement, tests), "",
        "## The paper's four methods", "",
        "| | " + " | ".join(labels[m] for m in paper_methods) + " | order |",
        "|---|" + "---|" * (len(paper_methods) + 1),
        "| Aria paper, Table 1 (LDS) | " + " | ".join(cell(paper_lds[m]) for m in paper_methods)
        + f" | {_by_lds(paper_lds, labels)} |",
    ]
    for truth, name in (("lds", "last-token LDS"), ("lds_window", "whole-window LDS")):
        if len(ours[truth]) == len(paper_methods):
            lines.append(f"| here, {name} | " + " | ".join(cell(ours[truth][m]) for m in paper_methods)
                         + f" | {_by_lds(ours[truth], labels)} |")
    lines += [
        "", "## The pre-registered criterion, computed", "",
        "- Diagnostics that order the four methods exactly as the last-token LDS does (τ = 1): "
        + (", ".join(reproduced) if reproduced else "none") + ".",
        "- Diagnostics and channels that track LDS over the settings (τ > 0, raw p < 0.05; Holm p in brackets): "
        + ("; ".join(f"{r.diagnostic} vs {r.truth} over {r.over} (τ {r.kendall:.2f}, p {r.kendall_p:.2g} "
                     f"[{r.kendall_p_holm:.2g}])" for r in tracking.itertuples()) if len(tracking) else "none")
        + ".", "",
    ]
    return "\n".join(lines)
