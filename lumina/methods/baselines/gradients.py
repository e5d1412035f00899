"""Per-example gradients, their random projections, and the resumable caches they live in.

Every gradient method reads the same thing: for each item (training segment or query) the gradient of its
teacher-forcing loss with respect to chosen LM parameters, flattened to (D,). `per_example_gradients` takes
them as dattri's task does — `vmap(grad(loss_func))` of the same per-example `loss_func` — but over a dict of
parameter tensors: dattri differentiates with respect to one flat vector sliced into the tensors, whose
backward writes a full-length vector per tensor and example (30× slower on the embedded model's full LM).
`example_rows` walks the items batch by batch in length order, reduces each batch's gradients to what the
method keeps (the gradients, or their inner products with the queries), and saves every batch's result as
it goes, so an interrupted run resumes from the batches already done. On the `ray` backend the missing
batches are computed first as tasks, a shard of consecutive batches a task, each writing the same batch files
(docs/execution.md#shards): the batches, hence the bits, are those of a run in one process.
"""

from __future__ import annotations

import functools
import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from dattri.func.projection import random_project
from torch.func import grad, vmap
from tqdm.auto import tqdm

from execution import distributed, parallel_map
from execution import options as parallel_options
from execution.files import atomic_path
from lumina.methods.baselines.items import batches
from lumina.methods.baselines.weights import example_loss
from lumina.models.protocol import Batch, Generator, Item
from lumina.models.remote import generator_handle, use, worker_generator
from lumina.runs.device import to_numpy
from lumina.runs.errors import LuminaError, ParameterError


def digest(payload: object) -> str:
    """A short stable hash of a JSON-able payload (cache keys)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def item_key(items: Sequence[Item]) -> str:
    """Hash of the items' codes, texts and masks (part of every cache key)."""
    h = hashlib.sha256()
    for item in items:
        h.update(np.ascontiguousarray(item.tokens).tobytes() + item.text.encode() + b"|")
        if item.keep is not None:
            h.update(np.packbits(item.keep).tobytes())
    return h.hexdigest()[:16]


