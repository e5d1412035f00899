"""LoGra and FactGraSS (docs/baselines.md): influence with per-layer Kronecker-factored gradient compression and a
per-layer damped empirical-Fisher preconditioner,

    score(i, q) = Σ_l (P_l g_q,l)ᵀ (H_l + δ_l I)⁻¹ (P_l g_i,l),   H_l = mean_i (P_l g_i,l)(P_l g_i,l)ᵀ,
    δ_l = damping · tr(H_l) / dim_l  (dattri's `stable_inverse`; damping None = 1e-5).

The compression is dattri's own (`setup_model_compressors` and the `HookManager` that computes compressed
per-example gradients from layer inputs and output gradients without forming the full gradient), configured
exactly as dattri's `LoGraAttributor` (Gaussian factor projections, √k per factor) and
`FactGraSSAttributor` (random-mask factors of √(blowup·k), then a dense projection to k; dattri uses a sparse
SJLT there on CUDA only). The project runs the stages itself so that compressed gradients are cached batch
by batch (dattri's attributors keep nothing across an interruption); the preconditioner and the scores
repeat dattri's `BlockProjectedIFAttributor` arithmetic.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from dattri.algorithm.block_projected_if.core.compressor import setup_model_compressors
from dattri.algorithm.block_projected_if.core.hook import HookManager
from dattri.algorithm.block_projected_if.core.utils import stable_inverse
from dattri.func.projection import BasicProjector, ProjectionType
from torch import nn
from tqdm.auto import tqdm

from execution import distributed, parallel_map
from execution import options as parallel_options
from lumina.methods.baselines.gradients import batch_file, cached, item_key
from lumina.methods.baselines.items import batches
from lumina.models.capture import only_requiring_grad
from lumina.models.protocol import Generator, Item
from lumina.models.remote import generator_handle, use, worker_generator
from lumina.runs.device import to_numpy
from lumina.runs.errors import ParameterError

METHODS = ("logra", "factgrass")


def compression_kwargs(method: str, proj_dim: int, blowup: int, device: str) -> tuple[dict, dict]:
    """dattri's sparsifier and projector settings for LoGra and FactGraSS at `proj_dim` per layer on `device`."""
    if method == "logra":
        side = math.isqrt(proj_dim)
        if side * side != proj_dim:
            raise ParameterError(f"LoGra's proj_dim must be a perfect square, got {proj_dim}")
        return (
            {"device": device, "proj_dim": side, "proj_max_batch_size": 64, "proj_type": "normal"},
            {"device": device, "proj_dim": -1, "proj_max_batch_size": 64, "proj_type": "identity"},
        )
    if method == "factgrass":
        side = math.isqrt(proj_dim * blowup)
        if side * side != proj_dim * blowup:
            raise ParameterError(f"FactGraSS's proj_dim × blowup must be a perfect square, got {proj_dim} × {blowup}")
        return (
            {"device": device, "proj_dim": side, "proj_max_batch_size": 64, "proj_type": "random_mask"},
            {"device": device, "proj_dim": proj_dim, "proj_max_batch_size": 64, "proj_type": "normal"},
        )
    raise ParameterError(f"unknown block-projected method {method!r}; use one of {METHODS}")


class DrawnOnce:
    """dattri's dense Gaussian `BasicProjector` (ensemble 0) with its blocks drawn once: dattri draws them again
    on every call when the projection is wider than its block of 100 columns (FactGraSS's second stage, k = 256:
    three blocks per layer and batch). Same matrices, same products in the same order: the same bits."""

    def __init__(self, projector: BasicProjector) -> None:
        self.projector = projector
        self.blocks = []
        for state in projector.generator_states:
            projector._gen_randomness_dense(state)
            self.blocks.append(projector.proj_matrix.clone())

    def __call__(self, features: torch.Tensor, ensemble_id: int = 0) -> torch.Tensor:
        """Features (n, D) → (n, k), as `BasicProjector.project(features, 0)` (dattri's compressors ask for 0 only)."""
        if ensemble_id != 0:
            raise ParameterError(f"DrawnOnce holds ensemble 0's blocks only, asked for ensemble {ensemble_id}")
        p = self.projector
        features = features.to(p.device)
        sketch = torch.zeros(size=(features.size(0), p.proj_dim), dtype=p.dtype, device=p.device)
        for index, block in enumerate(self.blocks):
            start, stop = index * p.block_size, min((index + 1) * p.block_size, p.proj_dim)
            sketch[:, start:stop] = features.type(p.dtype) @ block[:, : (stop - start)]
        sketch /= p.proj_dim**0.5
        return sketch.type(features.dtype)


