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
    train_key, query_key = item_key(train), item_key(queries)
    per_checkpoint = []
    for c in range(len(weights)):
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
            per_checkpoint.append(projected_inner(t_grads, q_grads, generator.device, proj_dim, proj_seed, c))
        else:
            q_feat = q_grads.to(generator.device)
            rows = example_rows(
                generator, names, train, lambda g, q=q_feat: dots_and_norms(g, q),
                where / f"train-dots-{train_key}-{query_key}",
                batch_size=batch_size, desc=f"training gradients {tag}", progress=progress,
            )
            per_checkpoint.append((rows[:, :-1], rows[:, -1], to_numpy(q_feat.norm(dim=1))))
    return weighted_sum(per_checkpoint, weights, normalize=normalize)


def dots_and_norms(grads: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """A batch's raw reduction: inner products of its gradients (B, D) with the query gradients (Q, D), and the
    gradients' norms, side by side (B, Q + 1)."""
    return torch.cat([grads @ queries.T, grads.norm(dim=1, keepdim=True)], 1)


def projected_inner(t_grads: torch.Tensor, q_grads: torch.Tensor, device: torch.device, proj_dim: int,
                    proj_seed: int, ensemble_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training (N, D) and query (Q, D) gradients projected together with dattri's ensemble `ensemble_id` on
    `device`: inner products (N, Q), training norms (N,) and query norms (Q,) of the features."""
    features = project(torch.cat([t_grads, q_grads]).to(device), proj_dim, proj_seed, ensemble_id=ensemble_id)
    t_feat, q_feat = features[: len(t_grads)], features[len(t_grads):]
    return to_numpy(t_feat @ q_feat.T), to_numpy(t_feat.norm(dim=1)), to_numpy(q_feat.norm(dim=1))


def weighted_sum(per_checkpoint: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], weights: Sequence[float], *,
                 normalize: bool = False) -> np.ndarray:
    """Σ_c w_c · dots_c (N, Q), each checkpoint's dots divided by the training (N,) and query (Q,) norms first when
    `normalize` (Grad-Cos); float64 sum, float32 result."""
    total = np.zeros(per_checkpoint[0][0].shape, dtype=np.float64)
    for (dots, t_norm, q_norm), weight in zip(per_checkpoint, weights, strict=True):
        if normalize:
            dots = dots / np.maximum(t_norm, 1e-12)[:, None] / np.maximum(q_norm, 1e-12)[None, :]
        total += weight * dots
    return total.astype(np.float32)
