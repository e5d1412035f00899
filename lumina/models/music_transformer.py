"""The symbolic generator: dattri's MusicTransformer (relative-position attention) on event windows, implementing
the generator protocol (`lumina.models.protocol.Generator`; docs/symbolic.md#the-generator).

One token stream (K = 1); the loss of a window is the mean cross-entropy of its tokens 2…T given the tokens
before (the first token is never a target, as in dattri's benchmark). Directory layout: `config.json` (the
architecture), `model.safetensors` (the state dict), `training_record.json` and `checkpoints/` (TracIn). A
checkpoint of dattri's benchmark (`models_full/<i>/model_weights_0.pt`, a torch state dict) loads through the
same class, its architecture read from the tensor shapes; nothing is downloaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from dattri.benchmark.models.MusicTransformer.music_transformer import MusicTransformer
from safetensors.torch import load_file, save_file
from torch import nn

from lumina.data.midi import END, PAD, VOCAB_SIZE, EventTokenizer
from lumina.models.protocol import (
    Batch,
    Item,
    parameter_group_names,
    recorded_checkpoints,
    weights_identity,
)
from lumina.models.teacher_forcing import masked_cross_entropy, pad_clips
from lumina.runs.device import REFERENCE, Placement
from lumina.runs.errors import CheckpointError, ParameterError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
RECORD_FILE = "training_record.json"
DATTRI_WEIGHTS = "model_weights_0.pt"
LAYER_PREFIX = "transformer.encoder.layers.{}."
PARAMETER_GROUPS = {"all": (), "layers": ("",), "self_attn": ("self_attn.",)}
"""Named parameter groups: every parameter; the transformer layers'; their self-attention (relative
embeddings included)."""
LUMINA_TENSOR_NAMES = {
    "self_attn.in_proj": ("self_attn.in_proj_weight",),
    "self_attn.out_proj": ("self_attn.out_proj.weight",),
    "linear1": ("linear1.weight",),
    "linear2": ("linear2.weight",),
}
"""LUMINA's tensors of a layer (docs/lumina.md#signatures) → dattri's parameter names; no cross-attention (the
model has no text condition)."""


@dataclass(frozen=True)
class ArchConfig:
    """The MusicTransformer's size (dattri's benchmark: 6 layers, 8 heads, d_model 512, feed-forward 1024)."""

    n_layers: int = 2
    num_heads: int = 4
    d_model: int = 128
    dim_feedforward: int = 256
    max_sequence: int = 256
    rpr: bool = True


def build_model(arch: ArchConfig, seed: int) -> MusicTransformer:
    """A randomly initialised MusicTransformer (dropout 0; deterministic from `seed`)."""
    torch.manual_seed(seed)
    model = MusicTransformer(n_layers=arch.n_layers, num_heads=arch.num_heads, d_model=arch.d_model,
                             dim_feedforward=arch.dim_feedforward, dropout=0.0, max_sequence=arch.max_sequence,
                             rpr=arch.rpr, device=REFERENCE.torch_device)
    return model.eval()


def causal_mask(steps: int, like: torch.Tensor) -> torch.Tensor:
    """Additive causal mask (S, S) on the device and in the dtype of `like`: 0 on and below the diagonal, -inf
    above."""
    return torch.triu(torch.full((steps, steps), float("-inf"), dtype=like.dtype, device=like.device), diagonal=1)


def layer_forward(layer: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """dattri's relative-attention encoder layer (post-norm) on batch-first input (B, S, D), its dropouts
    left out (the models here have none; a loaded one runs in eval mode). The attention runs sequence-first as
    dattri's does; the feed-forward batch-first, so that per-example hooks on `linear1` / `linear2` (LoGra,
    FactGraSS) see the example on the first axis."""
    s = x.transpose(0, 1)
    x = layer.norm1(x + layer.self_attn(s, s, s, attn_mask=mask)[0].transpose(0, 1))
    return layer.norm2(x + layer.linear2(torch.relu(layer.linear1(x))))


class LossOutput(NamedTuple):
    loss: torch.Tensor


class TeacherForcing(nn.Module):
    """The MusicTransformer under teacher forcing: `forward(inputs, targets, valid)` (each (B, S)) → loss per
    window (B,) (or (B, 1) with `by_stream`). Holds the model's modules under the model's own parameter names."""

    def __init__(self, model: MusicTransformer, codebook_weights: Sequence[float] | None = None,
                 by_stream: bool = False) -> None:
        super().__init__()
        self.embedding, self.positional_encoding = model.embedding, model.positional_encoding
        self.transformer, self.Wout = model.transformer, model.Wout
        self.codebook_weights = None if codebook_weights is None else tuple(float(w) for w in codebook_weights)
        self.by_stream = by_stream

    def hidden(self, inputs: torch.Tensor, stop: int | None = None) -> torch.Tensor:
        """Input of layer `stop` (B, S, D) (the output of the last layer when None, before the final norm)."""
        x = self.positional_encoding(self.embedding(inputs).permute(1, 0, 2)).permute(1, 0, 2)
        mask = causal_mask(inputs.shape[1], x)
        for layer in self.transformer.encoder.layers[:stop]:
            x = layer_forward(layer, x, mask)
        return x

    def head(self, hidden: torch.Tensor, start: int, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Loss from the input `hidden` (B, S, D) of layer `start` upward."""
        mask = causal_mask(hidden.shape[1], hidden)
        for layer in self.transformer.encoder.layers[start:]:
            hidden = layer_forward(layer, hidden, mask)
        logits = self.Wout(self.transformer.encoder.norm(hidden))
        return masked_cross_entropy(logits[:, None], targets[:, None], valid[:, None], self.codebook_weights,
                                    by_stream=self.by_stream)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(inputs, 0), 0, targets, valid)


