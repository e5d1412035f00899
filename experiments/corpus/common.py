"""Helpers shared by the corpus builders: plain configs, cache keys, atomic writes, an ordered worker pool."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def plain_config(cfg: Mapping) -> dict:
    """A resolved plain-dict copy of a Hydra/OmegaConf or ordinary mapping (`???` values stay as they are)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    return json.loads(json.dumps(dict(cfg), default=str))


def settings_key(settings: Mapping) -> str:
    """Short SHA-256 of the settings as canonical JSON (12 hex digits)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write_json(path: Path, data: object) -> None:
    """Write `data` as indented JSON, atomically (a reader never sees half a file)."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(partial, path)


def read_json(path: Path) -> dict:
    """The JSON object in `path`, or {} when the file is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@contextmanager
def worker_pool(threads: int) -> Iterator[Callable[..., Iterator]]:
    """Yield an ordered, lazy `imap(fn, *iterables)` running on `threads` spawned processes (in-process for
    `threads` <= 1). At most 2 × `threads` calls run ahead of the consumer, so stopping early wastes little."""
    if threads <= 1:
        yield map
        return
    pool = ProcessPoolExecutor(threads, mp_context=multiprocessing.get_context("spawn"))

    def imap(fn: Callable, *iterables: object) -> Iterator:
        pending: deque = deque()
        try:
            for args in zip(*iterables, strict=True):
                pending.append(pool.submit(fn, *args))
                if len(pending) > 2 * threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # a consumer that stops early leaves no queued calls behind
            for future in pending:
                future.cancel()

    try:
        yield imap
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
