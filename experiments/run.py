"""Run one attribution method on the configured corpus and generator and write its score matrices.

    python -m experiments.run +method=lumina            # the embedded default
    python -m experiments.run +method=lumina method.mode=jl data=folder data.path=/my/catalogue

Each setting the method produces goes to `<paths.runs>/<method>/<setting>/` as `scores.h5` + `run.json`
(docs/formats.md); a setting that cannot run here (no checkpoint configured) gets a `run.json` that says so.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.setup import configure_runtime, generator_loader, load_corpus
from lumina.methods import METHODS, NotConfigured, RunContext, get_method
from lumina.scores import ScoreMatrix, provenance, write_run


def run(cfg: DictConfig) -> list[Path]:
    """Run `cfg.method` and write its artefacts; returns the run folders."""
    if "method" not in cfg:
        sys.exit(f"choose a method with +method=NAME (registered: {', '.join(sorted(METHODS))})")
    configure_runtime(cfg)
    name = cfg.method.name
    method = get_method(name)
    manifest = load_corpus(cfg)
    options = OmegaConf.to_container(cfg.method, resolve=True)
    ctx = RunContext(
        manifest=manifest,
        options=options,
        cache_dir=Path(cfg.paths.cache) / "methods" / f"{cfg.data.name}-{cfg.model.name}" / name,
        load_generator=generator_loader(cfg, manifest),
        seed=int(cfg.seed),
        threads=int(cfg.threads),
        provenance=provenance(
            manifest=str((manifest.root / "manifest.csv").resolve()),
            manifest_sha256=manifest.sha256(),
            data=OmegaConf.to_container(cfg.data, resolve=True),
            model=OmegaConf.to_container(cfg.model, resolve=True),
            seed=int(cfg.seed),
            threads=int(cfg.threads),
        ),
    )
    started = time.perf_counter()
    results = method(ctx)
    seconds = round(time.perf_counter() - started, 2)
    folders = []
    for result in results:
        folder = Path(cfg.paths.runs) / name / result.setting
        if isinstance(result, NotConfigured):
            write_run(folder, {"method": name, "setting": result.setting, "status": "not configured",
                               "reason": result.reason, "provenance": ctx.provenance})
        else:
            assert isinstance(result, ScoreMatrix)
            result.provenance = {**ctx.provenance, **result.provenance}
            write_run(folder, {"method": name, "setting": result.setting, "seconds": seconds,
                               "provenance": result.provenance}, result)
        folders.append(folder)
    print(f"\n{name}: {len(folders)} setting(s) written")
    for folder in folders:
        print(f"  {folder}")
    return folders


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
