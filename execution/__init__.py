"""How the harness's work runs: one ordered parallel map for every parallel stage (corpus rendering, feature
extraction, embedding, subset retraining). Imports nothing from `lumina`, `aria` or `groundtruth`, so each
of them can use it."""

from execution.parallel import parallel_map

__all__ = ["parallel_map"]
