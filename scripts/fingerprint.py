"""Fingerprint of a harness's outputs, for checking that a refactor changed no number.

    python scripts/fingerprint.py OUTPUTS [OUTPUTS_AFTER]

With one folder: prints, per file, a SHA-256 of its numbers — every `scores.h5` matrix (its `scores`,
`segment_track`, `query_ids` datasets), every leaderboard CSV and every ground-truth CSV (the columns
present in both, command lines dropped). With two folders: compares them file by file and, where a matrix
differs, prints the largest absolute difference relative to the matrix's largest score.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

DROP = {"command", "seconds", "wall_seconds", "path", "folder", "run"}


def matrix_of(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return np.asarray(f["scores"][()])


def table_of(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    return table[[c for c in table.columns if c not in DROP]]


def fingerprints(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("scores.h5")):
        with h5py.File(path, "r") as f:
            h = hashlib.sha256()
            for name in ("scores", "segment_track", "query_ids"):
                h.update(np.ascontiguousarray(f[name][()]).tobytes())
        out[str(path.relative_to(root))] = h.hexdigest()[:16]
    for path in sorted(root.rglob("*.csv")):
        if "cache" in path.parts or "hydra" in path.parts:
            continue
        text = table_of(path).to_csv(index=False, float_format="%.6g")
        out[str(path.relative_to(root))] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


def compare(before: Path, after: Path) -> int:
    a, b = fingerprints(before), fingerprints(after)
    changed = 0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print(f"only in {'after' if name in b else 'before'}: {name}")
            changed += 1
        elif a[name] != b[name]:
            changed += 1
            if name.endswith(".h5"):
                x, y = matrix_of(before / name), matrix_of(after / name)
                if x.shape != y.shape:
                    print(f"DIFFERS {name}: shape {x.shape} -> {y.shape}")
                    continue
                scale = float(np.abs(x).max()) or 1.0
                print(f"DIFFERS {name}: max |diff| {np.abs(x - y).max():.3g} ({np.abs(x - y).max() / scale:.2e} "
                      "of the largest score)")
            else:
                x, y = table_of(before / name), table_of(after / name)
                numeric = [c for c in x.columns if c in y.columns and pd.api.types.is_numeric_dtype(x[c])]
                worst = max(((np.nanmax(np.abs(x[c].to_numpy() - y[c].to_numpy())), c) for c in numeric
                             if len(x) == len(y)), default=(float("nan"), "-"))
                print(f"DIFFERS {name}: largest change {worst[0]:.3g} in column {worst[1]}")
        else:
            print(f"same    {name}")
    print(f"{len(set(a) | set(b)) - changed} identical, {changed} differ")
    return changed


if __name__ == "__main__":
    roots = [Path(p) for p in sys.argv[1:]]
    if len(roots) == 1:
        for name, digest in fingerprints(roots[0]).items():
            print(digest, name)
    else:
        sys.exit(1 if compare(*roots) else 0)
