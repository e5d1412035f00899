"""The audio generator under attribution: a codec plus a transformers MusicGen (text encoder + decoder LM),
implementing the generator protocol (`lumina.models.protocol`).

One directory layout for every generator: `save_pretrained` of `MusicgenForConditionalGeneration`
(config.json + model.safetensors), plus, for the embedded default, `codec/` (the embedded codec, which
replaces the checkpoint's audio encoder for encoding and decoding), `word_tokenizer.json` (the word vocabulary)
and `training_record.json`. A real MusicGen directory (musicgen-small layout) loads through the same path,
with its EnCodec and T5 tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from transformers import (
    EncodecConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    T5Config,
)
from transformers.utils import logging as hf_logging

from lumina.models.codecs import Codec, load_codec
from lumina.models.codecs.encodec import EncodecCodec
from lumina.models.protocol import (
    Batch,
    Item,
    parameter_group_names,
    recorded_checkpoints,
    weights_identity,
)
from lumina.models.teacher_forcing import delay_pattern, masked_cross_entropy, pad_clips
from lumina.models.text import PretrainedTokenizer, WordTokenizer
from lumina.runs.device import REFERENCE, Placement
from lumina.runs.errors import CheckpointError, ParameterError

CODEC_DIR = "codec"
TOKENIZER_FILE = "word_tokenizer.json"
RECORD_FILE = "training_record.json"

PARAMETER_GROUPS: dict[str, tuple[str, ...]] = {
    "all": (),
    "layers": ("",),
    "self_attn": ("self_attn.",),
    "cross_attn": ("encoder_attn.",),
    "cross_attn_kv": ("encoder_attn.k_proj.", "encoder_attn.v_proj."),
}
"""Named parameter groups: every trainable parameter; every parameter of the transformer layers; their
self-attention, cross-attention, or cross-attention key/value projections (the unlearning targets of
docs/baselines.md#fisher-regularised-unlearning), as parameter-name parts within a layer."""

LUMINA_TENSOR_NAMES: dict[str, tuple[str, ...]] = {
    "self_attn.in_proj": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "self_attn.out_proj": ("self_attn.out_proj",),
    "cross_attention.in_proj": ("encoder_attn.q_proj", "encoder_attn.k_proj", "encoder_attn.v_proj"),
    "cross_attention.out_proj": ("encoder_attn.out_proj",),
    "linear1": ("fc1",),
    "linear2": ("fc2",),
}
"""LUMINA's six tensors of a layer (docs/lumina.md#signatures; audiocraft names) → transformers' modules,
whose weights are stacked along rows. The cross-attention tensors are the audio generator's: a generator
without text conditioning gives the other four."""


@dataclass(frozen=True)
class LMConfig:
    """Architecture of the embedded MusicGen (decoder LM and its small random T5 text encoder)."""

    num_layers: int = 12
    hidden_size: int = 128
    num_heads: int = 4
    ffn_dim: int = 256
    text_hidden_size: int = 64
    text_layers: int = 2
    text_heads: int = 4
    max_frames: int = 1536


def build_musicgen(
    lm: LMConfig, *, num_codebooks: int, cardinality: int, text_vocab_size: int, seed: int
) -> MusicgenForConditionalGeneration:
    """A randomly initialised MusicGen of the given size (deterministic from `seed`).

    The special token (delay-pattern padding and start token) is `cardinality`, as in MusicGen. The audio
    encoder is a minimal EnCodec the config format requires; the embedded codec replaces it.
    """
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the special token lies outside vocab_size by design, as in MusicGen
    try:
        decoder = MusicgenDecoderConfig(
            vocab_size=cardinality,
            max_position_embeddings=lm.max_frames + num_codebooks,
            num_hidden_layers=lm.num_layers,
            ffn_dim=lm.ffn_dim,
            num_attention_heads=lm.num_heads,
            hidden_size=lm.hidden_size,
            num_codebooks=num_codebooks,
            pad_token_id=cardinality,
            decoder_start_token_id=cardinality,
            bos_token_id=cardinality,
            dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
            layerdrop=0.0,
        )
        text = T5Config(
            vocab_size=text_vocab_size,
            d_model=lm.text_hidden_size,
            d_kv=lm.text_hidden_size // lm.text_heads,
            d_ff=2 * lm.text_hidden_size,
            num_layers=lm.text_layers,
            num_heads=lm.text_heads,
            dropout_rate=0.0,
        )
        placeholder_codec = EncodecConfig(
            num_filters=2, hidden_size=8, codebook_size=cardinality, codebook_dim=8, upsampling_ratios=[8, 5, 4, 4],
            num_residual_layers=1, num_lstm_layers=1, sampling_rate=32000, target_bandwidths=[1.5], audio_channels=1,
        )
        config = MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=placeholder_codec.to_dict(),
                                decoder=decoder.to_dict())
        torch.manual_seed(seed)
        return MusicgenForConditionalGeneration(config).eval()
    finally:
        hf_logging.set_verbosity(verbosity)


