"""Unlearning's self-influence check (docs/baselines.md#self-influence-check): unlearn a training segment and see where
it ranks itself.

    python -m experiments.self_influence                                   # the embedded default
    python -m experiments.self_influence self_influence.samples=16 method.steps=16

For each setting of `self_influence.settings` (target layers and silence mask, the unlearning source's
Table 1 choices) and each of `samples` training segments drawn with `seed`, the segment is unlearned as if it were
a query and every training segment is scored by its loss change; R(z_tar) is the unlearned segment's rank
among them (1 = it changed most). Writes `self_influence.{md,csv}` into `paths.results`, with the command;
each unlearning run is cached like the method's (an interrupted check resumes). The library:
`groundtruth.self_influence`.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from groundtruth.self_influence import run_check, summary, write_results
from lumina.configure import build_context, configure_runtime
from lumina.methods import gradient
from lumina.runs.cli import one_line_errors
from lumina.runs.provenance import command_line


@hydra.main(config_path="../conf", config_name="self_influence", version_base="1.3")
@one_line_errors("experiments.self_influence")
def main(cfg: DictConfig) -> None:
    configure_runtime(cfg)
    ctx = build_context(cfg)
    check = OmegaConf.to_container(cfg.self_influence, resolve=True)
    table = run_check(ctx, int(check["samples"]), int(check["seed"]),
                      [(s["target"], s["silence_mask"]) for s in check["settings"]])
    path = write_results(table, Path(cfg.paths.results), command_line("experiments.self_influence"),
                         gradient.unlearning_settings(ctx.options))
    print("\n" + summary(table).to_string(index=False) + f"\n\nwritten to {path}")


if __name__ == "__main__":
    main()
