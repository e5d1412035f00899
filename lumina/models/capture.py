"""Gradient capture with a truncated backward (docs/generator.md#gradient-capture).

Only the captured parameters require gradients while the loss is built, so autograd records nothing below
the lowest captured layer: parameters not captured get no gradient and cost no work.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from lumina.models.protocol import Generator
from lumina.runs.errors import GradientError, ParameterError

LUMINA_TENSORS = (
    "self_attn.in_proj",
    "self_attn.out_proj",
    "cross_attention.in_proj",
    "cross_attention.out_proj",
    "linear1",
    "linear2",
)
"""The six tensors of a layer in LUMINA's order (docs/lumina.md#signatures), by their audiocraft names; each
generator maps them to its parameters (`Generator.lumina_tensors`)."""


def stack_tensor(grads: dict[str, torch.Tensor], names: Sequence[str]) -> torch.Tensor:
    """The gradient of one LUMINA tensor: its parts' gradients stacked along rows."""
    return torch.cat([grads[n] for n in names], dim=-2) if len(names) > 1 else grads[names[0]]


@contextmanager
def only_requiring_grad(model: torch.nn.Module, names: Sequence[str]) -> Iterator[list[torch.nn.Parameter]]:
    """Within the block, exactly the parameters `names` require grad; the previous flags are restored after."""
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise ParameterError(f"no such parameters: {missing[:3]}")
    before = {n: p.requires_grad for n, p in params.items()}
    try:
        for p in params.values():
            p.requires_grad_(False)
        selected = [params[n] for n in names]
        for p in selected:
            p.requires_grad_(True)
        yield selected
    finally:
        for n, p in params.items():
            p.requires_grad_(before[n])


def capture_gradients(
    generator: Generator,
    codes: torch.Tensor,
    texts: Sequence[str],
    names: Sequence[str],
    *,
    lengths: torch.Tensor | None = None,
    codebook_weights: Sequence[float] | None = None,
) -> dict[str, torch.Tensor]:
    """Gradients of the mean teacher-forcing loss of a batch (codes (B, K, T)) for the parameters `names`.

    Raises GradientError when a gradient is not finite (the audio or the model is broken, not the method).
    """
    with only_requiring_grad(generator.loss_module(), names) as params, torch.enable_grad():
        loss = generator.clip_losses(codes, texts, lengths=lengths, codebook_weights=codebook_weights).mean()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    out = {}
    for name, param, grad in zip(names, params, grads, strict=True):
        grad = torch.zeros_like(param) if grad is None else grad.detach()
        if not torch.isfinite(grad).all():
            raise GradientError(f"non-finite gradient for {name} (loss {float(loss.detach()):.4g})")
        out[name] = grad
    return out


def per_clip_gradients(
    generator: Generator,
    codes: torch.Tensor,
    texts: Sequence[str],
    names: Sequence[str],
    *,
    lengths: torch.Tensor | None = None,
    codebook_weights: Sequence[float] | None = None,
) -> dict[str, torch.Tensor]:
    """Per-clip gradients, each of shape (B, *param.shape), one truncated backward per clip."""
    rows = [
        capture_gradients(
            generator, codes[i : i + 1], [texts[i]], names,
            lengths=None if lengths is None else lengths[i : i + 1], codebook_weights=codebook_weights,
        )
        for i in range(codes.shape[0])
    ]
    return {n: torch.stack([r[n] for r in rows]) for n in names}


def count_autograd_nodes(tensor: torch.Tensor) -> int:
    """Number of distinct autograd nodes reachable from `tensor`'s grad_fn (the work a backward does)."""
    seen: set[int] = set()
    stack = [tensor.grad_fn] if tensor.grad_fn is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(nxt for nxt, _ in node.next_functions if nxt is not None)
    return len(seen)
