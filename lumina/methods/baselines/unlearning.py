"""Fisher-regularised unlearning (docs/baselines.md#fisher-regularised-unlearning): from the trained weights Θ₀, descend

    L_unlearn(Θ) = −L(ẑ, Θ) + (N/2) (Θ − Θ₀)ᵀ F (Θ − Θ₀)

over the target parameters for a query ẑ (N: number of training segments; F: diagonal empirical Fisher,
the mean squared per-segment gradient over a sample of training segments), then score every training
segment by its loss change τ_i = L(z_i, Θ_unlearned) − L(z_i, Θ₀): positive = unlearning the query made
the segment worse, i.e. the segment helped (mirrored influence). No dattri attributor does this; the
Fisher's per-segment gradients are taken like every other method's (`gradients.per_example_gradients`).

Scoring runs the model over every training segment once per query, the bulk of the cost. Nothing below the
lowest target layer changes, so each segment's input to that layer is computed once and only the layers
above it run per query (all of them when a target lies below the layers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lumina.methods.baselines.gradients import cached, item_key, parameter_order, per_example_gradients
from lumina.methods.baselines.items import batches
from lumina.methods.baselines.weights import put_back, weights_copy
from lumina.models.capture import only_requiring_grad
from lumina.models.protocol import Batch, Generator, Item, LayerSplit
from lumina.runs.device import to_numpy
from lumina.runs.errors import LuminaError, ParameterError

OPTIMIZERS = ("sgd", "adam")


def fisher_diagonal(
    generator: Generator,
    names: Sequence[str],
    items: Sequence[Item],
    path: Path,
    *,
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher mean_i g_i ⊙ g_i over `items` for the parameters `names` at the current
    weights, per parameter; cached at `path` (.npy)."""
    module = generator.loss_module()
    order = parameter_order(module, names)

    def compute() -> np.ndarray:
        total = None
        for index in tqdm(batches(items, batch_size), desc="Fisher", disable=not progress, unit="batch"):
            grads = per_example_gradients(module, order, generator.collate([items[i] for i in index]))
            squares = (grads.double() ** 2).sum(dim=0)
            total = squares if total is None else total + squares
        return to_numpy((total / len(items)).float())

    flat = torch.from_numpy(cached(path, compute)).to(generator.device)
    params = dict(module.named_parameters())
    out, start = {}, 0
    for name in order:
        shape = params[name].shape
        size = int(np.prod(shape))
        out[name] = flat[start : start + size].view(shape)
        start += size
    return out


def first_target_layer(generator: Generator, names: Sequence[str]) -> int:
    """The lowest layer holding a target parameter: below it nothing changes during unlearning.

    0 when a target lies below the layers (embeddings, condition projection); the number of layers when every
    target lies above them (final norm, output heads)."""
    return max(0, min(generator.parameter_depth(name) for name in names))


@dataclass
class Prepared:
    """Training items collated once into length-ordered batches, with what the layers from the first target
    layer (`start`) upward receive for each (`split`; None when `start` is 0: the whole model runs)."""

    index: list[np.ndarray]
    batch: list[Batch]
    lower: list[Any]
    split: LayerSplit | None
    start: int


def prepare(generator: Generator, items: Sequence[Item], names: Sequence[str], batch_size: int) -> Prepared:
    """Batches of `items` for repeated loss evaluation while the parameters `names` change."""
    start = first_target_layer(generator, names)
    split = generator.layer_split(start) if start > 0 else None
    index = batches(items, batch_size)
    collated = [generator.collate([items[i] for i in chunk]) for chunk in index]
    lower = [split.lower(b) if split is not None else None for b in collated]
    return Prepared(index, collated, lower, split, start)


