"""GradDot, Grad-Cos and TracIn (docs/baselines.md): inner products of per-example gradients, summed over checkpoints.

    score(i, q) = Σ_c w_c · ⟨P g_i^c, P g_q^c⟩            (GradDot: one checkpoint, w = 1; TracIn: w_c = η_c)
    score(i, q) = Σ_c w_c · cos(P g_i^c, P g_q^c)         (Grad-Cos)

P is dattri's dense Gaussian projection, or the identity (`proj_dim` 0: raw gradients). This is what
dattri's `TracInAttributor` computes; the project computes it itself because dattri's attributor recomputes
every query gradient once per training batch, takes gradients through its slow flat-vector path
(`gradients`) and keeps nothing across an interruption. Here each gradient is taken once: with raw gradients
the query gradients are held and every training batch is reduced to its inner products with them as it goes
(cached per batch), so the training gradients are never stored; with projections the raw gradients are
cached per batch and projected in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lumina.methods.baselines.gradients import example_rows, item_key, project
from lumina.methods.baselines.weights import load_weights
from lumina.models.protocol import Generator, Item
from lumina.runs.device import to_numpy


def inner_product_scores(
    generator: Generator,
    names: Sequence[str],
    checkpoints: Sequence[dict | str | Path],
    weights: Sequence[float],
    train: Sequence[Item],
    queries: Sequence[Item],
    cache: Path,
    *,
    normalize: bool = False,
    proj_dim: int = 0,
    proj_seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
) -> np.ndarray:
    """Scores (N, Q) of training items against queries, gradients with respect to the LM parameters `names`.

    checkpoints: LM states or checkpoint folders, with their `weights`. Checkpoint c projects with dattri's
    ensemble id c, as dattri's TracIn does. `cache` must key the generator, parameters and checkpoints;
    below it, results are keyed by the items. The LM is left at the last checkpoint.
    """
    module = generator.loss_module()
    total = np.zeros((len(train), len(queries)), dtype=np.float64)
    train_key, query_key = item_key(train), item_key(queries)
    for c, weight in enumerate(weights):
        load_weights(module, checkpoints[c])
        where = cache / f"ckpt{c}"
        tag = f"[{c + 1}/{len(weights)}]"
        q_grads = torch.from_numpy(example_rows(  # cached only when the training gradients are (projections)
            generator, names, queries, lambda g: g, where / f"queries-{query_key}" if proj_dim > 0 else None,
            batch_size=batch_size, desc=f"query gradients {tag}", progress=progress,
        ))
        if proj_dim > 0:
            t_grads = torch.from_numpy(example_rows(
                generator, names, train, lambda g: g, where / f"train-{train_key}",
                batch_size=batch_size, desc=f"training gradients {tag}", progress=progress,
            ))
            if progress:
                print(f"projecting {len(train) + len(queries)} gradients to {proj_dim} dimensions {tag}")
            features = project(torch.cat([t_grads, q_grads]).to(generator.device), proj_dim, proj_seed, ensemble_id=c)
            t_feat, q_feat = features[: len(train)], features[len(train):]
            dots, t_norm = to_numpy(t_feat @ q_feat.T), to_numpy(t_feat.norm(dim=1))
        else:
            q_feat = q_grads.to(generator.device)
            rows = example_rows(
                generator, names, train, lambda g, q=q_feat: torch.cat([g @ q.T, g.norm(dim=1, keepdim=True)], 1),
                where / f"train-dots-{train_key}-{query_key}",
                batch_size=batch_size, desc=f"training gradients {tag}", progress=progress,
            )
            dots, t_norm = rows[:, :-1], rows[:, -1]
        if normalize:
            q_norm = to_numpy(q_feat.norm(dim=1))
            dots = dots / np.maximum(t_norm, 1e-12)[:, None] / np.maximum(q_norm, 1e-12)[None, :]
        total += weight * dots
    return total.astype(np.float32)
