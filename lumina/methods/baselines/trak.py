"""TRAK (docs/baselines.md#trak): projected gradients φ = P g and score(i, q) = φ_qᵀ (ΦᵀΦ + λI)⁻¹ φ_i, averaged over an
ensemble of projections (one model) or of checkpoints (each with its own projection).

This is dattri's `TRAKAttributor` estimator (its dense Gaussian projection drawn per ensemble id, the solve in
projected space) with the output-to-loss weight Q = 1, as docs/baselines.md#trak writes the score. dattri divides
gradients by
sqrt(D) (D: number of parameters) before projecting; docs/baselines.md#trak's φ = P g does not, so
docs/baselines.md#trak's λ equals dattri's
regularization × D, and dattri run with regularization λ / D gives these scores exactly. The project
computes TRAK itself because dattri's CPU projector draws the D × k matrix again for every batch and keeps
nothing across an interruption; here each example's gradient is taken once per checkpoint (cached per batch)
and projected in one pass per ensemble member.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lumina.methods.baselines.gradients import example_rows, item_key, project
from lumina.methods.baselines.weights import load_weights
from lumina.models.protocol import Generator, Item
from lumina.runs.device import to_numpy


def trak_scores(
    train_features: Sequence[torch.Tensor], query_features: Sequence[torch.Tensor], regularization: float
) -> torch.Tensor:
    """Mean over members m of Φ_m (Φ_mᵀΦ_m + λI)⁻¹ φ_q^m: training features (N, k) and query features (Q, k)
    per member → scores (N, Q)."""
    total = torch.zeros(train_features[0].shape[0], query_features[0].shape[0], dtype=torch.float64,
                        device=train_features[0].device)
    for phi, phi_q in zip(train_features, query_features, strict=True):
        kernel = phi.T @ phi
        kernel.diagonal().add_(regularization)
        total += (phi_q @ torch.linalg.solve(kernel, phi.T)).T.double()
    return (total / len(train_features)).float()


def kernel_spectrum(features: torch.Tensor) -> np.ndarray:
    """Eigenvalues (descending) of ΦᵀΦ for training features (N, k): how λ compares with the kernel."""
    return np.linalg.svd(features.double().cpu().numpy(), compute_uv=False) ** 2


def trak(
    generator: Generator,
    names: Sequence[str],
    checkpoints: Sequence[dict | str | Path],
    members: Sequence[tuple[int, int]],
    train: Sequence[Item],
    queries: Sequence[Item],
    cache: Path,
    *,
    proj_dim: int = 2048,
    regularization: float = 0.01,
    proj_seed: int = 0,
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[np.ndarray, dict]:
    """TRAK scores (N, Q) and diagnostics, gradients with respect to the LM parameters `names`.

    members: (checkpoint index, projection ensemble id) per ensemble member — [(0, m) for m < M] ensembles
    M projections of one model, [(c, c) for each c] ensembles checkpoints. `cache` must key the generator,
    parameters and checkpoints. The LM is left at the last checkpoint visited.
    """
    module = generator.loss_module()
    train_key, query_key = item_key(train), item_key(queries)
    features = []
    for c in sorted({c for c, _ in members}):
        load_weights(module, checkpoints[c])
        grads = [
            torch.from_numpy(example_rows(
                generator, names, items, lambda g: g, cache / f"ckpt{c}" / f"{what}-{key}",
                batch_size=batch_size, desc=f"{what} gradients [checkpoint {c}]", progress=progress,
            ))
            for what, items, key in (("train", train, train_key), ("queries", queries, query_key))
        ]
        stacked = torch.cat(grads).to(generator.device)  # dattri projects on the generator's device
        features += projected_members(stacked, len(train), [e for m, e in members if m == c], proj_dim, proj_seed,
                                      desc=f"projections [checkpoint {c}]", progress=progress)
    return trak_result(features, regularization, proj_dim)


def projected_members(stacked: torch.Tensor, n_train: int, ensemble_ids: Sequence[int], proj_dim: int, proj_seed: int,
                      *, desc: str = "projections", progress: bool = True
                      ) -> list[tuple[torch.Tensor, torch.Tensor, np.ndarray]]:
    """One checkpoint's training and query gradients stacked (N + Q, D), projected with each of dattri's
    `ensemble_ids`: per member the training features Φ (N, k), the query features (Q, k) and ΦᵀΦ's spectrum."""
    out = []
    for ensemble_id in tqdm(ensemble_ids, desc=desc, disable=not progress, unit="member"):
        features = project(stacked, proj_dim, proj_seed, ensemble_id=ensemble_id)
        out.append((features[:n_train], features[n_train:], kernel_spectrum(features[:n_train])))
    return out


def trak_result(features: Sequence[tuple[torch.Tensor, torch.Tensor, np.ndarray]], regularization: float,
                proj_dim: int) -> tuple[np.ndarray, dict]:
    """TRAK scores (N, Q) over the members' (Φ, query features, spectrum), and the kernel's diagnostics."""
    spectra = [s for _, _, s in features]
    scores = to_numpy(trak_scores([p for p, _, _ in features], [q for _, q, _ in features], regularization))
    mean_eigenvalue = float(np.mean([s.sum() / proj_dim for s in spectra]))
    return scores, {
        "kernel_top_eigenvalue": float(np.mean([s[0] for s in spectra])),
        "kernel_mean_eigenvalue": mean_eigenvalue,
        "regularization_over_mean_eigenvalue": regularization / mean_eigenvalue if mean_eigenvalue > 0 else None,
    }
