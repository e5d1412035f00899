"""One parallel map for every parallel stage of the harness.

`parallel_map(fn, items, workers=W)` yields `fn(item)` for each item, in the order of `items`, computed in
`W` spawned worker processes (in this process when `W <= 1`). Results stream back as they are ready, with at
most `2 W` calls queued ahead of the consumer, so a consumer that stops early (or an interrupt) wastes little;
each task should write its own result to disk before returning when the stage must resume after a crash.

`fn` and the items must be picklable (a module-level function; a `functools.partial` of one for fixed
arguments). `initializer(*initargs)` runs once in each worker before its first task (e.g. to load a model
once per process); with `W <= 1` it runs once in this process.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int = 1,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
) -> Iterator[R]:
    """Ordered, lazy `map(fn, items)` over `workers` spawned processes (in-process when `workers <= 1`)."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, items)
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
