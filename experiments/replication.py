"""Replication across model seeds: per-seed headline numbers, their spread, ranking stability, top-10 overlap and
the findings with the number of seeds each holds in.

    python -m experiments.replication                       # seeds 0 1 2 from results/seed<N>/
    python -m experiments.replication replication.seeds=[0,1]

Writes `replication.csv` (every per-seed value, then the spread per number), `replication.md` and the results
page `README.md` into `replication.results` (docs/replication.md).
"""

from __future__ import annotations

from pathlib import Path

import hydra
import pandas as pd
from omegaconf import DictConfig

from groundtruth.judge import find_matrices
from groundtruth.replication import (
    claims_by_seed,
    headline_values,
    ranking_stability,
    read_seed_tables,
    spread,
    top_overlap,
    top_tracks,
)
from groundtruth.tables import write_replication_report
from lumina.configure import experiment_runs
from lumina.runs.cli import one_line_errors
from lumina.runs.errors import LuminaError
from lumina.runs.provenance import command_line


def seed_runs(cfg: DictConfig, seed: int) -> Path | None:
    """The run folder of this corpus and model for `seed`, by key: the catalogue key and the key of that seed's
    generated queries (`data.generated_dir` at that seed); None when the seed has no runs here."""
    seeded = cfg.copy()
    seeded.seed = seed
    try:
        runs = experiment_runs(seeded)
    except LuminaError:  # no generated queries for this seed here: its runs cannot exist either
        return None
    return runs if runs.is_dir() else None


@hydra.main(config_path="../conf", config_name="replication", version_base="1.3")
@one_line_errors("experiments.replication")
def main(cfg: DictConfig) -> None:
    options = cfg.replication
    seeds = [int(s) for s in options.seeds]
    tables = read_seed_tables(Path(options.results), seeds)
    values = headline_values(tables)
    stability = pd.concat([ranking_stability(values, "lds"), ranking_stability(values, "rank")], ignore_index=True)
    tops: dict[str, dict[int, dict]] = {}
    for seed in seeds:
        runs = seed_runs(cfg, seed)
        for _, artefact in find_matrices(runs)[0] if runs else []:
            tops.setdefault(f"{artefact.method}/{artefact.setting}", {})[seed] = top_tracks(artefact, options.top_k)
    overlap = pd.concat([top_overlap(per_seed, options.top_k).assign(setting=name)
                         for name, per_seed in tops.items() if len(per_seed) == len(seeds)] or [pd.DataFrame()],
                        ignore_index=True)
    path = write_replication_report(values, spread(values), stability, overlap, claims_by_seed(tables), seeds,
                                    Path(options.results), command_line("experiments.replication"))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
