"""One streaming pass of per-example gradients for GradDot, Grad-Cos, TracIn, TRAK, LoGra and FactGraSS
(docs/baselines.md#the-shared-gradient-pass).

A `Visit` is one checkpoint (the trained weights, or a saved training checkpoint) and what the methods need there:

- `Inner(names)`: inner products of every training item's gradient with every query's, and the norms (GradDot,
  Grad-Cos, TracIn with raw gradients);
- `Raw(names)`: the gradients themselves, for a projection after the pass (TRAK; the others with `proj_dim` > 0);
- a `Compression` (LoGra, FactGraSS): dattri's first compression stage, computed from the per-example gradients of
  the compressed layers' weights and biases (`block_projected.sparsified_rows`) rather than by dattri's hooks; the
  second stage (FactGraSS's dense projection) runs once over all rows after the pass (`projected_rows`).

At each visit the pass takes the per-example gradients of the union of the parameters its requests name
(`per_example_gradients`: the `vmap(grad)` every method's own path takes), queries first: their gradients are
held (Q × D, for the inner products), then each training batch's (B × D) is reduced at once to every request's
rows and dropped. Nothing holds every training gradient. Each training batch's rows are saved as one file, the
queries' rows as another, so an interrupted pass resumes: the query gradients are recomputed only when a
training batch of that visit is missing. Batches are the own paths' (`items.batches`: length order, `batch_size`),
so every gradient is computed on the same padded batch as there.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, grad, vmap
from torch.utils._pytree import tree_map
from tqdm.auto import tqdm

from execution.files import atomic_path
from lumina.methods.baselines.block_projected import Compression, compressed_parameters, sparsified_rows
from lumina.methods.baselines.gradient_similarity import dots_and_norms
from lumina.methods.baselines.gradients import digest, item_key, parameter_order, per_example_gradients
from lumina.methods.baselines.items import batches
from lumina.methods.baselines.weights import load_weights
from lumina.models.protocol import Batch, Generator, Item, LayerSplit
from lumina.runs.device import to_numpy
from lumina.runs.errors import LuminaError


@dataclass(frozen=True)
class Inner:
    """Training × query inner products and norms of the gradients with respect to `names`."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Raw:
    """The gradients with respect to `names`, kept for a projection."""

    names: tuple[str, ...]


Request = Inner | Raw | Compression


@dataclass
class Visit:
    """One checkpoint of the pass: `label` names it in cache keys ('final' for the trained weights), `weights` is its
    state or checkpoint folder, `requests` what is computed there, `setups` the compressors of its `Compression`
    requests by request index (`block_projected.set_up_compressors`)."""

    label: str
    weights: dict[str, torch.Tensor] | str | Path
    requests: list[Request] = field(default_factory=list)
    setups: dict[int, tuple] = field(default_factory=dict)

    def add(self, request: Inner | Raw) -> int:
        """Index of `request` among the visit's requests, added when new."""
        for j, known in enumerate(self.requests):
            if type(known) is type(request) and known.names == request.names:  # type: ignore[union-attr]
                return j
        self.requests.append(request)
        return len(self.requests) - 1

    def add_compression(self, compression: Compression, setup: tuple) -> int:
        """Index of a new `Compression` request, with its compressors."""
        self.requests.append(compression)
        self.setups[len(self.requests) - 1] = setup
        return len(self.requests) - 1

    def names(self) -> list[str]:
        """Every parameter the requests need."""
        chosen = {n for setup in self.setups.values() for n in compressed_parameters(setup)}
        for request in self.requests:
            if not isinstance(request, Compression):
                chosen.update(request.names)
        return sorted(chosen)

    def key(self, identity: str) -> list:
        """What the visit's cached rows depend on besides the items: the model, the checkpoint, the requests."""
        def describe(r: Request) -> list:
            if isinstance(r, Compression):
                return ["compressed", r.method, r.layers, r.proj_dim, r.blowup, r.proj_seed, item_key([r.sample])]
            return [type(r).__name__.lower(), list(r.names)]
        return [identity, self.label, [describe(r) for r in self.requests]]


@dataclass
class InnerRows:
    """An `Inner` request's result: dots (N, Q), training norms (N,), query norms (Q,)."""

    dots: np.ndarray
    train_norms: np.ndarray
    query_norms: np.ndarray


@dataclass
class SplitRows:
    """A `Raw` or `Compression` request's result: training rows (N, W) and query rows (Q, W)."""

    train: np.ndarray
    queries: np.ndarray


