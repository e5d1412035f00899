"""What every application does first, in one place: runtime settings, the corpus, the generator, the output
layout, and the `RunContext` a method receives.

The layout of `outputs/` is owned here and nowhere else (docs/formats.md#output-layout):

    <cache>/corpus/…                                  corpora (keyed by their builders)
    <cache>/codes/…, <cache>/codecs/…, <cache>/models/…  the generator's caches (keyed by what they are fitted on)
    <cache>/methods/<experiment>/<method>/             a method's resumable intermediate results
    <runs>/<experiment>/<method>/<setting>/           score matrices and run records

`<experiment>` is `<data.name>-<catalogue key>-<model.name>`: two catalogues with different content never
share a folder, whatever their names.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from execution import ParallelOptions, configure
from lumina.data.manifest import Manifest
from lumina.methods.base import RunContext
from lumina.methods.options import MethodOptions, options_for
from lumina.models.architectures import build_architecture
from lumina.models.codes import encode_tracks
from lumina.models.embedded_recipe import EmbeddedModelConfig, fit_codec, train_embedded
from lumina.models.musicgen import MusicgenGenerator
from lumina.models.protocol import Generator, GeneratorLoader
from lumina.runs.device import REFERENCE, Placement, configure_device, placement_from
from lumina.runs.errors import ParameterError
from lumina.runs.provenance import provenance


def configure_runtime(cfg: DictConfig) -> None:
    """Fixed thread count and seeds, deterministic kernels: same input and seed → same bits on CPU."""
    torch.set_num_threads(int(cfg.threads))
    torch.use_deterministic_algorithms(True)
    random.seed(int(cfg.seed))
    torch.manual_seed(int(cfg.seed))
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(cfg.paths.cache) / "numba"))
    configure_parallel(cfg)
    configure_device(placement_from(cfg))


def configure_parallel(cfg: DictConfig) -> None:
    """The backend of every parallel stage, from the `parallel` group (a local Ray cluster gets `threads` CPUs)."""
    settings = OmegaConf.to_container(cfg.parallel, resolve=True) if "parallel" in cfg else {}
    try:
        configure(ParallelOptions(**{**settings, "cpus": settings.get("cpus") or int(cfg.threads)}))
    except (TypeError, ValueError) as err:
        raise ParameterError(f"parallel: {err} (see conf/parallel/ray.yaml)") from None


def load_corpus(cfg: DictConfig) -> Manifest:
    """Build or reuse the corpus named by the `data` group, with the generated queries it asks for
    (`data.generated`: sampled from the configured generator, trained first if need be)."""
    from lumina.data.corpus import build_corpus
    from lumina.data.generated import add_generated_queries

    manifest = build_corpus(
        OmegaConf.to_container(cfg.data, resolve=True), Path(cfg.paths.cache),
        threads=int(cfg.threads), progress=bool(cfg.progress),
    )
    generated = cfg.data.get("generated")
    if generated is None or int(generated.count) == 0:
        return manifest
    return add_generated_queries(
        manifest, generator_loader(cfg, manifest)(), count=int(generated.count), seconds=float(generated.seconds),
        seed=int(generated.seed), temperature=float(generated.temperature), top_k=int(generated.top_k),
        target_rms_dbfs=float(cfg.data.get("target_rms_dbfs", -20.0)), progress=bool(cfg.progress),
    )


@dataclass(frozen=True)
class Layout:
    """Where one experiment (a corpus and a generator recipe) keeps its caches and runs."""

    cache: Path
    runs_root: Path
    experiment: str
    placement: Placement = REFERENCE

    @property
    def runs(self) -> Path:
        """`<runs>/<experiment>`: one folder per method and setting below it."""
        return self.runs_root / self.experiment

    def method_cache(self, method: str) -> Path:
        """`<cache>/methods/<experiment>/<method>`, the method's name tagged off CPU float32 (`Placement.tag`)."""
        return self.cache / "methods" / self.experiment / f"{method}{self.placement.tag}"

    def run_folder(self, method: str, setting: str) -> Path:
        return self.runs / method / setting


def layout(cfg: DictConfig, manifest: Manifest) -> Layout:
    """The experiment's layout under `paths.cache` and `paths.runs`."""
    experiment = f"{cfg.data.name}-{manifest.catalogue_key[:8]}-{cfg.model.name}-seed{int(cfg.seed)}"
    return Layout(Path(cfg.paths.cache), Path(cfg.paths.runs), experiment, placement_from(cfg))