class MeanTeacherForcing(TeacherForcing):
    """The same loss returning `.loss` = the batch mean (what dattri's LoGra hooks read)."""

    def forward(self, **batch: torch.Tensor) -> LossOutput:  # type: ignore[override]
        return LossOutput(super().forward(**batch).mean())


class LayerSplit:
    """The forward pass cut below layer `start` (`lumina.models.protocol.LayerSplit`)."""

    def __init__(self, generator: MusicTransformerGenerator, start: int) -> None:
        self.module, self.start = generator.loss_module(), start

    def lower(self, batch: Batch) -> torch.Tensor:
        with torch.no_grad():
            return self.module.hidden(batch["inputs"], self.start)

    def losses(self, lower: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.module.head(lower, self.start, batch["targets"], batch["valid"])


def teacher_forcing_batch(tokens: torch.Tensor, lengths: torch.Tensor | None = None,
                          keep: Sequence[np.ndarray | None] | None = None) -> Batch:
    """Windows (B, 1, T) right-padded to `lengths` (B,) → inputs, targets, valid (B, T - 1): token t + 1 is
    predicted from tokens 0…t; padded tokens and tokens whose `keep` entry (T,) is False are not targets."""
    if tokens.ndim != 3 or tokens.shape[1] != 1:
        raise ParameterError(f"symbolic windows must be (batch, 1, tokens), got shape {tuple(tokens.shape)}")
    b, _, t = tokens.shape
    if t < 2:
        raise ParameterError("a window needs at least 2 tokens (the first is never a target)")
    lengths = torch.full((b,), t) if lengths is None else lengths.to(torch.long)
    seq = tokens[:, 0].clone()
    valid = torch.arange(1, t)[None, :] < lengths[:, None]
    seq[:, 1:][~valid] = PAD
    for i, kept in enumerate(keep or []):
        if kept is not None:
            padded = np.zeros(t, dtype=bool)
            padded[: len(kept)] = kept
            valid[i] &= torch.from_numpy(padded)[1:]
    return {"inputs": seq[:, :-1], "targets": torch.where(valid, seq[:, 1:], torch.zeros_like(seq[:, 1:])),
            "valid": valid}


class MusicTransformerGenerator:
    """dattri's MusicTransformer and the event tokenizer: the symbolic implementation of the generator protocol."""

    def __init__(self, model: MusicTransformer, record: dict | None = None, source: str = "") -> None:
        self.model = model.eval()
        self.codec = EventTokenizer()
        self.record = record or {}
        self.source = source

    @property
    def num_layers(self) -> int:
        return len(self.model.transformer.encoder.layers)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def place(self, placement: Placement) -> MusicTransformerGenerator:
        """Move the model to the placement's device and dtype, in place (dattri's `device` attribute too).
        Returns self."""
        self.model.to(device=placement.torch_device, dtype=placement.torch_dtype)
        self.model.device = placement.torch_device
        return self

    def arch(self) -> ArchConfig:
        return ArchConfig(n_layers=self.num_layers, num_heads=self.model.nhead, d_model=self.model.d_model,
                          dim_feedforward=self.model.d_ff, max_sequence=self.model.max_seq, rpr=self.model.rpr)

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return dict(self.model.named_parameters())

    def parameter_depth(self, name: str) -> int:
        match = re.match(r"transformer\.encoder\.layers\.(\d+)\.", name)
        if match:
            return int(match.group(1))
        return self.num_layers if name.startswith(("transformer.encoder.norm.", "Wout.")) else -1

    def parameter_group(self, choice: str | Sequence[int]) -> list[str]:
        return parameter_group_names(self.trainable_parameters(), LAYER_PREFIX.format, self.num_layers,
                                     PARAMETER_GROUPS, choice)

    def lumina_tensors(self, layer: int) -> dict[str, list[str]]:
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"layer {layer} out of range for a {self.num_layers}-layer model")
        prefix = LAYER_PREFIX.format(layer)
        return {tensor: [prefix + part for part in parts] for tensor, parts in LUMINA_TENSOR_NAMES.items()}

    def output_heads(self) -> list[str]:
        return ["Wout.weight"]

    def checkpoints(self) -> list[tuple[Path, float]]:
        return recorded_checkpoints(self.record, self.source)

    def collate(self, items: Sequence[Item]) -> Batch:
        steps = max(item.frames for item in items)
        tokens, lengths = pad_clips([item.tokens for item in items], [0] * len(items), steps)
        batch = teacher_forcing_batch(tokens, lengths, [item.keep for item in items])
        return {name: t.to(self.device) for name, t in batch.items()}

    def loss_module(self, *, mean: bool = False, codebook_weights: Sequence[float] | None = None,
                    by_stream: bool = False) -> TeacherForcing:
        return (MeanTeacherForcing if mean else TeacherForcing)(self.model, codebook_weights, by_stream)

    def clip_losses(self, tokens: torch.Tensor, texts: Sequence[str], *, lengths: torch.Tensor | None = None,
                    codebook_weights: Sequence[float] | None = None, by_stream: bool = False) -> torch.Tensor:
        """Loss of each window (B,) of `tokens` (B, 1, T); `texts` are ignored (no text condition)."""
        batch = teacher_forcing_batch(tokens.cpu(), None if lengths is None else lengths.cpu())
        return self.loss_module(codebook_weights=codebook_weights, by_stream=by_stream)(
            **{name: t.to(self.device) for name, t in batch.items()})

    def layer_split(self, layer: int) -> LayerSplit:
        if not 0 <= layer <= self.num_layers:
            raise ParameterError(f"layer {layer} out of range for a {self.num_layers}-layer model")
        return LayerSplit(self, layer)

    def identity(self) -> str:
        return weights_identity(self.codec, self.model)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in self.model.state_dict().items()}, str(path / WEIGHTS_FILE))
        (path / CONFIG_FILE).write_text(json.dumps({"kind": "musictransformer", **asdict(self.arch())}, indent=1))
        self.record = {**self.record, "identity": self.identity()}
        (path / RECORD_FILE).write_text(json.dumps(self.record, indent=1, default=str))
        return path

    @classmethod
    def load(cls, path: str | Path, placement: Placement = REFERENCE) -> MusicTransformerGenerator:
        """A directory saved by `save`, or dattri's benchmark layout (a folder holding `model_weights_0.pt`, or
        that file), onto `placement`: weights load with safetensors or `torch.load(weights_only=True)`."""
        path = Path(path).expanduser()
        if (path / CONFIG_FILE).exists() and (path / WEIGHTS_FILE).exists():
            config = json.loads((path / CONFIG_FILE).read_text())
            arch = ArchConfig(**{k: v for k, v in config.items() if k != "kind"})
            state = load_file(str(path / WEIGHTS_FILE))
            record = json.loads((path / RECORD_FILE).read_text()) if (path / RECORD_FILE).exists() else {}
        else:
            weights = path if path.is_file() else path / DATTRI_WEIGHTS
            if not weights.is_file():
                raise CheckpointError(f"{path}: neither a saved MusicTransformer directory ({CONFIG_FILE} + "
                                      f"{WEIGHTS_FILE}) nor dattri's layout (a folder with {DATTRI_WEIGHTS})")
            try:
                state = torch.load(weights, map_location=REFERENCE.torch_device, weights_only=True)
            except Exception as err:  # a pickle with code, or a corrupt file
                raise CheckpointError(f"{weights}: cannot load the weights safely ({err})") from None
            arch, record = dattri_arch(state, weights), {}
        model = build_model(arch, 0)
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise CheckpointError(f"{path}: the weights do not fit a MusicTransformer ({err})") from None
        return cls(model, record, source=str(path.resolve())).place(placement)


