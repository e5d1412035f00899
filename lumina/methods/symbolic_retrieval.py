"""The symbolic retrieval baseline (docs/symbolic.md#the-retrieval-baseline): cosine between windows' symbolic
channel features (`aria.symbolic`), each dimension standardised over the training windows.

Settings: `features-all` (every channel's features) and `features-<channel>` (one channel's). Its rankings are
built from the very features Aria's homogeneity measures, so its homogeneity is circular by construction (high
on its own channels); it is a reference row, not evidence.
"""

from __future__ import annotations

import numpy as np

from aria.channels import SYMBOLIC
from aria.symbolic import extract_symbolic
from lumina.methods.base import RunContext
from lumina.methods.lumina.scoring import cosine_scores
from lumina.runs.score_matrix import ScoreMatrix


def standardised(vectors: dict[str, np.ndarray], names: tuple[str, ...], train: np.ndarray) -> np.ndarray:
    """The features `names` concatenated (n, D), each dimension centred and scaled by its mean and std over the
    rows `train` (a constant dimension is only centred)."""
    x = np.concatenate([vectors[name] for name in names], axis=1)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    return (x - mean) / np.where(std > 0, std, 1.0)


def run(ctx: RunContext) -> list[ScoreMatrix]:
    """`+method=symbolic`: one score matrix per channel and one over all channels."""
    manifest = ctx.manifest
    train_ids, query_ids = manifest.train_ids, manifest.query_ids
    ids = train_ids + query_ids
    table = extract_symbolic([manifest.path_of(t) for t in ids], ids, ctx.cache_dir, workers=ctx.threads,
                             progress=ctx.progress)
    train = np.arange(len(train_ids))
    groups = {"all": SYMBOLIC.features, **SYMBOLIC.channels}
    matrices = []
    for setting, names in groups.items():
        x = standardised(table.vectors, names, train)
        scores = cosine_scores(x[train], x[len(train_ids):])
        matrices.append(ScoreMatrix(
            scores=scores, segment_track=train_ids, query_ids=query_ids, method="symbolic",
            setting=f"features-{setting}", normalization="zscore",
            settings={**ctx.options.as_dict(), "features": list(names), "circular_homogeneity": True,
                      "score_sign": "positive = the window resembles the query"},
            provenance={"features": "aria.symbolic", "feature_key": table.settings.key},
        ))
    return matrices
