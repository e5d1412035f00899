"""Run one attribution method on the configured corpus and generator and write its score matrices.

    python -m experiments.run +method=lumina            # the embedded default
    python -m experiments.run +method=lumina method.mode=jl data=folder data.path=/my/catalogue

Each setting the method produces goes to `<runs>/<experiment>/<method>/<setting>/` as `scores.h5` + `run.json`
(docs/formats.md); a setting that cannot run here (no checkpoint configured) gets a `run.json` that says so.
"""

from __future__ import annotations

import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from lumina.configure import build_context, configure_runtime
from lumina.methods import get_method, write_results
from lumina.runs.cli import one_line_errors


def run(cfg: DictConfig) -> list[Path]:
    """Run `cfg.method` and write its artefacts; returns the run folders."""
    configure_runtime(cfg)
    ctx = build_context(cfg)
    started = time.perf_counter()
    results = get_method(ctx.options.name)(ctx)
    folders = write_results(results, ctx, seconds=round(time.perf_counter() - started, 2))
    print(f"\n{ctx.options.name}: {len(folders)} setting(s) written")
    for folder in folders:
        print(f"  {folder}")
    return folders


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@one_line_errors("experiments.run")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
