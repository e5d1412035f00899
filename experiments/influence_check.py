"""Do planted sources really influence their queries? The in-vs-out effect measured on the subset models.

    python -m experiments.influence_check                          # the M = 32 study of conf/ground_truth.yaml
    python -m experiments.influence_check ground_truth.n_models=8  # its first 8 models

For each query kind, a query's loss under each subset model is regressed on the fraction of its planted
sources in that model's training subset, with query and model fixed effects (`groundtruth.planted`), beside
a sanity check (training tracks on their own presence) and a placebo. Trains the subset models that are
missing first. Writes `planted_influence.{md,csv}` into `ground_truth.results`, with the command.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from groundtruth.planted import planted_effects
from groundtruth.study import judged_study
from groundtruth.tables import write_influence_report
from lumina.configure import configure_runtime, load_corpus
from lumina.runs.cli import one_line_errors
from lumina.runs.device import placement_from
from lumina.runs.provenance import command_line


@hydra.main(config_path="../conf", config_name="ground_truth", version_base="1.3")
@one_line_errors("experiments.influence_check")
def main(cfg: DictConfig) -> None:
    configure_runtime(cfg)
    manifest = load_corpus(cfg)
    study = judged_study(manifest, OmegaConf.to_container(cfg.model, resolve=True), cfg.ground_truth,
                         placement=placement_from(cfg))
    groups, queries = planted_effects(study, manifest, seed=int(cfg.ground_truth.seed))
    path = write_influence_report(groups, queries, study, cfg.ground_truth.results,
                                  command_line("experiments.influence_check"))
    print(groups[["group", "n_tracks", "n_models", "effect", "se", "t"]].to_string(index=False))
    print(f"written to {path} and planted_influence.csv")


if __name__ == "__main__":
    main()
