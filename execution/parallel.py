"""One parallel map for every parallel stage of the harness, on one of two backends (docs/execution.md).

`parallel_map(fn, items, workers=W)` yields `fn(item)` for each item, in the order of `items`. Results stream
back as they are ready, with a bounded number of calls queued ahead of the consumer, so a consumer that stops
early (or an interrupt) wastes little; each task should write its own result to disk before returning when the
stage must resume after a crash.

Backends (`configure(ParallelOptions(...))`, the `parallel` config group; `local` until configured):

- `local`: `W` spawned worker processes (in this process when `W <= 1`).
- `ray`: one Ray task per item, each requesting `cpus` CPUs and `gpus` GPUs; how many run at once is what the
  cluster's resources allow (`W` is not used). The cluster is the one at `address`, or a local one started
  on first use with `cpus` CPUs (default: the `threads` setting). A task whose worker process dies is run
  again (`max_retries` times); an exception raised by `fn` is not retried and reaches the caller.

`fn` and the items must be picklable (a module-level function; a `functools.partial` of one for fixed
arguments). `initializer(*initargs)` runs once in each worker process before its first task of this map
(e.g. to load a model once per process); with `W <= 1` on the local backend it runs once in this process.
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BACKENDS = ("local", "ray")
PROJECT_ROOT = str(Path(__file__).resolve().parents[1])
"""Put first on the module path of the workers of a local Ray cluster, so that they import this checkout."""


@dataclass(frozen=True)
class ParallelOptions:
    """How parallel stages run (conf/parallel/*.yaml)."""

    backend: str = field(default="local", metadata={"help": "local (worker processes) or ray (Ray tasks)"})
    address: str | None = field(default=None, metadata={
        "help": "ray: the cluster to join ('auto' or host:port); null starts a local cluster"})
    cpus: int | None = field(default=None, metadata={
        "help": "ray: CPUs of the local cluster started when address is null (null: the threads setting)"})
    gpus_per_task: float = field(default=0.0, metadata={
        "help": "ray: GPUs each model stage's task requests (subset training, sharded extraction)"})
    workers: int = field(default=1, metadata={
        "help": "local: worker processes of the sharded extractions (LUMINA signatures, per-example gradients), "
                "each with the caller's torch threads; 1 extracts in the calling process"})
    shard_size: int = field(default=8, metadata={
        "help": "items per shard of a sharded extraction (tracks for LUMINA, examples for the gradient methods)"})
    max_retries: int = field(default=3, metadata={"help": "ray: runs of a task again after its worker died"})

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"parallel.backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.shard_size < 1 or self.max_retries < 0 or self.workers < 1:
            raise ValueError(f"parallel.shard_size and parallel.workers must be >= 1 and max_retries >= 0, got "
                             f"{self.shard_size}, {self.workers}, {self.max_retries}")


_OPTIONS = ParallelOptions()


def configure(options: ParallelOptions) -> None:
    """Set the backend of every later `parallel_map` in this process."""
    global _OPTIONS
    _OPTIONS = options


def options() -> ParallelOptions:
    """The configured backend options."""
    return _OPTIONS


def distributed() -> bool:
    """Whether stages that can shard their work over tasks should: on the `ray` backend, or on the local one with
    `workers` > 1 (shards in that many worker processes)."""
    return _OPTIONS.backend == "ray" or _OPTIONS.workers > 1


def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int = 1,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
    cpus: float = 1.0,
    gpus: float = 0.0,
    first_here: bool = False,
) -> Iterator[R]:
    """Ordered, lazy `map(fn, items)` on the configured backend (local: `workers` spawned processes,
    in-process when `workers <= 1`; ray: one task per item requesting `cpus` CPUs and `gpus` GPUs).

    first_here: run the first item in this process before any worker starts (local backend). For stages whose
    code numba compiles on first use (librosa): numba's on-disk cache is not safe when two processes compile
    the same function at once (two workers on a cold cache wrote an entry that made every later process
    segfault), so the first item compiles and caches, and the workers only read."""
    items = list(items)
    if _OPTIONS.backend == "ray":
        return _ray_map(fn, items, initializer, initargs, cpus, gpus)
    return _local_map(fn, items, workers, initializer, initargs, first_here)


def _local_map(fn: Callable, items: list, workers: int, initializer: Callable | None, initargs: tuple,
               first_here: bool = False) -> Iterator:
    if workers <= 1 or len(items) <= 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, items)
        return
    if first_here:
        if initializer is not None:
            initializer(*initargs)
        yield fn(items[0])
        items = items[1:]
        if not items:
            return
    context = multiprocessing.get_context("spawn")
    workers = min(workers, len(items))
    with ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs) as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # a consumer that stops early leaves no queued calls behind
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


def ray_cluster() -> Any:
    """The `ray` module, connected: to `address` when set, else to a local cluster of `cpus` CPUs started now
    (its workers import this checkout first and inherit this process's environment)."""
    import ray

    if not ray.is_initialized():
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
            p for p in (PROJECT_ROOT, os.environ.get("PYTHONPATH")) if p)}}
        if _OPTIONS.address:
            ray.init(address=_OPTIONS.address, log_to_driver=False)
        else:
            ray.init(num_cpus=_OPTIONS.cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                     runtime_env=runtime_env)
    return ray


_INITIALISED: set[str] = set()
"""Maps whose initializer already ran in this worker process."""


def _ray_task(key: str, setup: list, fn: Callable, item: Any) -> Any:
    """What a Ray task runs: the map's initializer once per worker process, then `fn(item)`. `setup` holds the
    reference to (initializer, initargs), nested so that Ray does not fetch it for every task: it is fetched only
    by a worker's first task of the map (initargs may hold a model's weights)."""
    if key not in _INITIALISED:
        import ray

        initializer, initargs = ray.get(setup[0])
        if initializer is not None:
            initializer(*initargs)
        _INITIALISED.add(key)
    return fn(item)


def _ray_map(fn: Callable, items: list, initializer: Callable | None, initargs: tuple, cpus: float,
             gpus: float) -> Iterator:
    if not items:
        return
    ray = ray_cluster()
    task = ray.remote(_ray_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=_OPTIONS.max_retries,
                                         retry_exceptions=False)
    key, setup, function = uuid.uuid4().hex, [ray.put((initializer, initargs))], ray.put(fn)
    slots = max(1, int(ray.cluster_resources().get("CPU", 1) // max(cpus, 1e-3)))
    pending: deque = deque()
    try:
        for item in items:
            pending.append(task.remote(key, setup, function, item))
            if len(pending) > 2 * slots:
                yield ray.get(pending.popleft())
        while pending:
            yield ray.get(pending.popleft())
    finally:  # a consumer that stops early leaves no queued tasks behind
        for ref in pending:
            ray.cancel(ref, force=True)