class TeacherForcing(nn.Module):
    """The MusicGen LM under teacher forcing: `forward(**batch)` → loss per clip (B,)
    (docs/generator.md#teacher-forcing-loss).

    Holds the decoder and the text projection — the generator's trainable parameters under the same names —
    so `torch.func.functional_call` can swap them. The cross-attention mask is passed as an explicit 4-D
    mask, which transformers uses as is (its 2-D mask path inspects values, which `vmap` cannot do); the
    result equals the 2-D path bit for bit.
    """

    def __init__(self, model: MusicgenForConditionalGeneration, codebook_weights: Sequence[float] | None = None,
                 by_stream: bool = False) -> None:
        super().__init__()
        self.decoder = model.decoder
        self.enc_to_dec_proj = getattr(model, "enc_to_dec_proj", None)
        self.codebook_weights = None if codebook_weights is None else tuple(float(w) for w in codebook_weights)
        self.by_stream = by_stream

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, states: torch.Tensor,
                text_mask: torch.Tensor) -> torch.Tensor:
        b, k, s = inputs.shape
        condition = self.enc_to_dec_proj(states) if self.enc_to_dec_proj is not None else states
        condition = condition * text_mask[..., None].to(condition.dtype)
        attend = text_mask[:, None, None, :].expand(b, 1, s, text_mask.shape[-1])
        out = self.decoder(input_ids=inputs.reshape(b * k, s), encoder_hidden_states=condition,
                           encoder_attention_mask=attend, use_cache=False)
        return masked_cross_entropy(out.logits.reshape(b, k, s, -1), targets, valid, self.codebook_weights,
                                    by_stream=self.by_stream)


class LossOutput(NamedTuple):
    loss: torch.Tensor


class MeanTeacherForcing(TeacherForcing):
    """The same loss returning `.loss` = the batch mean, the model output dattri's LoGra and FactGraSS read."""

    def forward(self, **batch: torch.Tensor) -> LossOutput:  # type: ignore[override]
        return LossOutput(super().forward(**batch).mean())


class _Captured(Exception):
    """Raised by the capture hook to stop a forward pass once the wanted layer input is recorded."""


class MusicgenLayerSplit:
    """MusicGen's forward pass cut below decoder layer `start` (the final norm when `start` = L)."""

    def __init__(self, generator: MusicgenGenerator, start: int) -> None:
        self.generator, self.start = generator, start
        self.decoder = generator.model.decoder.model.decoder

    def lower(self, batch: Batch) -> tuple[tuple, dict]:
        captured: dict = {}

        def hook(_module: nn.Module, args: tuple, kwargs: dict) -> None:
            captured.update(args=args, kwargs=kwargs)
            raise _Captured

        stage = self.decoder.layers[self.start] if self.start < len(self.decoder.layers) else self.decoder.layer_norm
        handle = stage.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            with torch.no_grad():
                self.generator.loss_module()(**batch)
        except _Captured:
            pass
        finally:
            handle.remove()
        return captured["args"], captured["kwargs"]

    def losses(self, lower: tuple[tuple, dict], batch: Batch) -> torch.Tensor:
        args, kwargs = lower
        hidden = args[0]
        for layer in self.decoder.layers[self.start:]:
            hidden = layer(hidden, *args[1:], **kwargs)
        hidden = self.decoder.layer_norm(hidden)
        logits = torch.stack([head(hidden) for head in self.generator.model.decoder.lm_heads], dim=1)
        return masked_cross_entropy(logits, batch["targets"], batch["valid"])