def segment_losses(generator: Generator, prepared: Prepared, n: int) -> np.ndarray:
    """Teacher-forcing loss (n,) of the prepared items at the current weights."""
    module = generator.loss_module()
    out = np.empty(n, dtype=np.float64)
    with torch.no_grad():
        for index, batch, lower in zip(prepared.index, prepared.batch, prepared.lower, strict=True):
            losses = module(**batch) if prepared.split is None else prepared.split.losses(lower, batch)
            out[index] = losses.double().cpu().numpy()
    return out


def unlearn(
    generator: Generator,
    module: torch.nn.Module,
    names: Sequence[str],
    anchor: dict[str, torch.Tensor],
    fisher: dict[str, torch.Tensor],
    query: Batch,
    *,
    n_train: int,
    steps: int = 8,
    lr: float = 1e-4,
    optimizer: str = "adam",
) -> tuple[float, float]:
    """Take `steps` optimiser steps on L_unlearn for the target parameters `names` in place (from the current
    weights, which should equal `anchor`); returns the query's loss increase and the Fisher penalty
    (N/2)(Θ − Θ₀)ᵀF(Θ − Θ₀) after the last step, both in nats."""
    if optimizer not in OPTIMIZERS:
        raise ParameterError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    params = generator.trainable_parameters()
    with only_requiring_grad(module, names) as targets, torch.enable_grad():
        opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(targets, lr=lr)
        history = []
        for _ in range(steps):
            loss = module(**query).mean()
            penalty = sum((fisher[n] * (params[n] - anchor[n]) ** 2).sum() for n in names)
            objective = -loss + 0.5 * n_train * penalty
            opt.zero_grad(set_to_none=True)
            objective.backward()
            opt.step()
            history.append(float(loss.detach()))
            if not np.isfinite(history[-1]):
                raise LuminaError("the query loss diverged during unlearning; lower method.lr or method.steps")
        for p in targets:
            p.grad = None
    with torch.no_grad():
        after = float(module(**query).mean())
        penalty = 0.5 * n_train * float(sum((fisher[n] * (params[n] - anchor[n]) ** 2).sum() for n in names))
    return after - history[0], penalty


def unlearning_scores(
    generator: Generator,
    names: Sequence[str],
    train: Sequence[Item],
    queries: Sequence[Item],
    fisher_items: Sequence[Item],
    cache: Path,
    *,
    steps: int = 8,
    lr: float = 1e-4,
    optimizer: str = "adam",
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[np.ndarray, dict]:
    """τ (N, Q): loss change of every training item when each query is unlearned from the current weights.

    Each query's column is cached under `cache` (which must key the generator and the settings); the
    weights are restored after every query.
    """
    module = generator.loss_module()
    anchor = weights_copy(generator)
    fisher = fisher_diagonal(generator, names, fisher_items, cache / f"fisher-{item_key(fisher_items)}.npy",
                             batch_size=batch_size, progress=progress)
    prepared = prepare(generator, train, names, batch_size)
    train_key = item_key(train)
    base = cached(cache / f"base-{train_key}.npy", lambda: segment_losses(generator, prepared, len(train)))
    columns, diagnostics = [], []
    for item in tqdm(queries, desc="unlearning queries", disable=not progress, unit="query"):

        def column(item: Item = item) -> np.ndarray:
            try:
                gain, penalty = unlearn(generator, module, names, anchor, fisher, generator.collate([item]),
                                        n_train=len(train), steps=steps, lr=lr, optimizer=optimizer)
                return np.concatenate([segment_losses(generator, prepared, len(train)) - base, [gain, penalty]])
            finally:
                put_back(generator, anchor)

        values = cached(cache / f"query-{item_key([item])}-{train_key}.npy", column)
        columns.append(values[:-2])
        diagnostics.append(values[-2:])
    gain, penalty = np.mean(diagnostics, axis=0)
    return np.stack(columns, axis=1).astype(np.float32), {
        "query_loss_increase_mean": float(gain), "fisher_penalty_mean": float(penalty),
        "fisher_sample": len(fisher_items),
    }
