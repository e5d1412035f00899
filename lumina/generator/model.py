"""The generator under attribution: a codec plus a transformers MusicGen (text encoder + decoder LM).

One directory layout for every generator: `save_pretrained` of `MusicgenForConditionalGeneration`
(config.json + model.safetensors), plus, for the embedded default, `codec/` (the embedded codec, which
replaces the checkpoint's audio encoder for encoding and decoding), `word_tokenizer.json` (the word vocabulary)
and `training_record.json`. A real MusicGen directory (musicgen-small layout) loads through the same path,
with its EnCodec and T5 tokenizer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import (
    EncodecConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    T5Config,
)
from transformers.utils import logging as hf_logging

from lumina.codecs import Codec, load_codec
from lumina.codecs.encodec import EncodecCodec
from lumina.errors import CheckpointError
from lumina.generator.text import PretrainedTokenizer, WordTokenizer

CODEC_DIR = "codec"
TOKENIZER_FILE = "word_tokenizer.json"
RECORD_FILE = "training_record.json"


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


class Generator:
    """A codec, a MusicGen and a tokenizer, with the few operations attribution needs."""

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

    def layer_prefix(self, layer: int) -> str:
        """Parameter-name prefix of decoder layer `layer` (transformers naming)."""
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"layer {layer} out of range for a {self.num_layers}-layer decoder")
        return f"decoder.model.decoder.layers.{layer}."

    def lm_parameters(self) -> dict[str, torch.nn.Parameter]:
        """The decoder LM's trainable parameters (the text projection included), by full name."""
        return {
            n: p for n, p in self.model.named_parameters()
            if n.startswith("decoder.") or n.startswith("enc_to_dec_proj.")
        }

    # -- computation -----------------------------------------------------------------------------------
    def encode_audio(self, audio: np.ndarray) -> np.ndarray:
        """Audio (n,) at the codec's rate → codes (K, T)."""
        return self.codec.encode(audio)

    def encode_text(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Descriptions → encoder states (B, L, D_dec) for cross-attention and their mask (B, L)."""
        ids, mask = self.tokenizer(texts)
        with torch.no_grad():
            states = self.model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        if hasattr(self.model, "enc_to_dec_proj"):
            states = self.model.enc_to_dec_proj(states)
        return states * mask[..., None], mask

    def logits(self, inputs: torch.Tensor, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Delayed input tokens (B, K, S) and text condition → logits (B, K, S, V)."""
        b, k, s = inputs.shape
        out = self.model.decoder(
            input_ids=inputs.reshape(b * k, s), encoder_hidden_states=states, encoder_attention_mask=mask,
            use_cache=False,
        )
        return out.logits.reshape(b, k, s, -1)

    def identity(self) -> str:
        """Hash of the LM weights and the codec (for caches and provenance)."""
        digest = hashlib.sha256(self.codec.identity().encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode() + tensor.detach().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

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
    def load(cls, path: str | Path) -> Generator:
        """Load a generator directory (embedded, or a local MusicGen in musicgen-small layout).

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
        return cls(model, codec, tokenizer, record, source=str(path.resolve()))