def cached(path: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The array saved at `path` (.npy), or `compute()` saved there atomically first."""
    if path.exists():
        return np.load(path)
    value = np.asarray(compute())
    with atomic_path(path) as tmp:
        np.save(tmp, value)
    return value


def parameter_order(module: torch.nn.Module, names: Sequence[str]) -> list[str]:
    """`names` in the module's parameter order: dattri's flattening order, hence its projections' input order."""
    chosen = set(names)
    order = [n for n, _ in module.named_parameters() if n in chosen]
    if len(order) != len(chosen):
        raise ParameterError(f"not LM parameters: {sorted(chosen - set(order))[:3]}")
    return order


def per_example_gradients(module: torch.nn.Module, names: Sequence[str], batch: Batch) -> torch.Tensor:
    """Gradients (B, D) of each example's loss (`module`: a generator's loss module) with respect to the
    parameters `names` at the module's current weights, flattened in `parameter_order`, float32 whatever the
    model's dtype."""
    order = parameter_order(module, names)
    params = {n: p.detach() for n, p in module.named_parameters() if n in set(order)}
    with torch.no_grad(), warnings.catch_warnings():  # torch.func.grad differentiates inside; nothing outside
        warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented")
        grads = vmap(grad(example_loss(module)), in_dims=(None, 0))(params, batch)
    return torch.cat([grads[n].reshape(grads[n].shape[0], -1) for n in order], dim=1).float()  # bf16 models: float32


def example_rows(
    generator: Generator,
    names: Sequence[str],
    items: Sequence[Item],
    reduce: Callable[[torch.Tensor], torch.Tensor],
    folder: Path | None,
    *,
    batch_size: int = 8,
    desc: str = "gradients",
    progress: bool = True,
) -> np.ndarray:
    """`reduce(G)` of each batch's per-example gradients G (B, D) at the current weights, stacked in item
    order: (n, r). Batches are cached under `folder` (its name must key the weights, parameters, items and
    reduction); None caches nothing. Raises LuminaError on a non-finite gradient.
    """
    module = generator.loss_module()
    order = batches(items, batch_size)
    if folder is not None and distributed():
        missing = [(b, index) for b, index in enumerate(order) if not batch_file(folder, batch_size, b).exists()]
        per_task = max(1, parallel_options().shard_size // batch_size)
        shards = [missing[i : i + per_task] for i in range(0, len(missing), per_task)]
        threads = torch.get_num_threads()  # per task, as here: per-example gradients depend on the thread count
        task = functools.partial(rows_shard, names=names, items=items, reduce=reduce, folder=folder,
                                 batch_size=batch_size, threads=threads)
        results = parallel_map(task, shards, initializer=use, initargs=(generator_handle(generator),),
                               workers=parallel_options().workers, cpus=threads,
                               gpus=parallel_options().gpus_per_task)
        for _ in tqdm(results, total=len(shards), desc=f"{desc} (shards)", disable=not progress or not shards,
                      unit="shard"):
            pass
    out: np.ndarray | None = None
    for b, index in enumerate(tqdm(order, desc=desc, disable=not progress, unit="batch")):
        rows = (batch_rows(generator, module, names, items, reduce, index) if folder is None
                else cached(batch_file(folder, batch_size, b),
                            lambda index=index: batch_rows(generator, module, names, items, reduce, index)))
        if out is None:
            out = np.empty((len(items), *rows.shape[1:]), dtype=rows.dtype)
        out[index] = rows
    assert out is not None
    return out


def batch_rows(generator: Generator, module: torch.nn.Module, names: Sequence[str], items: Sequence[Item],
               reduce: Callable[[torch.Tensor], torch.Tensor], index: np.ndarray) -> np.ndarray:
    """`reduce(G)` of the per-example gradients G (B, D) of the items `index`; LuminaError when not finite."""
    grads = per_example_gradients(module, names, generator.collate([items[i] for i in index]))
    if not torch.isfinite(grads).all():
        raise LuminaError(f"non-finite gradient in a batch of {len(index)} items")
    return to_numpy(reduce(grads))


def batch_file(folder: Path, batch_size: int, b: int) -> Path:
    """Where batch `b` of `example_rows` is cached."""
    return folder / f"batch{batch_size}-{b:05d}.npy"


def rows_shard(shard: Sequence[tuple[int, np.ndarray]], *, names: Sequence[str], items: Sequence[Item],
               reduce: Callable[[torch.Tensor], torch.Tensor], folder: Path, batch_size: int, threads: int) -> int:
    """A task of `example_rows` (the worker's generator rebuilt by `lumina.models.remote.use`): compute and
    cache the batches (index b, item indices) of one shard, skipping those already cached; returns how many it
    computed."""
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    generator = worker_generator()
    module = generator.loss_module()
    todo = [(b, index) for b, index in shard if not batch_file(folder, batch_size, b).exists()]
    for b, index in todo:
        cached(batch_file(folder, batch_size, b), lambda index=index: batch_rows(generator, module, names, items,
                                                                                  reduce, index))
    return len(todo)


def project(features: torch.Tensor, proj_dim: int, seed: int, ensemble_id: int = 0) -> torch.Tensor:
    """dattri's dense Gaussian projection (n, D) → (n, proj_dim), scaled by 1/sqrt(proj_dim): the same matrix
    dattri's TRAK and TracIn attributors draw for this seed and ensemble id. `proj_dim` 0 = no projection.

    The matrix is drawn once for all rows (dattri's CPU projector draws it again for every batch).
    """
    if proj_dim <= 0:
        return features
    projector = random_project(features, features.shape[0], proj_dim=proj_dim, proj_max_batch_size=32,
                               proj_seed=seed, proj_type="normal", device=str(features.device))
    return projector(features, ensemble_id=ensemble_id)
