"""Tiny generators for tests: a codec fitted on synthetic tones and a 4-layer MusicGen, built in seconds."""

from __future__ import annotations

from lumina.models.codecs.chroma_mel import EmbeddedCodec, EmbeddedCodecConfig
from lumina.models.musicgen import LMConfig, MusicgenGenerator, build_musicgen
from lumina.models.text import WordTokenizer
from tests.tones import tone

TINY_CODEC = EmbeddedCodecConfig(pitch_codebook_size=8, codebook_size=16, n_mels=32, kmeans_iterations=20)
TINY_LM = LMConfig(num_layers=4, hidden_size=32, num_heads=2, ffn_dim=64, text_hidden_size=16, text_layers=1,
                   text_heads=2, max_frames=256)
DESCRIPTIONS = ["piano bach", "violin folk", "flute bach", "organ palestrina"]


def tiny_generator(seed: int = 0) -> MusicgenGenerator:
    audios = [tone([220 * 2 ** (i / 12), 330 * 2 ** (i / 12)], seed=i) for i in range(6)]
    codec = EmbeddedCodec.fit(audios, TINY_CODEC)
    tokenizer = WordTokenizer.build(DESCRIPTIONS)
    model = build_musicgen(TINY_LM, num_codebooks=codec.num_codebooks, cardinality=codec.cardinality,
                           text_vocab_size=len(tokenizer), seed=seed)
    return MusicgenGenerator(model, codec, tokenizer)
