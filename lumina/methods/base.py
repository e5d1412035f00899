"""What a method receives (`RunContext`) and what it may return besides score matrices (`NotConfigured`).

A method is a function `run(ctx: RunContext) -> list[ScoreMatrix | NotConfigured]` (`lumina.methods`); the
context is built by `lumina.configure.build_context` and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from lumina.data.manifest import Manifest
from lumina.methods.options import MethodOptions
from lumina.models.protocol import Generator, GeneratorLoader
from lumina.runs.errors import ParameterError
from lumina.runs.provenance import Provenance, stamp

if TYPE_CHECKING:
    from lumina.runs.layout import Layout


@dataclass
class NotConfigured:
    """A method setting that cannot run here (e.g. no local checkpoint): reported, never faked."""

    method: str
    setting: str
    reason: str


@dataclass
class RunContext:
    """Everything a method needs: the corpus, its typed options, where to cache, and the generator on demand.

    options: the method's options dataclass (`lumina.methods.options`).
    layout: the experiment's output layout (the cache root, where runs go).
    cache_dir: the method's own folder for resumable intermediate results (`layout.method_cache(name)`).
    load_generator: builds or loads the generator under attribution (trained and cached on first use);
        `load_generator(train_ids)` gives the same recipe trained on a subset of training tracks (retrainable
        recipes only; a pretrained checkpoint raises ParameterError).
    """

    manifest: Manifest
    options: MethodOptions
    layout: Layout
    cache_dir: Path
    load_generator: GeneratorLoader
    seed: int = 0
    threads: int = 2
    progress: bool = True
    provenance: Provenance = field(default_factory=lambda: stamp())
    """The run's provenance (context, configuration, upstream hashes), stamped again when each matrix is written."""

    @cached_property
    def generator(self) -> Generator:
        """The generator under attribution, loaded once; refuses a corpus whose generated queries another model
        sampled (they would be attributed to a model that did not make them)."""
        generator = self.load_generator()
        sampled_by = self.manifest.generated.get("model_identity")
        if sampled_by and sampled_by != generator.identity():
            raise ParameterError(
                f"{self.manifest.path}: its generated queries were sampled by model {sampled_by}, the model under "
                f"attribution is {generator.identity()}; run `python -m experiments.generate` with the same "
                "overrides first")
        return generator
