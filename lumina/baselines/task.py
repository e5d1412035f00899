"""The LM as dattri sees it: a module computing the teacher-forcing loss, dattri's `AttributionTask` on it,
which parameters the gradients cover, and which checkpoints they are taken at.

`TeacherForcing` holds the generator's decoder and text projection — the same parameter objects under the
same names as `Generator.lm_parameters()` — so `torch.func.functional_call` can swap its parameters and
dattri's per-example gradients (`vmap(grad(loss))`) run on it. Its cross-attention mask is passed as an
explicit 4-D mask, which transformers uses as is: the 2-D mask path inspects the mask's values, which
`vmap` cannot do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import torch
from dattri.task import AttributionTask
from safetensors.torch import load_file
from torch import nn
from torch.func import functional_call

from lumina.errors import ParameterError
from lumina.generator.teacher_forcing import masked_cross_entropy

PARAMETER_GROUPS = ("all", "layers", "self_attn", "cross_attn", "cross_attn_kv")
"""Named parameter choices: every LM parameter; every parameter of the transformer layers; their self-attention,
cross-attention, or cross-attention key/value projections (seed 004's Table 1 target layers)."""


class TeacherForcing(nn.Module):
    """The LM under teacher forcing: `forward(inputs, targets, valid, states, text_mask)` → loss per clip (B,)."""

    def __init__(self, generator) -> None:
        super().__init__()
        self.decoder = generator.model.decoder
        self.enc_to_dec_proj = getattr(generator.model, "enc_to_dec_proj", None)

    def forward(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        valid: torch.Tensor,
        states: torch.Tensor,
        text_mask: torch.Tensor,
    ) -> torch.Tensor:
        b, k, s = inputs.shape
        condition = self.enc_to_dec_proj(states) if self.enc_to_dec_proj is not None else states
        condition = condition * text_mask[..., None].to(condition.dtype)
        attend = text_mask[:, None, None, :].expand(b, 1, s, text_mask.shape[-1])
        out = self.decoder(
            input_ids=inputs.reshape(b * k, s), encoder_hidden_states=condition, encoder_attention_mask=attend,
            use_cache=False,
        )
        return masked_cross_entropy(out.logits.reshape(b, k, s, -1), targets, valid)


class LossOutput(NamedTuple):
    loss: torch.Tensor


class MeanTeacherForcing(TeacherForcing):
    """The same module returning `.loss` = the batch mean, the model output dattri's LoGra and FactGraSS read."""

    def forward(self, **batch: torch.Tensor) -> LossOutput:  # type: ignore[override]
        return LossOutput(super().forward(**batch).mean())


def example_loss(module: TeacherForcing) -> Callable[[dict[str, torch.Tensor], tuple], torch.Tensor]:
    """dattri's `loss_func(params, data)`: the loss of one unbatched example under the parameters `params`."""

    def loss_func(params: dict[str, torch.Tensor], data: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return functional_call(module, params, tuple(x.unsqueeze(0) for x in data))[0]

    return loss_func


def load_weights(module: nn.Module, checkpoint: dict[str, torch.Tensor] | str | Path) -> nn.Module:
    """dattri's `checkpoints_load_func`: LM weights (a state dict, or an intermediate checkpoint folder)."""
    state = load_file(str(Path(checkpoint) / "lm.safetensors")) if isinstance(checkpoint, (str, Path)) else checkpoint
    missing = set(state) - set(dict(module.named_parameters()))
    if missing:
        raise ParameterError(f"checkpoint holds parameters the LM lacks: {sorted(missing)[:3]}")
    module.load_state_dict(state, strict=False)
    return module.eval()


def make_task(module: TeacherForcing, checkpoints: Sequence[dict | str | Path]) -> AttributionTask:
    """dattri's task: the per-example teacher-forcing loss over `checkpoints` (loaded into `module` in place)."""
    return AttributionTask(
        loss_func=example_loss(module), model=module, checkpoints=list(checkpoints), checkpoints_load_func=load_weights
    )


def lm_state(generator) -> dict[str, torch.Tensor]:
    """A copy of the LM weights (the state to restore after visiting other checkpoints)."""
    return {n: p.detach().clone() for n, p in generator.lm_parameters().items()}


@contextmanager
def restored(generator) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block the LM weights may change (checkpoints, unlearning); they are put back after."""
    state = lm_state(generator)
    try:
        yield state
    finally:
        with torch.no_grad():
            for name, param in generator.lm_parameters().items():
                param.copy_(state[name])


def training_checkpoints(generator) -> list[tuple[Path, float]]:
    """The saved intermediate checkpoints (folder, learning rate), in training order (TracIn)."""
    saved = generator.record.get("checkpoints", [])
    if not saved or not generator.source:
        raise ParameterError(
            f"{generator.source or 'this generator'} records no intermediate checkpoints; TracIn needs the "
            "embedded model's training checkpoints (model.train.checkpoints > 0)"
        )
    return [(Path(generator.source) / c["path"], float(c["lr"])) for c in saved]


def select_parameters(generator, choice: str | Sequence[int]) -> list[str]:
    """LM parameter names for a choice: a name in `PARAMETER_GROUPS`, or decoder layer indices (negative ones
    count from the top) whose every parameter is taken."""
    names = list(generator.lm_parameters())
    if isinstance(choice, str):
        if choice not in PARAMETER_GROUPS:
            raise ParameterError(f"unknown parameter choice {choice!r}; use one of {PARAMETER_GROUPS} or layer indices")
        if choice == "all":
            return names
        prefixes = [generator.layer_prefix(layer) for layer in range(generator.num_layers)]
        parts = {
            "layers": ("",),
            "self_attn": ("self_attn.",),
            "cross_attn": ("encoder_attn.",),
            "cross_attn_kv": ("encoder_attn.k_proj.", "encoder_attn.v_proj."),
        }[choice]
        return [n for n in names if any(n.startswith(p + part) for p in prefixes for part in parts)]
    layers = sorted({int(i) % generator.num_layers for i in choice})
    if not layers or any(not -generator.num_layers <= int(i) < generator.num_layers for i in choice):
        raise ParameterError(f"layer indices {list(choice)} out of range for {generator.num_layers} layers")
    prefixes = tuple(generator.layer_prefix(layer) for layer in layers)
    return [n for n in names if n.startswith(prefixes)]


def parameter_count(generator, names: Sequence[str]) -> int:
    params = generator.lm_parameters()
    return sum(params[n].numel() for n in names)