class Columns:
    """The union of a visit's parameters in the loss module's order, and each parameter's columns in a gradient row."""

    def __init__(self, module: torch.nn.Module, names: Sequence[str]) -> None:
        self.order = parameter_order(module, names)
        shapes = {n: p.shape for n, p in module.named_parameters()}
        self.shapes = {n: shapes[n] for n in self.order}
        sizes = [int(np.prod(self.shapes[n])) for n in self.order]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        self.span = {n: (int(starts[i]), int(starts[i + 1])) for i, n in enumerate(self.order)}
        self.indices: dict[tuple[str, ...], torch.Tensor | None] = {}

    def index(self, names: Sequence[str]) -> torch.Tensor | None:
        """Columns of `names` (in the module's order) within the union; None when they are the whole union."""
        key = tuple(names)
        if key not in self.indices:
            chosen = set(names)
            self.indices[key] = None if chosen == set(self.order) else torch.cat(
                [torch.arange(*self.span[n]) for n in self.order if n in chosen])
        return self.indices[key]

    def views(self, grads: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """Per-example gradients (B, D) split into the parameters `names`, each (B, *shape)."""
        return {n: grads[:, slice(*self.span[n])].reshape(grads.shape[0], *self.shapes[n]) for n in names}


def gradient_pass(
    generator: Generator,
    visits: Sequence[Visit],
    train: Sequence[Item],
    queries: Sequence[Item],
    cache: Path,
    *,
    batch_size: int = 8,
    progress: bool = True,
) -> list[list[InnerRows | SplitRows]]:
    """Every visit's results, in request order. `cache` must key nothing but the method family: below it each visit's
    rows are keyed by the model, the checkpoint, the requests, the items and the batch size. The LM is left at the
    last visit's weights."""
    module = generator.loss_module()
    train_key, query_key = item_key(train), item_key(queries)
    out = []
    for v, visit in enumerate(visits):
        folder = cache / f"visit-{digest(visit.key(generator.identity()))}" / f"{train_key}-{query_key}-b{batch_size}"
        load_weights(module, visit.weights)
        out.append(visit_rows(generator, module, visit, train, queries, folder, batch_size=batch_size,
                              desc=f"gradient pass [{v + 1}/{len(visits)}: {visit.label}]", progress=progress))
    return out


def visit_rows(generator: Generator, module: torch.nn.Module, visit: Visit, train: Sequence[Item],
               queries: Sequence[Item], folder: Path, *, batch_size: int, desc: str, progress: bool
               ) -> list[InnerRows | SplitRows]:
    """One visit at the module's current weights: query rows, then each training batch's, cached under `folder`."""
    columns = Columns(module, visit.names())
    differentiate = Differentiate(generator, module, columns.order)
    train_order, query_order = batches(train, batch_size), batches(queries, batch_size)
    train_files = [folder / f"train-{b:05d}.npz" for b in range(len(train_order))]
    query_file = folder / "queries.npz"
    missing = [b for b, path in enumerate(train_files) if not path.exists()]
    held: list[torch.Tensor | None] = []
    if (missing and any(isinstance(r, Inner) for r in visit.requests)) or not query_file.exists():
        held = query_side(differentiate, visit, columns, queries, query_order, query_file, desc=f"{desc} queries",
                          progress=progress)
    for b in tqdm(missing, desc=f"{desc} training batches", disable=not progress, unit="batch"):
        grads = differentiate([train[i] for i in train_order[b]])
        rows = {f"r{j}": to_numpy(reduce(visit, j, columns, grads, held)) for j in range(len(visit.requests))}
        with atomic_path(train_files[b]) as tmp:
            np.savez(tmp, **rows)
    del held  # the query gradients go before the rows are read back
    return assemble(visit, train_order, train_files, query_file, len(train))


class Upper(torch.nn.Module):
    """The loss module's submodules under their names, its forward the per-example losses from a layer split's cut
    upward (`Generator.layer_split`): what `functional_call` differentiates when only layers above the cut are asked
    for, so that the layers below run once per batch, batched and outside `vmap`."""

    def __init__(self, module: torch.nn.Module, split: LayerSplit) -> None:
        super().__init__()
        for name, child in module.named_children():
            self.add_module(name, child)
        self.split = split

    def forward(self, lower: Any, batch: Batch) -> torch.Tensor:
        return self.split.losses(lower, batch)


class Differentiate:
    """Per-example gradients (B, D) of a batch of items with respect to the parameters `order` (the loss module's
    order): `per_example_gradients`, or, when none of them lies below decoder layer 1, the same `vmap(grad)` over the
    layers from the lowest one asked for upward, on the layer split's batched lower pass (the same bits on the
    generators here, tests/test_gradient_pass.py)."""

    def __init__(self, generator: Generator, module: torch.nn.Module, order: Sequence[str]) -> None:
        self.generator, self.module, self.order = generator, module, list(order)
        self.cut = min(generator.parameter_depth(n) for n in order)
        self.upper: Upper | None = None
        if self.cut >= 1:
            upper = Upper(module, generator.layer_split(self.cut))
            if set(order) <= {n for n, _ in upper.named_parameters()}:
                self.upper = upper

    def __call__(self, items: Sequence[Item]) -> torch.Tensor:
        """LuminaError when a gradient is not finite."""
        batch = self.generator.collate(items)
        grads = (per_example_gradients(self.module, self.order, batch) if self.upper is None
                 else self.split(self.upper, batch))
        if not torch.isfinite(grads).all():
            raise LuminaError(f"non-finite gradient in a batch of {len(items)} items")
        return grads

    def split(self, upper: Upper, batch: Batch) -> torch.Tensor:
        """`vmap(grad)` of each example's loss from the cut upward, its lower pass batched (B, D)."""
        n = next(iter(batch.values())).shape[0]
        with torch.no_grad():
            lower = upper.split.lower(batch)
        dims = tree_map(lambda t: 0 if isinstance(t, torch.Tensor) and t.ndim and t.shape[0] == n else None, lower)
        params = {name: p.detach() for name, p in self.module.named_parameters() if name in set(self.order)}

        def loss(params: dict[str, torch.Tensor], lower: Any, batch: Batch) -> torch.Tensor:
            one = tree_map(lambda t: t.unsqueeze(0) if isinstance(t, torch.Tensor) else t, (lower, batch))
            return functional_call(upper, params, one)[0]

        with torch.no_grad(), warnings.catch_warnings():  # as per_example_gradients
            warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented")
            grads = vmap(grad(loss), in_dims=(None, dims, 0))(params, lower, batch)
        return torch.cat([grads[name].reshape(n, -1) for name in self.order], dim=1).float()


def query_side(differentiate: Differentiate, visit: Visit, columns: Columns, queries: Sequence[Item],
               order: Sequence[np.ndarray], path: Path, *, desc: str, progress: bool) -> list[torch.Tensor | None]:
    """The query gradients each `Inner` request holds (Q, D_request; None for the other requests), with the query
    rows of every request saved to `path` when not there yet (`Inner`: the query norms). Only the requests' own
    columns are kept: Q × D_request each, never Q × the union."""
    inner: dict[int, torch.Tensor] = {}  # `Inner` requests: the query gradients, held
    rows: dict[int, np.ndarray] = {}  # `Raw` and `Compression` requests: the query rows, saved
    for index in tqdm(order, desc=desc, disable=not progress, unit="batch"):
        grads = differentiate([queries[i] for i in index])
        for j, request in enumerate(visit.requests):
            if isinstance(request, Inner):
                part = chosen(columns, request, grads)
                if j not in inner:
                    inner[j] = part.new_empty((len(queries), part.shape[1]))
                inner[j][torch.as_tensor(index, device=part.device)] = part
            else:
                batch_rows = to_numpy(reduce(visit, j, columns, grads, []))
                rows.setdefault(j, np.empty((len(queries), batch_rows.shape[1]), dtype=batch_rows.dtype))[index] = (
                    batch_rows)
    if not path.exists():
        saved = {**{f"r{j}": to_numpy(held.norm(dim=1)) for j, held in inner.items()},
                 **{f"r{j}": r for j, r in rows.items()}}
        with atomic_path(path) as tmp:
            np.savez(tmp, **saved)
    return [inner.get(j) for j in range(len(visit.requests))]


def chosen(columns: Columns, request: Inner | Raw, grads: torch.Tensor) -> torch.Tensor:
    """The columns of `request`'s parameters in a batch's per-example gradients (B, D) → (B, D_request)."""
    cols = columns.index(request.names)
    return grads if cols is None else grads[:, cols.to(grads.device)]


def reduce(visit: Visit, j: int, columns: Columns, grads: torch.Tensor, held: Sequence[torch.Tensor | None]
           ) -> torch.Tensor:
    """Request `j`'s rows of a batch's per-example gradients (B, D): `Inner` its dots with the held query gradients
    and its norms (B, Q + 1), `Raw` the gradients (B, D_request), `Compression` dattri's first compression stage
    (B, Σ_l k₁k₂; the second, `block_projected.projected_rows`, runs once over every row after the pass)."""
    request = visit.requests[j]
    if isinstance(request, Compression):
        setup = visit.setups[j]
        return sparsified_rows(setup, columns.views(grads, compressed_parameters(setup)))
    rows = chosen(columns, request, grads)
    if isinstance(request, Raw):
        return rows
    query_grads = held[j]
    if query_grads is None:
        raise LuminaError("inner products asked for before the query gradients were taken")
    return dots_and_norms(rows, query_grads)


def assemble(visit: Visit, order: Sequence[np.ndarray], files: Sequence[Path], query_file: Path, n: int
             ) -> list[InnerRows | SplitRows]:
    """Every request's rows of a visit, in item order, from its cached batch files."""
    train: dict[str, np.ndarray] = {}
    for index, path in zip(order, files, strict=True):
        with np.load(path) as batch:
            for name in batch.files:
                rows = batch[name]
                train.setdefault(name, np.empty((n, *rows.shape[1:]), dtype=rows.dtype))[index] = rows
    with np.load(query_file) as loaded:
        query_rows = {name: loaded[name] for name in loaded.files}
    out: list[InnerRows | SplitRows] = []
    for j, request in enumerate(visit.requests):
        rows = train[f"r{j}"]
        if isinstance(request, Inner):
            out.append(InnerRows(rows[:, :-1], rows[:, -1], query_rows[f"r{j}"]))
        else:
            out.append(SplitRows(rows, query_rows[f"r{j}"]))
    return out