def drawn_once(project: Callable) -> Callable:
    """A dattri projection function with a multi-block dense Gaussian CPU projector replaced by `DrawnOnce`
    (any other projection is returned as it is)."""
    projector = inspect.getclosurevars(project).nonlocals.get("projector")
    if (isinstance(projector, BasicProjector) and projector.num_blocks > 1
            and projector.proj_type == ProjectionType.normal and projector.ensemble_id == 0):
        return DrawnOnce(projector)
    return project


def linear_layers(module: nn.Module, layers: str | Sequence[int], num_layers: int) -> list[str]:
    """Names of the LM's linear modules to compress: `all` (every linear of the LM: transformer layers,
    output heads, text projection) or decoder layer indices (negative ones count from the top)."""
    names = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    if layers == "all":
        return names
    chosen = {int(i) % num_layers for i in layers}
    return [n for n in names if any(f".layers.{i}." in n for i in chosen)]


def called_linears(module: nn.Module, names: Sequence[str], batch: dict) -> list[str]:
    """The modules of `names` that the loss module's forward pass on `batch` calls. A linear whose weight the
    forward uses functionally (dattri's relative attention applies its `out_proj` with `F.linear`) gets no
    hook, so it cannot be compressed and is left out."""
    called: set[str] = set()
    wanted = set(names)
    handles = [m.register_forward_hook(lambda *_, n=n: called.add(n)) for n, m in module.named_modules()
               if n in wanted]
    try:
        with torch.no_grad():
            module(**batch)
    finally:
        for handle in handles:
            handle.remove()
    return [n for n in names if n in called]


@dataclass(frozen=True)
class Compression:
    """Everything that fixes LoGra's or FactGraSS's compressors, so that a worker process rebuilds the same ones:
    the method, the layers, k per layer, FactGraSS's blowup, the projection seed and the item the compressors
    are set up on (dattri's setup runs it forward once)."""

    method: str
    layers: str | tuple[int, ...]
    proj_dim: int
    blowup: int
    proj_seed: int
    sample: Item


def set_up_compressors(generator: Generator, compression: Compression) -> tuple[nn.Module, list[str], list]:
    """The mean-loss module, the names of the linear modules it compresses (those the forward calls) and dattri's
    compressors for them, on the generator's device (multi-block Gaussian projections drawn once)."""
    module = generator.loss_module(mean=True)
    sample = generator.collate([compression.sample])
    layer_names = called_linears(module, linear_layers(module, compression.layers, generator.num_layers), sample)
    device = str(generator.device)
    sparsifier, projector = compression_kwargs(compression.method, compression.proj_dim, compression.blowup, device)
    compressors = setup_model_compressors(
        module, layer_names, sparsifier_kwargs={**sparsifier, "proj_seed": compression.proj_seed},
        projector_kwargs={**projector, "proj_seed": compression.proj_seed}, sample_inputs=sample, device=device,
    )
    for compressor in compressors:
        if compressor.projector is not None and compressor.projector.projector is not None:
            compressor.projector.projector = drawn_once(compressor.projector.projector)
    return module, layer_names, compressors


def compressed_parameters(setup: tuple[nn.Module, list[str], list]) -> list[str]:
    """The parameters whose per-example gradients `compressed_rows` reads: each compressed layer's weight, and its
    bias when it has one."""
    module, layer_names, _ = setup
    layers = dict(module.named_modules())
    return [f"{n}.{p}" for n in layer_names for p in ("weight", "bias") if getattr(layers[n], p) is not None]


