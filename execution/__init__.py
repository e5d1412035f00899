"""How the harness's work runs: one ordered parallel map for every parallel stage (corpus rendering, feature
extraction, embedding, subset retraining, sharded extraction) on a local or a Ray backend, and shards that
resume. Imports nothing from `lumina`, `aria` or `groundtruth`, so each of them can use it."""

from execution.parallel import ParallelOptions, configure, distributed, options, parallel_map

__all__ = ["ParallelOptions", "configure", "distributed", "options", "parallel_map"]