def dattri_arch(state: Mapping[str, torch.Tensor], where: Path) -> ArchConfig:
    """The architecture of a dattri MusicTransformer state dict, read from its tensor shapes."""
    try:
        layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"transformer\.encoder\.layers\.(\d+)\.", k)))
        d_model = int(state["embedding.weight"].shape[1])
        ff = int(state["transformer.encoder.layers.0.linear1.weight"].shape[0])
        er = state.get("transformer.encoder.layers.0.self_attn.Er")
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{where}: not a dattri MusicTransformer state dict ({err})") from None
    if int(state["embedding.weight"].shape[0]) != VOCAB_SIZE:
        raise CheckpointError(f"{where}: vocabulary of {state['embedding.weight'].shape[0]}, expected {VOCAB_SIZE}")
    if er is None:
        raise CheckpointError(f"{where}: a MusicTransformer without relative attention (rpr) is not supported")
    return ArchConfig(n_layers=layers, num_heads=d_model // int(er.shape[1]), d_model=d_model, dim_feedforward=ff,
                      max_sequence=int(er.shape[0]), rpr=True)


@dataclass(frozen=True)
class MusicTransformerConfig:
    """Architecture and recipe of the trained symbolic generator (Hydra group `model`, musictransformer.yaml)."""

    arch: ArchConfig = field(default_factory=ArchConfig)
    train: dict = field(default_factory=dict)
    seed: int = 0

    @classmethod
    def from_dict(cls, options: Mapping) -> MusicTransformerConfig:
        return cls(arch=ArchConfig(**options.get("arch", {})), train=dict(options.get("train", {})),
                   seed=int(options.get("seed", 0)))


@torch.no_grad()
def sample(generator: MusicTransformerGenerator, primer: np.ndarray, length: int, seed: int,
           temperature: float = 1.0) -> np.ndarray:
    """Events (length,) sampled from the model after `primer` (P,), token by token (END and PAD excluded),
    from a generator seeded with `seed`."""
    rng = torch.Generator().manual_seed(seed)
    module = generator.loss_module()
    tokens = torch.as_tensor(np.asarray(primer, dtype=np.int64))[None].to(generator.device)
    while tokens.shape[1] < length:
        hidden = module.transformer.encoder.norm(module.hidden(tokens))
        logits = module.Wout(hidden[0, -1])[:END].float().cpu() / temperature  # drawn on the CPU: same bits
        token = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=rng)
        tokens = torch.cat([tokens, token[None].to(tokens.device)], dim=1)
    return tokens[0].cpu().numpy()