class MusicgenGenerator:
    """A codec, a transformers MusicGen and a tokenizer: the audio implementation of the generator protocol
    (`lumina.models.protocol.Generator`)."""

    def __init__(
        self,
        model: MusicgenForConditionalGeneration,
        codec: Codec,
        tokenizer: WordTokenizer | PretrainedTokenizer,
        record: dict | None = None,
        source: str = "",
    ) -> None:
        self.model = model.eval()
        self.codec = codec
        self.tokenizer = tokenizer
        self.record = record or {}
        self.source = source
        for p in self.model.text_encoder.parameters():
            p.requires_grad_(False)
        for p in self.model.audio_encoder.parameters():
            p.requires_grad_(False)
        if codec.num_codebooks != self.num_codebooks:
            raise CheckpointError(
                f"{source}: the codec has {codec.num_codebooks} codebooks but the LM expects {self.num_codebooks}"
            )

    # -- structure -------------------------------------------------------------------------------------
    @property
    def num_codebooks(self) -> int:
        return int(self.model.config.decoder.num_codebooks)

    @property
    def num_layers(self) -> int:
        return int(self.model.config.decoder.num_hidden_layers)

    @property
    def special_token(self) -> int:
        """Delay-pattern padding and start token (= the LM's vocab_size)."""
        return int(self.model.config.decoder.vocab_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.decoder.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.decoder.parameters()).dtype

    def place(self, placement: Placement) -> MusicgenGenerator:
        """Move the model to the placement's device and the LM (decoder, text encoder and projection) to its
        dtype, in place; the audio encoder stays float32. Returns self."""
        self.model.to(placement.torch_device)
        for part in (self.model.decoder, self.model.text_encoder, getattr(self.model, "enc_to_dec_proj", None)):
            if part is not None:
                part.to(placement.torch_dtype)
        return self

    def layer_prefix(self, layer: int) -> str:
        """Parameter-name prefix of decoder layer `layer` (transformers naming)."""
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"layer {layer} out of range for a {self.num_layers}-layer decoder")
        return f"decoder.model.decoder.layers.{layer}."

    def trainable_parameters(self) -> dict[str, torch.nn.Parameter]:
        """The decoder LM's parameters (the text projection included), by full name."""
        return {
            n: p for n, p in self.model.named_parameters()
            if n.startswith("decoder.") or n.startswith("enc_to_dec_proj.")
        }

    def parameter_depth(self, name: str) -> int:
        for layer in range(self.num_layers):
            if name.startswith(self.layer_prefix(layer)):
                return layer
        if name.startswith(("decoder.lm_heads.", "decoder.model.decoder.layer_norm.")):
            return self.num_layers
        return -1

    def parameter_group(self, choice: str | Sequence[int]) -> list[str]:
        return parameter_group_names(self.trainable_parameters(), self.layer_prefix, self.num_layers,
                                     PARAMETER_GROUPS, choice)

    def lumina_tensors(self, layer: int) -> dict[str, list[str]]:
        prefix = self.layer_prefix(layer)
        return {tensor: [f"{prefix}{part}.weight" for part in parts] for tensor, parts in LUMINA_TENSOR_NAMES.items()}

    def output_heads(self) -> list[str]:
        return [f"decoder.lm_heads.{k}.weight" for k in range(self.num_codebooks)]

    def checkpoints(self) -> list[tuple[Path, float]]:
        return recorded_checkpoints(self.record, self.source)

    # -- computation -----------------------------------------------------------------------------------
    def batch(self, tokens: torch.Tensor, texts: Sequence[str], lengths: torch.Tensor | None = None,
              keep: Sequence[np.ndarray | None] | None = None) -> Batch:
        """Codes (B, K, T) right-padded to `lengths` (B,) with their descriptions → the loss module's batch:
        delayed inputs, targets and valid mask (B, K, S), text states (B, L, D_text) and mask (B, L)."""
        if len(texts) != tokens.shape[0]:
            raise ParameterError(f"{len(texts)} descriptions for {tokens.shape[0]} clips")
        inputs, targets, valid = delay_pattern(tokens, self.special_token, lengths)
        for b, frames_kept in enumerate(keep or []):
            if frames_kept is not None:
                kept = torch.from_numpy(np.asarray(frames_kept, dtype=bool)).to(valid.device)
                for q in range(tokens.shape[1]):  # frame j of codebook q is predicted at delayed step q + j
                    valid[b, q, q : q + kept.shape[0]] &= kept
        ids, mask = (t.to(self.device) for t in self.tokenizer(list(texts)))
        with torch.no_grad():
            states = self.model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        inputs, targets, valid = (t.to(self.device) for t in (inputs, targets, valid))
        return {"inputs": inputs, "targets": targets, "valid": valid, "states": states, "text_mask": mask.bool()}

    def collate(self, items: Sequence[Item]) -> Batch:
        frames = max(item.frames for item in items)
        codes, lengths = pad_clips([item.tokens for item in items], [0] * len(items), frames)
        return self.batch(codes, [item.text for item in items], lengths, [item.keep for item in items])

    def loss_module(self, *, mean: bool = False, codebook_weights: Sequence[float] | None = None,
                    by_stream: bool = False) -> TeacherForcing:
        return (MeanTeacherForcing if mean else TeacherForcing)(self.model, codebook_weights, by_stream)

    def clip_losses(self, tokens: torch.Tensor, texts: Sequence[str], *, lengths: torch.Tensor | None = None,
                    codebook_weights: Sequence[float] | None = None, by_stream: bool = False) -> torch.Tensor:
        module = self.loss_module(codebook_weights=codebook_weights, by_stream=by_stream)
        return module(**self.batch(tokens, texts, lengths))

    def layer_split(self, layer: int) -> MusicgenLayerSplit:
        return MusicgenLayerSplit(self, layer)

    @torch.no_grad()
    def sample(self, texts: Sequence[str], frames: int, *, seed: int, temperature: float = 1.0, top_k: int = 0
               ) -> np.ndarray:
        """Clips sampled from the LM under `texts`: codes (B, K, frames), B = len(texts) (docs/generator.md#sampling).

        Autoregressive over the delay pattern with the key-value cache; codebook q's token at step s is frame
        s - q. Each codebook samples only its codec's valid codes; `top_k` > 0 keeps the k likeliest. Same
        seed, same clips (a `torch.Generator` of its own, so global random state is untouched).
        """
        b, k = len(texts), self.num_codebooks
        sizes = getattr(self.codec, "codebook_sizes", (self.special_token,) * k)
        vocab = self.special_token
        invalid = torch.arange(vocab)[None, :] >= torch.tensor(sizes)[:, None]  # (K, V)
        ids, mask = self.tokenizer(list(texts))
        states = self.model.text_encoder(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
        proj = getattr(self.model, "enc_to_dec_proj", None)
        condition = proj(states.last_hidden_state) if proj is not None else states.last_hidden_state
        condition = condition * mask.to(self.device)[..., None].to(condition.dtype)
        attend = mask.bool().to(self.device)[:, None, None, :]
        generator = torch.Generator(device=self.device).manual_seed(int(seed))
        steps = frames + k - 1
        tokens = torch.full((b, k, steps + 1), self.special_token, dtype=torch.long, device=self.device)
        past = None
        for step in range(steps):
            out = self.model.decoder(input_ids=tokens[:, :, step:step + 1].reshape(b * k, 1),
                                     encoder_hidden_states=condition, encoder_attention_mask=attend,
                                     cache=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits.reshape(b, k, -1)[..., :vocab].float() / max(temperature, 1e-6)
            logits = logits.masked_fill(invalid.to(self.device)[None], float("-inf"))
            if top_k > 0:
                kth = logits.topk(min(top_k, vocab), dim=-1).values[..., -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            drawn = torch.multinomial(logits.softmax(-1).reshape(b * k, -1), 1, generator=generator).reshape(b, k)
            frame = step - torch.arange(k, device=self.device)
            inside = (frame >= 0) & (frame < frames)
            tokens[:, :, step + 1] = torch.where(inside[None], drawn, torch.full_like(drawn, self.special_token))
        codes = torch.stack([tokens[:, q, 1 + q:1 + q + frames] for q in range(k)], dim=1)
        return codes.cpu().numpy()

    def identity(self) -> str:
        """Hash of the LM weights and the codec (for caches and provenance)."""
        return weights_identity(self.codec, self.model)

    # -- storage ---------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(path), safe_serialization=True)
        if not isinstance(self.codec, EncodecCodec):
            self.codec.save(path / CODEC_DIR)
        if isinstance(self.tokenizer, WordTokenizer):
            self.tokenizer.save(path / TOKENIZER_FILE)
        self.record = {**self.record, "identity": self.identity()}
        (path / RECORD_FILE).write_text(json.dumps(self.record, indent=1, default=str))
        return path

    @classmethod
    def load(cls, path: str | Path, placement: Placement = REFERENCE) -> MusicgenGenerator:
        """Load a generator directory (embedded, or a local MusicGen in musicgen-small layout) onto `placement`.

        Weights load from safetensors only; no remote code runs and nothing is downloaded.
        """
        path = Path(path)
        if not (path / "config.json").exists():
            raise CheckpointError(f"{path}: no config.json; expected a MusicGen directory (save_pretrained layout)")
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            model = MusicgenForConditionalGeneration.from_pretrained(
                str(path), local_files_only=True, use_safetensors=True
            )
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{path}: cannot load the MusicGen weights ({err})") from err
        finally:
            hf_logging.set_verbosity(verbosity)
        codec = load_codec(path / CODEC_DIR) if (path / CODEC_DIR).exists() else EncodecCodec(model.audio_encoder)
        tokenizer: WordTokenizer | PretrainedTokenizer = (
            WordTokenizer.load(path / TOKENIZER_FILE) if (path / TOKENIZER_FILE).exists() else PretrainedTokenizer(path)
        )
        record_path = path / RECORD_FILE
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        return cls(model, codec, tokenizer, record, source=str(path.resolve())).place(placement)

