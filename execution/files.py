"""Writing files the one way every stage writes them: atomically (a reader, or a resumed run, never sees half a
file) and, for tables, through one Markdown writer.

    with atomic_path(path) as tmp:          # any writer that takes a path (h5py, np.save, soundfile, …)
        np.save(tmp, array)
    write_text(path, text)                  # text, atomically
    write_json(path, data)                  # indented, sorted JSON, atomically
    markdown_table(frame, columns, digits)  # a compact Markdown pipe table
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix, so writers that add one keep it) that replaces `path` (a file, or
    a folder that does not exist yet) when the block ends without an exception; the parent folder is made.
    Concurrent writers never share a temporary path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():  # a folder written in place of a file (a saved codec): nothing half-written stays
            shutil.rmtree(tmp)
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, data: object) -> Path:
    """Write `data` as indented JSON with sorted keys (values JSON cannot hold are written as strings)."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def cell(value: object, digits: int = 3) -> str:
    """A table cell: floats with `digits` decimals, NaN and infinities as —, anything else as text."""
    if isinstance(value, (float, np.floating)):
        return "—" if not np.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def markdown_table(frame: pd.DataFrame, columns: Sequence[str] | None = None, digits: int = 3,
                   empty: str = "(no rows)", right: Sequence[str] = ()) -> str:
    """`columns` of `frame` (default: all) as a compact Markdown pipe table (`cell` formats each value), the
    columns named in `right` right-aligned; `empty` when the frame has no rows. The one table writer of the
    harness: committed tables keep this exact format."""
    if frame.empty:
        return empty
    shown = frame if columns is None else frame[list(columns)]  # (column names may repeat: `Pos` per channel)
    rule = "".join("---:|" if c in right else "---|" for c in shown.columns)
    lines = ["| " + " | ".join(map(str, shown.columns)) + " |", "|" + rule]
    lines += ["| " + " | ".join(cell(value, digits) for value in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines)
