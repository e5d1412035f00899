"""How the harness's work runs: one ordered parallel map for every parallel stage (corpus rendering, feature
extraction, embedding, subset retraining, sharded extraction) on a local or a Ray backend, and shards that
resume. Imports nothing from `lumina`, `aria` or `groundtruth`, so each of them can use it."""

from execution.kernels import pin_kernels
from execution.parallel import ParallelOptions, configure, distributed, options, parallel_map

pin_kernels()  # numpy and torch load with AVX2 kernels on every x86-64 machine class (execution/kernels.py)

__all__ = ["ParallelOptions", "configure", "distributed", "options", "parallel_map"]
