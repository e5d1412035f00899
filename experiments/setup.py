"""What every Hydra application of the harness does first: threads, seeds, the corpus, the generator."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from lumina.errors import ParameterError
from lumina.generator.embedded import EmbeddedModelConfig, train_embedded
from lumina.generator.model import Generator
from lumina.manifest import Manifest


def configure_runtime(cfg: DictConfig) -> None:
    """Fixed thread count and seeds, deterministic kernels: same input and seed → same bits on CPU."""
    torch.set_num_threads(int(cfg.threads))
    torch.use_deterministic_algorithms(True)
    random.seed(int(cfg.seed))
    torch.manual_seed(int(cfg.seed))
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(cfg.paths.cache) / "numba"))


def load_corpus(cfg: DictConfig) -> Manifest:
    """Build or reuse the corpus named by the `data` group."""
    from lumina.corpus import build_corpus

    return build_corpus(cfg.data, cfg.paths.cache, threads=int(cfg.threads), progress=bool(cfg.progress))


def generator_loader(cfg: DictConfig, manifest: Manifest) -> Callable[..., Generator]:
    """A function `load(train_ids=None)` that builds (or loads from cache) the generator of the `model`
    group, trained on `train_ids` (default: every training track)."""
    model = OmegaConf.to_container(cfg.model, resolve=True)

    def load(train_ids: Sequence[str] | None = None) -> Generator:
        if model["kind"] == "embedded":
            return train_embedded(
                manifest, EmbeddedModelConfig.from_dict(model), cfg.paths.cache, train_ids=train_ids,
                name=model["name"], progress=bool(cfg.progress),
            )
        if model["kind"] == "pretrained":
            if train_ids is not None:
                raise ParameterError(
                    f"{model['path']}: a pretrained checkpoint cannot be retrained on a subset here; "
                    "retraining experiments need the embedded default (model=embedded)"
                )
            return Generator.load(model["path"])
        raise ParameterError(f"model.kind must be 'embedded' or 'pretrained', got {model['kind']!r}")

    return load
