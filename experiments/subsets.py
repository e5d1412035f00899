"""Subset models for ground truth (docs/ground_truth.md#subset-retraining): M generators, each trained with the
full model's recipe on a random fraction of the training tracks, and every track's teacher-forcing loss under
each of them.

    python -m experiments.subsets                                 # M = 32 half-subsets, 2 worker processes
    python -m experiments.subsets ground_truth.n_models=8         # the first 8 of the same 32

Subset m is drawn from its own generator seeded with (subset_seed, m), so growing M keeps the models already
trained; an interrupted run picks up where it stopped. The study itself: `groundtruth.study`.
"""

from __future__ import annotations

import time

import hydra
from omegaconf import DictConfig, OmegaConf

from groundtruth.study import open_study, timing_summary
from lumina.configure import configure_runtime, load_corpus
from lumina.runs.cli import one_line_errors
from lumina.runs.device import placement_from


@hydra.main(config_path="../conf", config_name="ground_truth", version_base="1.3")
@one_line_errors("experiments.subsets")
def main(cfg: DictConfig) -> None:
    configure_runtime(cfg)
    manifest = load_corpus(cfg)
    started = time.perf_counter()
    study = open_study(manifest, OmegaConf.to_container(cfg.model, resolve=True), cfg.paths.cache, cfg.ground_truth,
                       progress=bool(cfg.progress), placement=placement_from(cfg))
    summary = timing_summary(study)
    print(f"\n{study.n_models} subset models in {study.folder} "
          f"({summary['mean_train_seconds']:.0f} s of training per model on {summary['threads_per_model']} thread(s); "
          f"this call took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
