"""Codecs: the embedded codec (fit, encode, decode, storage, the probe) and a real-architecture EnCodec and
MusicGen loaded from local directories through the path a real checkpoint takes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch
from transformers import EncodecConfig, EncodecModel, PreTrainedTokenizerFast

from lumina.data.audio import load_audio
from lumina.data.corpus import build_corpus
from lumina.models.codecs import load_codec
from lumina.models.codecs.chroma_mel import EmbeddedCodec, EmbeddedCodecConfig
from lumina.models.codecs.encodec import EncodecCodec
from lumina.models.codecs.probe import chance_rate, probe, recovery_rate
from lumina.models.musicgen import MusicgenGenerator, build_musicgen
from tests.conftest import data_config
from tests.generator_fixtures import TINY_CODEC, TINY_LM
from tests.tones import tone

PROBE_CORPUS = {
    "train_pieces": 24,
    "track_s": 4.0,
    "queries": {"near_copy": 1, "composition": 1, "production": 1, "held_out": 1},
    "control_tracks": 1,
}


def test_chance_and_recovery_by_hand():
    labels = ["a", "a", "b", "b", "b", "c"]
    # others with the same label: a:1/5, a:1/5, b:2/5 (x3), c:0 → mean = (2 + 6) / 5 / 6
    assert chance_rate(labels) == pytest.approx(8 / 30)
    assert recovery_rate(np.array([1, 0, 3, 2, 0, 5]), labels) == pytest.approx(5 / 6)


def test_probe_recovers_piece_and_instrument(corpus_cache: Path):
    """48 training tracks (24 pieces × 2 instruments): some codebook finds the other rendering of a piece
    at >= 10× chance, and some codebook the same instrument at >= 3× chance."""
    manifest = build_corpus(data_config("music21", **PROBE_CORPUS), corpus_cache, threads=2, progress=False)
    ids = manifest.train_ids
    audios = [load_audio(manifest.path_of(t), 32000) for t in ids]
    codec = EmbeddedCodec.fit(audios, EmbeddedCodecConfig())
    codes = [codec.encode(a) for a in audios]
    table = manifest.table.set_index("track_id").loc[ids]
    rows = probe(codes, codec.cardinality, {"piece": table["piece"].tolist(),
                                            "instrument": table["program"].astype(str).tolist()})
    best = {label: max(r["ratio"] for r in rows if r["label"] == label) for label in ("piece", "instrument")}
    assert best["piece"] >= 10, rows
    assert best["instrument"] >= 3, rows
    # the pitch codebook carries the piece, a mel codebook the instrument (as EnCodec's first codebook does)
    first = {r["label"]: r["ratio"] for r in rows if r["codebook"] == 1}
    assert first["piece"] >= 10 and first["piece"] > first["instrument"]


@pytest.fixture(scope="module")
def tiny_codec() -> EmbeddedCodec:
    return EmbeddedCodec.fit([tone([220 * 2 ** (i / 12)], seed=i) for i in range(6)], TINY_CODEC)


def test_embedded_codec_shapes_range_and_determinism(tiny_codec, tmp_path):
    audio = tone([330.0, 440.0], seconds=0.7)
    codes = tiny_codec.encode(audio)
    assert codes.shape == (4, audio.size // 640) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes[0].max() < TINY_CODEC.pitch_codebook_size
    refit = EmbeddedCodec.fit([tone([220 * 2 ** (i / 12)], seed=i) for i in range(6)], TINY_CODEC)
    assert refit.identity() == tiny_codec.identity()
    tiny_codec.save(tmp_path / "codec")
    loaded = load_codec(tmp_path / "codec")
    assert np.array_equal(loaded.encode(audio), codes) and loaded.identity() == tiny_codec.identity()
    decoded = tiny_codec.decode(codes)
    assert decoded.shape == (codes.shape[1] * 640,) and np.isfinite(decoded).all() and np.abs(decoded).max() > 0
    # decoding draws Griffin-Lim's initial phases: seeded, so the same codes give the same audio bit for bit
    # (librosa's default draws them from fresh OS entropy every call)
    assert np.array_equal(tiny_codec.decode(codes), decoded) and np.array_equal(loaded.decode(codes), decoded)


def test_embedded_codec_decode_inverts_the_mel_filterbank(tiny_codec):
    """The decoder's mel inversion is the filterbank's pseudo-inverse: mel-filtering what it returns gives back any
    mel power spectrum exactly (the filterbank has full row rank), and the decoder's name, which keys the
    generated queries, says so."""
    cfg = tiny_codec.config
    basis = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, dtype=np.float64)
    inverse = tiny_codec.mel_inverse()
    assert inverse.shape == (1 + cfg.n_fft // 2, cfg.n_mels)
    np.testing.assert_allclose(basis @ inverse, np.eye(cfg.n_mels), atol=1e-8)
    power = np.random.default_rng(0).gamma(1.0, size=(cfg.n_mels, 7))
    np.testing.assert_allclose(basis @ (inverse @ power), power, rtol=1e-8, atol=1e-10)
    assert tiny_codec.decoder == f"mel-pinv+griffinlim-32-seed{cfg.seed}"


FIT_IN_CHILD = """
from lumina.models.codecs.chroma_mel import EmbeddedCodec, EmbeddedCodecConfig
from tests.tones import tone
audios = [tone([110 * 2 ** (i / 7), 165 * 2 ** (i / 5)], seconds=2.0, seed=i) for i in range(12)]
codec = EmbeddedCodec.fit(audios, EmbeddedCodecConfig(pitch_codebook_size=32, codebook_size=64))
print(codec.identity(), "".join(map(str, codec.encode(audios[0]).ravel()[:200])))
"""


def test_codec_is_the_same_under_any_thread_environment():
    """k-means and BLAS results change with their thread counts; the codec fixes its own, so a fit in a
    process with one thread everywhere and one with several give the same codebooks and codes."""
    root = Path(__file__).resolve().parents[1]
    outputs = []
    for threads in ("1", "3"):
        env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        done = subprocess.run([sys.executable, "-c", FIT_IN_CHILD], cwd=root, env=env, capture_output=True,
                              text=True, check=True)
        outputs.append(done.stdout.strip())
    assert outputs[0] == outputs[1]


def test_embedded_codec_reconstructs_most_of_the_mel_variance(tiny_codec):
    audios = [tone([220 * 2 ** (i / 12)], seed=i) for i in range(6)]
    assert tiny_codec.explained_variance(audios) > 0.5


def tiny_encodec_dir(path: Path) -> Path:
    config = EncodecConfig(num_filters=4, hidden_size=16, codebook_size=2048, codebook_dim=16,
                           upsampling_ratios=[8, 5, 4, 4], num_residual_layers=1, num_lstm_layers=1,
                           sampling_rate=32000, target_bandwidths=[2.2], audio_channels=1)
    torch.manual_seed(0)
    EncodecModel(config).save_pretrained(str(path), safe_serialization=True)
    return path


def test_encodec_loads_from_a_local_directory(tmp_path):
    codec = EncodecCodec.from_pretrained(tiny_encodec_dir(tmp_path / "encodec"))
    assert codec.sample_rate == 32000 and codec.frame_rate == 50
    audio = tone([440.0], seconds=0.5)
    codes = codec.encode(audio)
    assert codes.shape == (codec.num_codebooks, 25) and codes.max() < codec.cardinality
    assert codec.decode(codes).shape == (audio.size,)


def test_musicgen_small_layout_loads_with_its_encodec_and_tokenizer(tmp_path):
    """A directory in facebook/musicgen-small layout (MusicgenForConditionalGeneration with a 32 kHz EnCodec of
    4 codebooks × 2048 codes at 2.2 kbps, plus tokenizer files), written here with random weights, loads
    through Generator.load and scores audio."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["<pad>", "</s>", "<unk>", "calm", "piano", "music"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>")
    model = build_musicgen(TINY_LM, num_codebooks=4, cardinality=2048, text_vocab_size=len(words), seed=0)
    encodec = EncodecModel.from_pretrained(str(tiny_encodec_dir(tmp_path / "encodec")))
    model.audio_encoder = encodec
    model.config.audio_encoder = encodec.config
    model.save_pretrained(str(tmp_path / "musicgen"), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp_path / "musicgen"))

    generator = MusicgenGenerator.load(tmp_path / "musicgen")
    assert isinstance(generator.codec, EncodecCodec) and generator.codec.num_codebooks == 4
    codes = torch.from_numpy(generator.codec.encode(tone([262.0], seconds=0.4)))[None]
    with torch.no_grad():
        loss = generator.clip_losses(codes, ["calm piano music"])
    assert loss.shape == (1,) and np.isfinite(float(loss[0]))


def test_missing_checkpoint_directory_is_a_clear_error(tmp_path):
    from lumina.runs.errors import CheckpointError

    with pytest.raises(CheckpointError, match="no config.json"):
        MusicgenGenerator.load(tmp_path / "nowhere")
