"""The generator seam: what an attribution method may ask of the generator under attribution.

Every method (LUMINA, the gradient baselines, the ground truth's retraining) talks to a generator only through
`Generator` below, never through a model's internals, so a second kind of generator (the symbolic
MusicTransformer, a real MusicGen checkpoint) plugs in by implementing it. `MusicgenGenerator`
(`lumina.models.musicgen`) is the audio implementation. The definitions the protocol relies on (teacher
forcing, the per-example loss, parameter groups, LUMINA's tensors) are written in docs/generator.md.

Shapes: a clip's tokens are (K, T) — K parallel token streams (codebooks; 1 for a single stream) over T
steps; a batch is a dict of tensors whose first axis is the example (what `collate` returns and
`loss_module()` reads).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

Batch = dict[str, torch.Tensor]
"""Collated examples: tensors with the example on the first axis, keyed as the generator's loss module reads."""


@dataclass(frozen=True)
class Item:
    """One scored unit (a training segment or a query): tokens (K, T), its text condition and, optionally,
    which of its T steps (bool (T,)) count in its loss."""

    tokens: np.ndarray
    text: str
    keep: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return int(self.tokens.shape[1])


@runtime_checkable
class ClipTokenizer(Protocol):
    """Turns a clip into tokens: `encode(clip)` → (K, T) at `frame_rate` token steps per second, from input at
    `sample_rate`; `identity()` hashes everything that determines the tokens (cache keys)."""

    sample_rate: int
    frame_rate: float
    num_codebooks: int

    def encode(self, clip: np.ndarray) -> np.ndarray: ...

    def identity(self) -> str: ...


@runtime_checkable
class LayerSplit(Protocol):
    """A generator's forward pass cut below one layer, for methods that change only the layers above it and
    re-evaluate many losses (unlearning): `lower(batch)` runs once, `losses(lower(batch), batch)` per change."""

    def lower(self, batch: Batch) -> Any:
        """What the layers from the cut upward receive for `batch` (the layers above are not run)."""

    def losses(self, lower: Any, batch: Batch) -> torch.Tensor:
        """Per-example loss (B,) from `lower` upward; equal to `loss_module()(**batch)`."""


