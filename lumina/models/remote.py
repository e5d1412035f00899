"""The generator under attribution in another process (a worker of `execution.parallel_map`): a picklable
handle (its class, saved folder and current trainable weights) and the generator it rebuilds, once per process.

Models do not pickle (transformers' weight-normalised modules refuse), so a worker loads the saved folder, which
must be on a path every worker reaches (docs/execution.md#shards), and copies in the weights the caller holds
(a training checkpoint being visited, for example).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lumina.models.protocol import Generator
from lumina.runs.device import REFERENCE, Placement, placement_of
from lumina.runs.errors import ParameterError


@dataclass(frozen=True)
class GeneratorHandle:
    """kind: the generator's class (with a `load(folder, placement)` class method); source: its saved folder;
    weights: its trainable weights by name at the time the handle was made (on the CPU); placement: the device
    and dtype it ran on, where the worker rebuilds it."""

    kind: type
    source: str
    weights: dict[str, torch.Tensor]
    placement: Placement = REFERENCE


def generator_handle(generator: Generator) -> GeneratorHandle:
    """A handle of `generator` at its current weights; ParameterError when it was never saved."""
    if not generator.source:
        raise ParameterError("a generator held only in memory cannot run in worker processes: save it first "
                             "(generator.save(folder)) or use the local backend (parallel=local)")
    weights = {n: p.detach().to(REFERENCE.torch_device).clone() for n, p in generator.trainable_parameters().items()}
    return GeneratorHandle(type(generator), str(generator.source), weights,
                           placement_of(generator.device, generator.dtype))


def rebuild(handle: GeneratorHandle) -> Generator:
    """The generator of a handle: its folder loaded onto the handle's placement, its weights copied in."""
    generator = handle.kind.load(handle.source, handle.placement)
    with torch.no_grad():
        for name, param in generator.trainable_parameters().items():
            param.copy_(handle.weights[name])
    return generator


_WORKER: Generator | None = None


def use(handle: GeneratorHandle) -> None:
    """A worker's initializer: rebuild the handle's generator for this process's later tasks."""
    global _WORKER
    _WORKER = rebuild(handle)


def worker_generator() -> Generator:
    """The generator `use` rebuilt in this process."""
    if _WORKER is None:
        raise ParameterError("no generator in this worker process (the map's initializer must be `use`)")
    return _WORKER