def experiment_runs(cfg: DictConfig) -> Path:
    """`<runs>/<experiment>` of the configured corpus and model (the corpus is built or reused to key it)."""
    return layout(cfg, load_corpus(cfg)).runs


def generator_loader(cfg: DictConfig, manifest: Manifest) -> GeneratorLoader:
    """`load(train_ids=None)`: the generator of the `model` group, built or loaded from the cache; for the
    embedded recipe, the same recipe trained on `train_ids` (default: every training track)."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    return model_loader(model, manifest, Path(cfg.paths.cache), progress=bool(cfg.progress),
                        placement=placement_from(cfg))


def model_loader(model: Mapping[str, Any], manifest: Manifest, cache: Path, *, progress: bool = True,
                 placement: Placement = REFERENCE) -> GeneratorLoader:
    """`generator_loader` from a plain `model` config (what worker processes receive); the generator is
    trained and loaded on `placement` (the `device` and `dtype` settings)."""
    kind = model.get("kind")
    if kind == "musictransformer":
        return _MusicTransformerLoader(dict(model), manifest, Path(cache), progress, placement)
    if kind not in ("embedded", "pretrained", "architecture"):
        raise ParameterError(f"model.kind must be 'embedded', 'pretrained', 'architecture' or 'musictransformer', "
                             f"got {kind!r}")
    return _MusicgenLoader(dict(model), manifest, Path(cache), progress, placement)


@dataclass
class _Loader:
    """What every `GeneratorLoader` holds: the plain `model` config, the corpus, the cache root, whether to show
    progress, and where the generator is trained and loaded."""

    model: dict[str, Any]
    manifest: Manifest
    cache: Path
    progress: bool
    placement: Placement = REFERENCE


class _MusicgenLoader(_Loader):
    """The `GeneratorLoader` of the audio generators: the embedded recipe (retrainable) or a checkpoint folder."""

    def __call__(self, train_ids: Sequence[str] | None = None) -> Generator:
        if self.model["kind"] == "embedded":
            return train_embedded(self.manifest, EmbeddedModelConfig.from_dict(self.model), self.cache,
                                  train_ids=train_ids, name=str(self.model["name"]), progress=self.progress,
                                  placement=self.placement)
        if train_ids is not None:
            raise ParameterError(
                f"{self.model.get('path', self.model['name'])}: a pretrained checkpoint or a random architecture "
                "cannot be retrained on a subset here; retraining needs the embedded default (model=embedded)"
            )
        if self.model["kind"] == "architecture":
            return build_architecture(self.model, self.manifest.table["description"], placement=self.placement)
        return MusicgenGenerator.load(self.model["path"], self.placement)

    def prepare(self) -> None:
        if self.model["kind"] == "embedded":
            config = EmbeddedModelConfig.from_dict(self.model)
            codec = fit_codec(self.manifest, config.codec, self.cache, progress=self.progress)
            encode_tracks(codec, self.manifest, self.manifest.table["track_id"].tolist(), self.cache,
                          progress=self.progress)


class _MusicTransformerLoader(_Loader):
    """The `GeneratorLoader` of the symbolic generator (docs/symbolic.md#the-generator): its recipe (retrainable)
    when `path` is null, else a checkpoint directory (this harness's layout or dattri's benchmark layout)."""

    def __call__(self, train_ids: Sequence[str] | None = None) -> Generator:
        from lumina.models.music_transformer import MusicTransformerConfig, MusicTransformerGenerator
        from lumina.models.music_transformer_recipe import train_symbolic

        if not self.model.get("path"):
            return train_symbolic(self.manifest, MusicTransformerConfig.from_dict(self.model), self.cache,
                                  train_ids=train_ids, name=str(self.model["name"]), progress=self.progress,
                                  placement=self.placement)
        if train_ids is not None:
            raise ParameterError(f"{self.model['path']}: a loaded checkpoint cannot be retrained on a subset; "
                                 "retraining experiments need the recipe (model.path=null)")
        return MusicTransformerGenerator.load(self.model["path"], self.placement)

    def prepare(self) -> None:
        from lumina.data.midi import EventTokenizer

        encode_tracks(EventTokenizer(), self.manifest, self.manifest.table["track_id"].tolist(), self.cache,
                      progress=self.progress)


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
    provenance."""
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
        provenance=provenance(
            manifest=str(manifest.path.resolve()),
            manifest_sha256=manifest.sha256(),
            catalogue_key=manifest.catalogue_key,
            seed=seed,
            threads=threads,
            **recorded,
        ),
    )
