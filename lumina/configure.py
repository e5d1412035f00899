"""What every application does first, from its Hydra configuration: runtime settings (`configure_runtime`), the
corpus (`load_corpus`: the built catalogue plus the generated-queries folder it names), the generator
(`generator_loader`, through the one builder `lumina.models.builder.model_loader`), the experiment's layout
(`layout`, paths from `lumina.runs.layout`) and the `RunContext` a method receives (`build_context`).

Loading a corpus never loads, trains or samples a generator: generated queries are a stage of their own
(`python -m experiments.generate`, `lumina.models.generate`), and the corpus reads the folder it wrote.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from execution import ParallelOptions, configure
from lumina.data.corpus import build_corpus, built_corpus
from lumina.data.generated import include_generated
from lumina.data.manifest import Manifest
from lumina.methods.base import RunContext
from lumina.methods.options import MethodOptions, options_for
from lumina.models.builder import model_loader
from lumina.models.protocol import GeneratorLoader
from lumina.runs.device import configure_device, placement_from
from lumina.runs.errors import ParameterError
from lumina.runs.layout import Layout, experiment_name, numba_dir
from lumina.runs.provenance import Provenance, relative, stamp


def configure_runtime(cfg: DictConfig) -> None:
    """Fixed thread count and seeds, deterministic kernels: same input and seed → same bits on CPU."""
    torch.set_num_threads(int(cfg.threads))
    torch.use_deterministic_algorithms(True)
    random.seed(int(cfg.seed))
    torch.manual_seed(int(cfg.seed))
    os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_dir(cfg.paths.cache)))
    configure_parallel(cfg)
    configure_device(placement_from(cfg))


def configure_parallel(cfg: DictConfig) -> None:
    """The backend of every parallel stage, from the `parallel` group (a local Ray cluster gets `threads` CPUs)."""
    settings = OmegaConf.to_container(cfg.parallel, resolve=True) if "parallel" in cfg else {}
    try:
        configure(ParallelOptions(**{**settings, "cpus": settings.get("cpus") or int(cfg.threads)}))
    except (TypeError, ValueError) as err:
        raise ParameterError(f"parallel: {err} (see conf/parallel/ray.yaml)") from None


def base_corpus(cfg: DictConfig) -> Manifest:
    """The catalogue the `data` group builds (or reuses), without generated queries: what a generator is trained
    on and what the generated-queries stage samples from."""
    return build_corpus(OmegaConf.to_container(cfg.data, resolve=True), Path(cfg.paths.cache),
                        threads=int(cfg.threads), progress=bool(cfg.progress))


def load_corpus(cfg: DictConfig) -> Manifest:
    """The corpus of the `data` group with the generated queries of `data.generated_dir` (written by `python -m
    experiments.generate`; null: none). MIDI corpora read their generated windows while they are built."""
    return with_generated(cfg, base_corpus(cfg))


def with_generated(cfg: DictConfig, manifest: Manifest) -> Manifest:
    """`manifest` with the generated queries `data.generated_dir` names (audio corpora; MIDI corpora include
    theirs while they are built)."""
    folder = cfg.data.get("generated_dir")
    if not folder or cfg.data.get("builder") == "symbolic":
        return manifest
    return include_generated(manifest, Path(folder))


def layout(cfg: DictConfig, manifest: Manifest) -> Layout:
    """The experiment's layout under `paths.cache` and `paths.runs` (`lumina.runs.layout.experiment_name`)."""
    experiment = experiment_name(str(cfg.data.name), manifest.catalogue_key, str(cfg.model.name), int(cfg.seed),
                                 manifest.generated.get("key", ""))
    return Layout(Path(cfg.paths.cache), Path(cfg.paths.runs), experiment, placement_from(cfg))


def experiment_runs(cfg: DictConfig) -> Path:
    """`<runs>/<experiment>` of the configured corpus and model, from the keys of the built corpus and of its
    generated queries: no corpus is built and no generator loaded."""
    manifest = built_corpus(OmegaConf.to_container(cfg.data, resolve=True), Path(cfg.paths.cache))
    return layout(cfg, with_generated(cfg, manifest)).runs


def generator_loader(cfg: DictConfig, manifest: Manifest) -> GeneratorLoader:
    """`load(train_ids=None)`: the generator of the `model` group, built or loaded from the cache; for a
    retrainable recipe, the same recipe trained on `train_ids` (default: every training track)."""
    return model_loader(OmegaConf.to_container(cfg.model, resolve=True), manifest, Path(cfg.paths.cache),
                        progress=bool(cfg.progress), placement=placement_from(cfg))


def build_context(cfg: DictConfig, manifest: Manifest | None = None) -> RunContext:
    """The RunContext of `cfg.method` on the configured corpus and generator (the corpus is built when not
    given)."""
    if "method" not in cfg:
        from lumina.methods import METHODS

        raise ParameterError(f"choose a method with +method=NAME (registered: {', '.join(sorted(METHODS))})")
    manifest = load_corpus(cfg) if manifest is None else manifest
    options = options_for(str(cfg.method.name), OmegaConf.to_container(cfg.method, resolve=True))
    return method_context(
        manifest, options, layout(cfg, manifest), generator_loader(cfg, manifest), seed=int(cfg.seed),
        threads=int(cfg.threads), progress=bool(cfg.progress),
        data=OmegaConf.to_container(cfg.data, resolve=True), model=OmegaConf.to_container(cfg.model, resolve=True),
        placement=placement_from(cfg).record(),
    )


def method_context(manifest: Manifest, options: MethodOptions | Mapping[str, Any], where: Layout,
                   load_generator: GeneratorLoader, *, seed: int = 0, threads: int = 2, progress: bool = True,
                   **recorded: Any) -> RunContext:
    """A RunContext from its parts (what `build_context` does after reading the config; tests and benchmarks
    call it directly). `options` may be a plain mapping of the method's options; `recorded` goes into the
    provenance's context; the method's options are its configuration."""
    if not isinstance(options, MethodOptions):
        options = options_for(str(options["name"]), options)
    return RunContext(
        manifest=manifest,
        options=options,
        layout=where,
        cache_dir=where.method_cache(options.name),
        load_generator=load_generator,
        seed=seed,
        threads=threads,
        progress=progress,
        provenance=run_provenance(manifest, where, options, seed=seed, threads=threads, **recorded),
    )


def run_provenance(manifest: Manifest, where: Layout, options: MethodOptions, **recorded: Any) -> Provenance:
    """What every run of this experiment records (stamped again with time and machine when written): the study
    key, the manifest file and its hash, the catalogue key, the generated queries' key and model, `recorded`."""
    generated = manifest.generated
    return stamp(
        config=options.as_dict(),
        upstream={"manifest": manifest.sha256(), "catalogue": manifest.catalogue_key,
                  **({"generated": generated["key"]} if generated else {})},
        study=where.experiment,
        manifest=relative(manifest.path),
        manifest_sha256=manifest.sha256(),
        catalogue_key=manifest.catalogue_key,
        generated_key=generated.get("key", ""),
        **recorded,
    )