@runtime_checkable
class Generator(Protocol):
    """What a method may ask of a generator.

    Identity and storage: `source` (the folder it was loaded from, '' when built in memory), `record` (its
    training record), `identity()` (a hash of everything that determines its outputs), `save(path)`.
    Placement: `device`, `dtype`. Tokens: `codec` (a `ClipTokenizer`).
    Parameters: `trainable_parameters()`, `num_layers`, `parameter_depth(name)`, `parameter_group(choice)`,
    `lumina_tensors(layer)`, `checkpoints()`. Loss: `collate(items)`, `loss_module()`, `clip_losses(...)`,
    `layer_split(layer)`.
    """

    source: str
    record: dict

    @property
    def num_layers(self) -> int:
        """Depth of the transformer (the unit of every layer-indexed option)."""

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def codec(self) -> ClipTokenizer:
        """What turns a clip into tokens (the audio codec; the event encoder of a symbolic generator)."""

    def identity(self) -> str:
        """A short hash of the weights and the tokenizer (cache keys, provenance)."""

    def save(self, path: str | Path) -> Path: ...

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters attribution differentiates, by the names `loss_module()` gives them."""

    def parameter_depth(self, name: str) -> int:
        """Layer of a trainable parameter: 0 … L-1 inside transformer layer l, -1 below the layers
        (embeddings, condition projections), L above them (final norm, output heads)."""

    def parameter_group(self, choice: str | Sequence[int]) -> list[str]:
        """Trainable parameter names of a named group (`all`, `layers`, `self_attn`, and any the generator
        adds, e.g. `cross_attn`) or of a list of layer indices (negative ones count from the top)."""

    def lumina_tensors(self, layer: int) -> dict[str, list[str]]:
        """LUMINA's named tensors of one layer (docs/lumina.md#signatures), each as the parameter names
        whose gradients are stacked along rows; a generator gives the tensors it has."""

    def output_heads(self) -> list[str]:
        """Parameter names of the per-stream output projections, in stream order."""

    def checkpoints(self) -> list[tuple[Path, float]]:
        """Saved intermediate training checkpoints (folder, learning rate), in training order (TracIn)."""

    def collate(self, items: Sequence[Item]) -> Batch:
        """Items → one right-padded batch; padded steps and steps with `keep` False are not loss targets."""

    def loss_module(self, *, mean: bool = False, codebook_weights: Sequence[float] | None = None) -> nn.Module:
        """The one teacher-forcing loss: a module whose `forward(**batch)` gives the loss per example (B,)
        (with `mean`, an object whose `.loss` is the batch mean, as dattri's hooks read), holding exactly
        `trainable_parameters()` under the same names (for `torch.func.functional_call`)."""

    def clip_losses(self, tokens: torch.Tensor, texts: Sequence[str], *, lengths: torch.Tensor | None = None,
                    codebook_weights: Sequence[float] | None = None, by_stream: bool = False) -> torch.Tensor:
        """Loss of each clip of `tokens` (B, K, T) under `texts`: (B,), or (B, K) per stream with `by_stream`."""

    def layer_split(self, layer: int) -> LayerSplit: ...


@runtime_checkable
class GeneratorLoader(Protocol):
    """How a run obtains its generator: `load()` is the generator under attribution; `load(train_ids)` the same
    recipe trained on the training tracks `train_ids` (a retrainable recipe; a loaded checkpoint raises
    ParameterError); `prepare()` makes once what every retraining shares (e.g. the codec), before parallel
    workers start."""

    def __call__(self, train_ids: Sequence[str] | None = None) -> Generator: ...

    def prepare(self) -> None: ...


def weights_identity(tokenizer: ClipTokenizer, model: nn.Module) -> str:
    """`Generator.identity()`: a short hash of the tokenizer's identity and every tensor of the model's state."""
    digest = hashlib.sha256(tokenizer.identity().encode())
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().contiguous().cpu().flatten().view(torch.uint8)  # the raw bytes of any dtype
        digest.update(name.encode() + data.numpy().tobytes())
    return digest.hexdigest()[:16]


def parameter_group_names(names: Sequence[str], layer_prefix: Callable[[int], str], num_layers: int,
                          groups: Mapping[str, tuple[str, ...]], choice: str | Sequence[int]) -> list[str]:
    """`Generator.parameter_group`: of the parameter `names`, those of the named group `choice` (`all`: every
    name; another: names `layer_prefix(l) + part` for a part of `groups[choice]`) or of the listed layers
    (negative indices count from the top)."""
    from lumina.runs.errors import ParameterError

    names = list(names)
    if isinstance(choice, str):
        if choice not in groups:
            raise ParameterError(f"unknown parameter choice {choice!r}; use one of {tuple(groups)} or layer indices")
        if choice == "all":
            return names
        prefixes = [layer_prefix(layer) for layer in range(num_layers)]
        return [n for n in names if any(n.startswith(p + part) for p in prefixes for part in groups[choice])]
    if not choice or any(not -num_layers <= int(i) < num_layers for i in choice):
        raise ParameterError(f"layer indices {list(choice)} out of range for {num_layers} layers")
    chosen = tuple(layer_prefix(int(i) % num_layers) for i in choice)
    return [n for n in names if n.startswith(chosen)]


def recorded_checkpoints(record: Mapping, source: str) -> list[tuple[Path, float]]:
    """`Generator.checkpoints`: the intermediate checkpoints a training record lists (folder under `source`,
    learning rate); ParameterError when there are none."""
    from lumina.runs.errors import ParameterError

    saved = record.get("checkpoints", [])
    if not saved or not source:
        raise ParameterError(f"{source or 'this generator'} records no intermediate checkpoints; TracIn needs a "
                             "trained recipe's training checkpoints (model.train.checkpoints > 0)")
    return [(Path(source) / c["path"], float(c["lr"])) for c in saved]