def sparsified_rows(setup: tuple[nn.Module, list[str], list], grads: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """dattri's first compression stage of each example and layer, (B, Σ_l k₁k₂), layers in the setup's order, from
    the per-example gradients of `compressed_parameters` (weights (B, out, in), biases (B, out), by name), without
    dattri's hooks; `projected_rows` applies the second stage.

    dattri's hook compresses a layer's output gradients δ_t (out) and inputs x̃_t = [x_t, 1] (in + 1) factor by factor
    and sums the outer products over the steps t: Σ_t (A₁ᵀδ_t)(A₂ᵀx̃_t)ᵀ = A₁ᵀ G A₂, where G = Σ_t δ_t x̃_tᵀ = [∂W | ∂b]
    is the example's gradient of the weight with the bias as a last column (the hook differentiates the batch-mean
    loss and multiplies by the batch size: the example's own loss). Here dattri's own factor maps A₁, A₂ (Gaussian
    for LoGra, random masks for FactGraSS) are applied to G; the numbers equal the hook's up to float32 summation
    order (the sum over steps comes first here)."""
    _, layer_names, compressors = setup
    out = []
    for name, compressor in zip(layer_names, compressors, strict=True):
        full = grads[f"{name}.weight"]
        if f"{name}.bias" in grads:
            full = torch.cat([full, grads[f"{name}.bias"][..., None]], dim=2)  # (B, out, in + 1)
        b, rows, cols = full.shape
        first, second = compressor.sparsifier.sparsifier_comp
        left = first(full.transpose(1, 2).reshape(b * cols, rows), ensemble_id=0)  # (B·(in+1), k₁): Gᵀ A₁
        k1 = left.shape[1]
        both = second(left.reshape(b, cols, k1).transpose(1, 2).reshape(b * k1, cols), ensemble_id=0)  # A₁ᵀ G A₂
        out.append(both.reshape(b, -1))  # flattened output-factor-major, as dattri's outer product
    return torch.cat(out, dim=1)


def projected_rows(setup: tuple[nn.Module, list[str], list], rows: torch.Tensor) -> torch.Tensor:
    """dattri's second compression stage (LoGra: the identity; FactGraSS: the dense projection to k) of each layer's
    block of `sparsified_rows` (n, Σ_l k₁k₂) → the compressed gradients (n, Σ_l k), as dattri's hooks give them."""
    out, start = [], 0
    for compressor in setup[2]:
        k1, k2 = compressor.sparsifier.intermediate_dims
        out.append(compressor.projector.forward(rows[:, start : start + k1 * k2]))
        start += k1 * k2
    return torch.cat(out, dim=1)


def compress_batches(generator: Generator, setup: tuple[nn.Module, list[str], list], items: Sequence[Item],
                     todo: Sequence[tuple[int, np.ndarray]], folder: Path, batch_size: int) -> None:
    """Compute and cache the compressed per-example gradients of the batches `todo` (index b, item indices)."""
    module, layer_names, compressors = setup
    weights = [f"{n}.weight" for n in layer_names]
    hooks = HookManager(module, list(layer_names))
    hooks.set_compressors(compressors)

    def compute(index: np.ndarray) -> np.ndarray:
        with only_requiring_grad(module, weights), torch.enable_grad():
            module(**generator.collate([items[i] for i in index])).loss.backward()
        return to_numpy(torch.cat([g.detach() for g in hooks.get_compressed_grads()], dim=1))

    try:
        for b, index in todo:
            cached(batch_file(folder, batch_size, b), lambda index=index: compute(index))
    finally:
        hooks.remove_hooks()


def compressed_shard(shard: Sequence[tuple[int, np.ndarray]], *, compression: Compression, items: Sequence[Item],
                     folder: Path, batch_size: int, threads: int) -> int:
    """A task of `compressed_gradients` on the `ray` backend (the worker's generator rebuilt by
    `lumina.models.remote.use`): the compressors rebuilt from `compression`, the shard's batches not yet
    cached computed; returns how many it computed."""
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    generator = worker_generator()
    todo = [(b, index) for b, index in shard if not batch_file(folder, batch_size, b).exists()]
    if todo:
        with torch.compiler.set_stance("force_eager"):
            compress_batches(generator, set_up_compressors(generator, compression), items, todo, folder, batch_size)
    return len(todo)


def compressed_gradients(
    generator: Generator,
    compression: Compression,
    setup: tuple[nn.Module, list[str], list],
    items: Sequence[Item],
    folder: Path,
    *,
    batch_size: int = 8,
    desc: str = "compressed gradients",
    progress: bool = True,
) -> np.ndarray:
    """Per-example compressed gradients (n, Σ_l dim_l), layers in the setup's order; cached per batch. On the
    `ray` backend the missing batches are computed first as shards (`compressed_shard`), a task each."""
    order = batches(items, batch_size)
    missing = [(b, index) for b, index in enumerate(order) if not batch_file(folder, batch_size, b).exists()]
    if missing and distributed():
        per_task = max(1, parallel_options().shard_size // batch_size)
        threads = torch.get_num_threads()  # per task, as here: gradients depend on the thread count
        task = functools.partial(compressed_shard, compression=compression, items=items, folder=folder,
                                 batch_size=batch_size, threads=threads)
        shards = [missing[i : i + per_task] for i in range(0, len(missing), per_task)]
        for _ in tqdm(parallel_map(task, shards, initializer=use, initargs=(generator_handle(generator),),
                                   workers=parallel_options().workers, cpus=threads,
                                   gpus=parallel_options().gpus_per_task),
                      total=len(shards), desc=f"{desc} (shards)", disable=not progress, unit="shard"):
            pass
    else:
        compress_batches(generator, setup, items, tqdm(missing, desc=desc, disable=not progress, unit="batch"),
                         folder, batch_size)
    rows = [np.load(batch_file(folder, batch_size, b)) for b in range(len(order))]
    out = np.empty((len(items), rows[0].shape[1]), dtype=rows[0].dtype)
    for index, batch_rows in zip(order, rows, strict=True):
        out[index] = batch_rows
    return out


def block_influence(
    train: torch.Tensor,
    queries: torch.Tensor,
    layer_dims: Sequence[int],
    *,
    hessian: str = "eFIM",
    damping: float | None = None,
) -> torch.Tensor:
    """Scores (N, Q) from compressed training (N, Σd) and query (Q, Σd) gradients, per-layer preconditioned
    (`eFIM`) or not (`Identity`), summed over layers."""
    if hessian not in ("eFIM", "Identity"):
        raise ParameterError(f"hessian must be 'eFIM' or 'Identity', got {hessian!r}")
    scores = torch.zeros(train.shape[0], queries.shape[0], dtype=train.dtype, device=train.device)
    start = 0
    for dim in layer_dims:
        g, q = train[:, start : start + dim], queries[:, start : start + dim]
        start += dim
        if hessian == "eFIM":
            g = (stable_inverse(g.T @ g / g.shape[0], damping=damping) @ g.T).T
        scores += g @ q.T
    return scores


def block_projected(
    generator: Generator,
    method: str,
    train: Sequence[Item],
    queries: Sequence[Item],
    cache: Path,
    *,
    layers: str | Sequence[int] = "all",
    proj_dim: int = 256,
    blowup: int = 4,
    hessian: str = "eFIM",
    damping: float | None = None,
    proj_seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[np.ndarray, dict]:
    """LoGra or FactGraSS scores (N, Q) at the generator's current weights, and what was compressed.

    `cache` must key the generator and the method's settings; below it, results are keyed by the items.
    """
    compression = Compression(method, layers if isinstance(layers, str) else tuple(layers), proj_dim, blowup,
                              proj_seed, train[0])
    with torch.compiler.set_stance("force_eager"):  # dattri compiles its compressor; on CPU that costs minutes
        setup = set_up_compressors(generator, compression)
        feats = [
            torch.from_numpy(compressed_gradients(
                generator, compression, setup, items, cache / f"{what}-{item_key(items)}",
                batch_size=batch_size, desc=f"{method}: {what} gradients", progress=progress,
            ))
            for what, items in (("train", train), ("queries", queries))
        ]
    return block_scores(feats[0], feats[1], setup[1], proj_dim, hessian=hessian, damping=damping)


def block_scores(train: torch.Tensor, queries: torch.Tensor, layer_names: Sequence[str], proj_dim: int, *,
                 hessian: str = "eFIM", damping: float | None = None) -> tuple[np.ndarray, dict]:
    """LoGra's or FactGraSS's scores (N, Q) from compressed training (N, Σd) and query (Q, Σd) gradients of the
    layers `layer_names` (k = `proj_dim` each), and what was compressed."""
    dims = [proj_dim] * len(layer_names)  # LoGra: √k × √k per layer; FactGraSS: projected to k per layer
    if sum(dims) != train.shape[1]:
        raise ParameterError(f"compressed width {train.shape[1]} does not match the layer dimensions {sum(dims)}")
    scores = block_influence(train, queries, dims, hessian=hessian, damping=damping).numpy()
    return scores, {"layers": len(layer_names), "feature_dim": int(sum(dims))}
