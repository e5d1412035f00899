"""The weights gradient methods visit: a copy of the trainable weights, restoring them after a block that
changes them, loading a saved checkpoint, and dattri's task over a list of checkpoints. Generator-agnostic:
everything goes through the generator protocol (`lumina.models.protocol.Generator`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from dattri.task import AttributionTask
from torch import nn
from torch.func import functional_call

from lumina.models.protocol import Generator
from lumina.models.training import checkpoint_weights
from lumina.runs.errors import ParameterError


def example_loss(module: nn.Module, fields: Sequence[str] = ()) -> Callable[..., torch.Tensor]:
    """dattri's `loss_func(params, data)`: the loss of one unbatched example under the parameters `params`,
    computed by the generator's loss module. `data` is a batch dict without its first axis, or (as dattri's
    own attributors pass it) a tuple of its tensors in the order `fields`."""

    def loss_func(params: dict[str, torch.Tensor], data: dict[str, torch.Tensor] | tuple) -> torch.Tensor:
        named = data if isinstance(data, dict) else dict(zip(fields, data, strict=True))
        return functional_call(module, params, (), {k: v.unsqueeze(0) for k, v in named.items()})[0]

    return loss_func


def load_weights(module: nn.Module, checkpoint: dict[str, torch.Tensor] | str | Path) -> nn.Module:
    """dattri's `checkpoints_load_func`: trainable weights (a state dict, or a checkpoint folder holding
    `lm.safetensors`) loaded into the loss module in place."""
    state = checkpoint_weights(checkpoint) if isinstance(checkpoint, (str, Path)) else checkpoint
    missing = set(state) - set(dict(module.named_parameters()))
    if missing:
        raise ParameterError(f"checkpoint holds parameters the generator lacks: {sorted(missing)[:3]}")
    module.load_state_dict(state, strict=False)
    return module.eval()


def make_task(module: nn.Module, checkpoints: Sequence[dict | str | Path], fields: Sequence[str]) -> AttributionTask:
    """dattri's task: the per-example loss over `checkpoints` (loaded into `module` in place), for data loaders
    that yield tuples of the batch tensors in the order `fields` (`lumina.methods.baselines.items.loader`)."""
    return AttributionTask(loss_func=example_loss(module, fields), model=module, checkpoints=list(checkpoints),
                           checkpoints_load_func=load_weights)


def weights_copy(generator: Generator) -> dict[str, torch.Tensor]:
    """A copy of the trainable weights (the state to restore after visiting other checkpoints)."""
    return {n: p.detach().clone() for n, p in generator.trainable_parameters().items()}


def put_back(generator: Generator, state: dict[str, torch.Tensor]) -> None:
    """Copy `state` into the generator's trainable weights in place."""
    with torch.no_grad():
        for name, param in generator.trainable_parameters().items():
            param.copy_(state[name])


@contextmanager
def restored(generator: Generator) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block the trainable weights may change (checkpoints, unlearning); they are put back after."""
    state = weights_copy(generator)
    try:
        yield state
    finally:
        put_back(generator, state)


def parameter_count(generator: Generator, names: Sequence[str]) -> int:
    params = generator.trainable_parameters()
    return sum(params[n].numel() for n in names)
