"""Published MusicGen architectures with random weights (conf/model/musicgen-{small,medium,large}.yaml, `kind:
architecture`): every stage runs at real size without a checkpoint, for profiling and cost models
(docs/scale.md). Nothing is downloaded. The text vocabulary is the words of the corpus descriptions (a random
T5 embeds them; T5-base's 32k-word vocabulary would change nothing but the embedding table)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from transformers import (
    EncodecConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    T5Config,
)
from transformers.utils import logging as hf_logging

from lumina.models.codecs.encodec import EncodecCodec
from lumina.models.musicgen import MusicgenGenerator
from lumina.models.text import WordTokenizer
from lumina.runs.device import REFERENCE, Placement
from lumina.runs.errors import ParameterError

PARTS = ("decoder", "text_encoder", "audio_encoder")


def build_architecture(model: Mapping[str, Any], descriptions: Iterable[str], *,
                       placement: Placement = REFERENCE) -> MusicgenGenerator:
    """A MusicGen of the `model` config's architecture (transformers config fields per part: `decoder`,
    `text_encoder`, `audio_encoder`), random weights from `model.seed`, its codec the (random) EnCodec."""
    missing = [p for p in PARTS if p not in model]
    if missing:
        raise ParameterError(f"model {model.get('name')!r} (kind architecture) lacks {missing}; see "
                             "conf/model/musicgen-small.yaml")
    tokenizer = WordTokenizer.build(descriptions)
    special = int(model["decoder"]["vocab_size"])  # delay-pattern padding and start token, as in MusicGen
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the special token lies outside vocab_size by design
    try:
        decoder = MusicgenDecoderConfig(**model["decoder"], pad_token_id=special, decoder_start_token_id=special,
                                        bos_token_id=special, dropout=0.0, attention_dropout=0.0,
                                        activation_dropout=0.0, layerdrop=0.0)
        text = T5Config(vocab_size=len(tokenizer), dropout_rate=0.0, **model["text_encoder"])
        audio = EncodecConfig(**model["audio_encoder"])
        config = MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=audio.to_dict(), decoder=decoder.to_dict())
        torch.manual_seed(int(model.get("seed", 0)))
        lm = MusicgenForConditionalGeneration(config).eval()
    finally:
        hf_logging.set_verbosity(verbosity)
    record = {"architecture": str(model.get("name")), "seed": int(model.get("seed", 0)), "weights": "random"}
    return MusicgenGenerator(lm, EncodecCodec(lm.audio_encoder), tokenizer, record).place(placement)
