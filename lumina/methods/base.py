"""What a method receives (`RunContext`) and what it may return besides score matrices (`NotConfigured`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from lumina.manifest import Manifest


@dataclass
class NotConfigured:
    """A method setting that cannot run here (e.g. no local checkpoint): reported, never faked."""

    method: str
    setting: str
    reason: str


@dataclass
class RunContext:
    """Everything a method needs: the corpus, its options, where to cache, and the generator on demand.

    options: the method's config (`method.*` in Hydra) as a plain dict.
    cache_dir: a folder of the method's own for resumable intermediate results.
    load_generator: builds or loads the generator under attribution (trained and cached on first use);
        `load_generator(train_ids)` gives the same recipe trained on a subset of training tracks (embedded
        default only; a pretrained checkpoint raises ParameterError).
    """

    manifest: Manifest
    options: dict[str, Any]
    cache_dir: Path
    load_generator: Callable[..., Any]
    seed: int = 0
    threads: int = 2
    provenance: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def generator(self) -> Any:
        """The generator under attribution (`lumina.generator.Generator`), loaded once."""
        return self.load_generator()
