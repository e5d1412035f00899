"""Ground truth on the embedded default (docs/ground_truth.md#ground-truth-definitions): every method run judged
against subset retraining.

    python -m experiments.ground_truth                            # M = 32 subset models, every run found
    python -m experiments.ground_truth ground_truth.n_models=8    # the first 8 subset models only

Trains the subset models that are missing, measures the in-vs-out effect of the planted sources, then for
every `scores.h5` under `ground_truth.runs`: LDS with a bootstrap interval over queries, hit@K / MRR /
precision@K of the planted sources per query kind with their chance levels, Aria's reliability diagnostics
of the raw matrix and, when the leaderboard has been run, its homogeneity z per channel. Then: whether
LUMINA's Channel P finds composition sources and Channel M production sources better than chance and than
the other channel; and whether Aria's diagnostics rank the settings as LDS does. The library: `groundtruth`.
Writes `ground_truth.csv`, `ground_truth_aria.csv`, `ground_truth_channels.csv`, `planted_influence.{md,csv}`
and `README.md` into `ground_truth.results`, each with this command.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import hydra
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from groundtruth.agreement import aria_vs_truth
from groundtruth.judge import judge_runs, lumina_channels
from groundtruth.planted import chance_levels, planted_effects
from groundtruth.study import judged_study
from groundtruth.tables import write_influence_report, write_results
from lumina.configure import configure_runtime, experiment_runs, layout, load_corpus
from lumina.runs.cli import one_line_errors
from lumina.runs.device import placement_from
from lumina.runs.provenance import command_line

CHANNEL_NAMES = ("rhythm", "harmony", "timbre")
"""Aria's evidence channels whose homogeneity z is compared with the truth."""


def ground_truth(cfg: DictConfig, command: str, channel_names: Sequence[str] = CHANNEL_NAMES) -> pd.DataFrame:
    """Everything `python -m experiments.ground_truth` does; returns the ground-truth table."""
    gt = cfg.ground_truth
    k, seed = int(gt.k), int(gt.seed)
    manifest = load_corpus(cfg)
    study = judged_study(manifest, OmegaConf.to_container(cfg.model, resolve=True), gt, placement=placement_from(cfg))
    effects, per_query_effects = planted_effects(study, manifest, seed=seed)
    write_influence_report(effects, per_query_effects, study, gt.results, command)
    table, per_query, skipped = judge_runs(
        gt.runs or layout(cfg, manifest).runs, study, manifest, k=k, n_bootstrap=int(gt.n_bootstrap),
        confidence=float(gt.confidence), seed=seed,
        collapse_rho1=float(cfg.aria.collapse_rho1), collapse_concentration=float(cfg.aria.collapse_concentration),
        headline_k=int(cfg.aria.headline_k), leaderboard=gt.leaderboard, channel_names=channel_names,
        progress=bool(cfg.progress),
    )
    channels = lumina_channels(per_query, len(study.train_ids), k=k, seed=seed)
    agreement = aria_vs_truth(table, per_query, k, channel_names)
    write_results(gt.results, command, study, table, effects, channels, agreement,
                  chance_levels(manifest, len(study.train_ids), k), k, skipped, channel_names,
                  catalogue_key=manifest.catalogue_key)
    per_query.assign(command=command).to_csv(Path(gt.results) / "ground_truth_queries.csv", index=False)
    return table


@hydra.main(config_path="../conf", config_name="ground_truth", version_base="1.3")
@one_line_errors("experiments.ground_truth")
def main(cfg: DictConfig) -> None:
    configure_runtime(cfg)
    table = ground_truth(cfg, command_line("experiments.ground_truth"))
    shown = [c for c in table.columns if c in ("method", "setting", "lds", "lds_ci_low", "lds_ci_high")
             or c.endswith(f"hit_at_{int(cfg.ground_truth.k)}")]
    print(table[shown].to_string(index=False) if len(table) else "no method runs found under "
          f"{cfg.ground_truth.runs or experiment_runs(cfg)}")
    print(f"written to {cfg.ground_truth.results}/ground_truth.csv and README.md")


if __name__ == "__main__":
    main()
