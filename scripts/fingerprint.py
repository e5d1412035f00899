"""Fingerprint of a harness's outputs, for checking that a refactor changed no number.

    python scripts/fingerprint.py OUTPUTS [OUTPUTS_AFTER]

With one folder: prints, per file, a SHA-256 of its numbers — every `scores.h5` matrix (its `scores`, and the text
of its `segment_track`, `query_ids` and `segment_start_s`), every generated query's audio, and every CSV (the
columns present in both, command lines, paths and timings dropped). Run-folder files pair up by corpus name,
model name, method and setting, so run folders keyed otherwise (seed, catalogue, generated queries) still
compare. With two folders: compares them file by file and, where a matrix differs, prints the largest
absolute difference relative to the matrix's largest score.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import h5py  # noqa: E402, I001
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lumina.runs.layout import experiment_group  # first: pins the numeric kernels before numpy loads

CATALOGUE_KEY = re.compile(r"-[0-9a-f]{8}-")
DROP = {"command", "seconds", "wall_seconds", "path", "folder", "run", "study", "model_path"}


def file_key(path: Path, root: Path) -> str:
    """A file's path under `root`, a run folder's file as `runs/<data>-<model>/<method>/<setting>/<file>`: run
    folders pair up across versions that key their experiments otherwise (seed, catalogue and generated keys)."""
    parts = list(path.relative_to(root).parts)
    if parts[0] == "runs" and len(parts) == 5:
        parts[1] = CATALOGUE_KEY.sub("-", experiment_group(parts[1]))
    return "/".join(parts)


def table_of(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    return table[[c for c in table.columns if c not in DROP]]


def fingerprints(root: Path) -> dict[str, tuple[str, Path]]:
    """Name → (digest, file) of every matrix, generated clip and CSV under `root`."""
    out = {}
    for path in sorted(root.rglob("scores.h5")):
        with h5py.File(path, "r") as f:
            h = hashlib.sha256(np.ascontiguousarray(f["scores"][()]).tobytes())
            for name in ("segment_track", "query_ids", "segment_start_s"):  # their text, not object pointers
                h.update("\n".join(map(str, f[name][()].tolist())).encode())
        out[file_key(path, root)] = (h.hexdigest()[:16], path)
    for path in sorted(root.rglob("q_generated_*.wav")):
        out[f"generated/{path.name}"] = (hashlib.sha256(path.read_bytes()).hexdigest()[:16], path)
    for path in sorted(root.rglob("*.csv")):
        if "cache" in path.parts or "hydra" in path.parts:
            continue
        text = table_of(path).to_csv(index=False, float_format="%.6g")
        out[file_key(path, root)] = (hashlib.sha256(text.encode()).hexdigest()[:16], path)
    return out


def compare(before: Path, after: Path) -> int:
    a, b = fingerprints(before), fingerprints(after)
    changed = 0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print(f"only in {'after' if name in b else 'before'}: {name}")
            changed += 1
        elif a[name][0] == b[name][0]:
            print(f"same    {name}")
        else:
            changed += 1
            if name.endswith(".h5"):
                with h5py.File(a[name][1]) as fa, h5py.File(b[name][1]) as fb:
                    x, y = fa["scores"][()], fb["scores"][()]
                if x.shape != y.shape:
                    print(f"DIFFERS {name}: shape {x.shape} -> {y.shape}")
                    continue
                scale = float(np.abs(x).max()) or 1.0
                print(f"DIFFERS {name}: max |diff| {np.abs(x - y).max():.3g} ({np.abs(x - y).max() / scale:.2e} "
                      "of the largest score)")
            elif name.endswith(".csv"):
                x, y = table_of(a[name][1]), table_of(b[name][1])
                numeric = [c for c in x.columns if c in y.columns and pd.api.types.is_numeric_dtype(x[c])
                           and pd.api.types.is_numeric_dtype(y[c])]
                worst = max(((np.nanmax(np.abs(x[c].to_numpy() - y[c].to_numpy())), c) for c in numeric
                             if len(x) == len(y)), default=(float("nan"), "-"))
                print(f"DIFFERS {name}: largest change {worst[0]:.3g} in column {worst[1]}")
            else:
                print(f"DIFFERS {name}")
    print(f"{len(set(a) | set(b)) - changed} identical, {changed} differ")
    return changed


if __name__ == "__main__":
    roots = [Path(p) for p in sys.argv[1:]]
    if len(roots) == 1:
        for name, (digest, _) in fingerprints(roots[0]).items():
            print(digest, name)
    else:
        sys.exit(1 if compare(*roots) else 0)
