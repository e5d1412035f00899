"""Teacher forcing (docs/generator.md#teacher-forcing-loss): the delay pattern, its validity mask and the masked
cross-entropy loss — the one definition of the loss every generator, method and ground truth uses.

Delay pattern: codebook k is shifted right by k steps, so a clip of T frames becomes S = T + K - 1 steps;
step s of codebook k holds code (k, s - k) where 0 <= s - k < length, else the special token. The LM input
is that sequence shifted right by one with the special token as start token; every code is predicted once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lumina.runs.errors import ParameterError


def delay_pattern(
    codes: torch.Tensor, special: int, lengths: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes (B, K, T) → LM inputs (B, K, S), targets (B, K, S) and valid mask (B, K, S), S = T + K - 1.

    `lengths` (B,) gives each clip's number of real frames when a batch is right-padded.
    """
    if codes.ndim != 3:
        raise ParameterError(f"codes must be (batch, codebooks, frames), got shape {tuple(codes.shape)}")
    b, k, t = codes.shape
    s = t + k - 1
    device = codes.device
    lengths = torch.full((b,), t, device=device) if lengths is None else lengths.to(device, torch.long)
    delayed = torch.full((b, k, s), special, dtype=torch.long, device=device)
    for q in range(k):
        delayed[:, q, q : q + t] = codes[:, q]
    step = torch.arange(s, device=device)[None, None, :]
    delay = torch.arange(k, device=device)[None, :, None]
    valid = (step >= delay) & (step < delay + lengths[:, None, None])
    delayed = torch.where(valid, delayed, torch.full_like(delayed, special))
    inputs = torch.cat([torch.full((b, k, 1), special, dtype=torch.long, device=device), delayed[:, :, :-1]], dim=2)
    targets = torch.where(valid, delayed, torch.zeros_like(delayed))
    return inputs, targets, valid


def masked_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    valid: torch.Tensor,
    codebook_weights: Sequence[float] | None = None,
    *,
    by_stream: bool = False,
) -> torch.Tensor:
    """The teacher-forcing loss of each clip, Σ(w_k · ce · mask) / Σ mask over its steps and codebooks, shape
    (B,), from logits (B, K, S, V); with `by_stream`, each codebook's own Σ(w_k · ce · mask) / Σ mask, (B, K).

    `codebook_weights` (K,) weight each codebook's term (LUMINA's [0.4, 1.2, 1.3, 1.4]); None = all 1.
    Definition: docs/generator.md#teacher-forcing-loss.
    """
    b, k, s, v = logits.shape
    ce = F.cross_entropy(logits.reshape(-1, v).float(), targets.reshape(-1), reduction="none").view(b, k, s)
    mask = valid.to(ce.dtype)
    if codebook_weights is not None:
        if len(codebook_weights) != k:
            raise ParameterError(f"{len(codebook_weights)} codebook weights for {k} codebooks")
        ce = ce * torch.tensor(codebook_weights, dtype=ce.dtype, device=ce.device)[None, :, None]
    if by_stream:
        return (ce * mask).sum(dim=2) / mask.sum(dim=2)
    return (ce * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2))


def pad_clips(codes: Sequence[np.ndarray], starts: Sequence[int], frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop clips (each (K, T_i)) to `frames` from `starts`, right-padding short ones: (B, K, frames), lengths (B,)."""
    k = codes[0].shape[0]
    out = np.zeros((len(codes), k, frames), dtype=np.int64)
    lengths = np.zeros(len(codes), dtype=np.int64)
    for i, (c, s) in enumerate(zip(codes, starts, strict=True)):
        piece = c[:, s : s + frames]
        out[i, :, : piece.shape[1]] = piece
        lengths[i] = piece.shape[1]
    return torch.from_numpy(out), torch.from_numpy(lengths)
