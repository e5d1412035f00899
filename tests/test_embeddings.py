"""Embedding baselines: tiny random CLAP and MERT-style checkpoints loaded the way real ones are, madmom's
deep chroma, caching, and the method run functions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from lumina.configure import method_context
from lumina.data.manifest import Manifest
from lumina.methods import NotConfigured, RunContext, get_method
from lumina.methods.retrieval import (
    Encoder,
    cosine_matrix,
    embed_files,
    embed_waveform,
    load_encoder,
)
from lumina.runs.errors import CheckpointError, ParameterError
from lumina.runs.layout import Layout
from lumina.runs.score_matrix import ScoreMatrix

# -- audio the tests make themselves ------------------------------------------------------------------------

PROGRESSION = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)]  # C, Am, F, G
UNRELATED = [(63, 66, 70), (58, 61, 65), (56, 59, 63), (61, 65, 68)]    # Ebm, Bbm, Abm, Db


def note(midi: int, seconds: float, sr: int, *, harmonics: int, decay: float) -> np.ndarray:
    """A harmonic tone (partials 1/k, band-limited below sr/2) with an exponential decay."""
    t = np.arange(int(sr * seconds)) / sr
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    partials = [np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, harmonics + 1) if f0 * k < 0.45 * sr]
    return np.sum(partials, axis=0) * np.exp(-decay * t)


def progression(chords: list[tuple[int, ...]], *, sr: int, chord_s: float, harmonics: int, decay: float,
                repeats: int = 2) -> np.ndarray:
    """Block chords, each `chord_s` long, the sequence played `repeats` times; (n,) float32 peaking at 0.5."""
    audio = np.concatenate([sum(note(m, chord_s, sr, harmonics=harmonics, decay=decay) for m in chord)
                            for _ in range(repeats) for chord in chords])
    return (0.5 * audio / np.abs(audio).max()).astype(np.float32)


def tones(sr: int, seconds: float = 3.0) -> np.ndarray:
    """A C major triad of slowly decaying harmonic tones, all partials below 4 kHz."""
    audio = sum(note(m, seconds, sr, harmonics=6, decay=0.5) for m in (60, 64, 67))
    return (0.3 * audio / np.abs(audio).max()).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(cosine_matrix(a[None], b[None])[0, 0])


# -- tiny checkpoints of the real architectures --------------------------------------------------------------

MERT_CONFIGURATION = '''
from transformers import HubertConfig


class MERTConfig(HubertConfig):
    model_type = "mert_model"

    def __init__(self, sample_rate=24000, feature_extractor_cqt=False, **kwargs):
        self.sample_rate = sample_rate
        self.feature_extractor_cqt = feature_extractor_cqt
        super().__init__(**kwargs)
'''

MERT_MODELING = '''
from transformers import HubertModel
from transformers.modeling_outputs import BaseModelOutput

from .configuration_MERT import MERTConfig


class MERTModel(HubertModel):
    """MERT-v1's shape: HuBERT's modules with its own forward (conv features -> projection -> encoder)."""

    config_class = MERTConfig

    def forward(self, input_values, attention_mask=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        features = self.feature_extractor(input_values).transpose(1, 2)
        hidden = self.feature_projection(features)
        out = self.encoder(hidden, attention_mask=attention_mask, output_attentions=output_attentions,
                           output_hidden_states=output_hidden_states, return_dict=return_dict)
        return BaseModelOutput(last_hidden_state=out[0], hidden_states=out.hidden_states)
'''

HUBERT = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, conv_dim=(8, 8),
              conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> object:
    """Tiny models run far faster on one thread than on two when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clap(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A tiny random ClapModel (HTSAT audio tower, RoBERTa text tower) and LAION's feature extractor, saved
    with save_pretrained; returns the directory and the model as built."""
    from transformers import ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapTextConfig

    audio = ClapAudioConfig(hidden_size=128, patch_embeds_hidden_size=16, depths=[1, 1, 1, 1],
                            num_attention_heads=[1, 1, 1, 1], window_size=8, projection_dim=16, enable_fusion=False)
    text = ClapTextConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=1,
                          intermediate_size=32, projection_dim=16, max_position_embeddings=40)
    torch.manual_seed(0)
    model = ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16)).eval()
    folder = tmp_path_factory.mktemp("ckpt") / "tiny_clap_music"
    model.save_pretrained(folder)
    ClapFeatureExtractor(truncation="rand_trunc").save_pretrained(folder)
    return folder, model


@pytest.fixture(scope="module")
def hubert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, torch.nn.Module]:
    """Two checkpoints of one tiny random HuBERT: `MERT-tiny` laid out like m-a-p/MERT-v1 (config.json auto_map
    to configuration_MERT.py / modeling_MERT.py, pytorch_model.bin) and `hubert-tiny`, a plain transformers
    HuBERT (model.safetensors, like MERT-v0). Returns both directories and the model as built."""
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    model = HubertModel(HubertConfig(**HUBERT)).eval()
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=24000, do_normalize=True, return_attention_mask=True)
    root = tmp_path_factory.mktemp("ckpt")
    plain = root / "hubert-tiny"
    model.save_pretrained(plain)
    extractor.save_pretrained(plain)
    mert = root / "MERT-tiny"
    mert.mkdir()
    config = {**HubertConfig(**HUBERT).to_dict(), "architectures": ["MERTModel"], "model_type": "mert_model",
              "sample_rate": 24000, "feature_extractor_cqt": False,
              "auto_map": {"AutoConfig": "configuration_MERT.MERTConfig", "AutoModel": "modeling_MERT.MERTModel"}}
    (mert / "config.json").write_text(json.dumps(config))
    (mert / "configuration_MERT.py").write_text(MERT_CONFIGURATION)
    (mert / "modeling_MERT.py").write_text(MERT_MODELING)
    torch.save(model.state_dict(), mert / "pytorch_model.bin")
    extractor.save_pretrained(mert)
    return mert, plain, model


@pytest.fixture
def modules_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where transformers copies a checkpoint's remote code before importing it (a fresh folder per test)."""
    import transformers.dynamic_module_utils as dynamic

    folder = tmp_path / "hf_modules"
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(folder))
    monkeypatch.setattr(sys, "path", list(sys.path))
    return folder


@pytest.fixture(scope="module")
def deepchroma() -> Encoder:
    return load_encoder("madmom-deepchroma")


# -- CLAP ------------------------------------------------------------------------------------------------------


def test_clap_loads_the_saved_weights_from_a_local_directory(clap: tuple[Path, torch.nn.Module]) -> None:
    from transformers import ClapFeatureExtractor

    folder, built = clap
    encoder = load_encoder("clap", {"checkpoint": str(folder), "trust_remote_code": True})  # ignored by CLAP
    assert encoder.name == "clap-tiny_clap_music"
    assert (encoder.sample_rate, encoder.dim, encoder.checkpoint) == (48000, 16, str(folder.resolve()))
    assert encoder.identity["weights"] == "model.safetensors" and len(encoder.identity["checkpoint_sha256"]) == 64
    chunk = tones(48000)
    inputs = ClapFeatureExtractor.from_pretrained(folder)(chunk, sampling_rate=48000, return_tensors="pt")
    with torch.inference_mode():
        expected = built.get_audio_features(**inputs).pooler_output.numpy()
    np.testing.assert_allclose(encoder.frames(chunk), expected, rtol=1e-5, atol=1e-6)


def test_clap_identical_audio_and_other_sample_rates(clap: tuple[Path, torch.nn.Module]) -> None:
    encoder = load_encoder("clap", {"checkpoint": str(clap[0])})
    lengths = []
    frames = encoder.frames
    encoder.frames = lambda chunk: lengths.append(chunk.shape[0]) or frames(chunk)
    at_48k = embed_waveform(encoder, tones(48000), 48000)
    again = embed_waveform(encoder, tones(48000), 48000)
    at_44k = embed_waveform(encoder, tones(44100), 44100)
    at_16k = embed_waveform(encoder, tones(16000), 16000)
    assert lengths == [144000] * 4  # 3 s at the encoder's 48 kHz, whatever the input rate
    np.testing.assert_array_equal(at_48k, again)
    assert cosine(at_48k, again) == pytest.approx(1.0, abs=1e-6)
    for vector in (at_44k, at_16k):
        assert vector.shape == (16,) and vector.dtype == np.float32 and np.isfinite(vector).all()
        assert cosine(at_48k, vector) > 0.99  # the same music, band-limited below 4 kHz


def test_clap_refuses_chunks_longer_than_its_input(clap: tuple[Path, torch.nn.Module]) -> None:
    with pytest.raises(ParameterError, match="max_length_s"):
        load_encoder("clap", {"checkpoint": str(clap[0]), "chunk_s": 12.0})


def test_checkpoint_directory_errors(tmp_path: Path, hubert: tuple[Path, Path, torch.nn.Module]) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_encoder("clap", {"checkpoint": str(tmp_path / "missing")})
    with pytest.raises(CheckpointError, match="not 'clap'"):
        load_encoder("clap", {"checkpoint": str(hubert[1])})
    with pytest.raises(ParameterError, match="unknown encoder"):
        load_encoder("openl3")


# -- MERT --------------------------------------------------------------------------------------------------------


def test_mert_remote_code_is_refused_without_the_opt_in(hubert: tuple[Path, Path, torch.nn.Module],
                                                       modules_cache: Path) -> None:
    with pytest.raises(CheckpointError, match=r"method\.trust_remote_code=true"):
        load_encoder("mert", {"checkpoint": str(hubert[0])})
    assert not modules_cache.exists()  # nothing was copied for import, let alone run


def test_mert_remote_code_runs_with_the_opt_in(hubert: tuple[Path, Path, torch.nn.Module],
                                               modules_cache: Path) -> None:
    from transformers import Wav2Vec2FeatureExtractor

    folder, _, built = hubert
    encoder = load_encoder("mert", {"checkpoint": str(folder), "trust_remote_code": True})
    assert encoder.name == "mert-MERT-tiny" and encoder.identity["model_class"] == "MERTModel"
    assert encoder.identity["remote_code"]["AutoModel"] == "modeling_MERT.MERTModel"
    assert encoder.identity["weights"] == "pytorch_model.bin"
    assert any(modules_cache.rglob("modeling_MERT.py"))  # transformers' own remote-code path was taken
    chunk = tones(24000, 2.0)
    values = Wav2Vec2FeatureExtractor.from_pretrained(folder)(chunk, sampling_rate=24000,
                                                              return_tensors="pt")["input_values"]
    with torch.inference_mode():
        expected = built(values).last_hidden_state[0].numpy()
    np.testing.assert_allclose(encoder.frames(chunk), expected, rtol=1e-4, atol=1e-5)

    def layer(k: int) -> np.ndarray:
        return load_encoder("mert", {"checkpoint": str(folder), "trust_remote_code": True, "layer": k}).frames(chunk)

    np.testing.assert_allclose(layer(2), expected, rtol=1e-4, atol=1e-5)  # post-norm HuBERT: last layer = output
    assert layer(1).shape == expected.shape and not np.allclose(layer(1), expected)
    with pytest.raises(ParameterError, match="layer"):
        load_encoder("mert", {"checkpoint": str(folder), "trust_remote_code": True, "layer": 3})


def test_mert_identical_audio_and_other_sample_rates(hubert: tuple[Path, Path, torch.nn.Module]) -> None:
    encoder = load_encoder("mert", {"checkpoint": str(hubert[1]), "chunk_s": 2.0})  # plain HuBERT: no opt-in
    assert encoder.identity["remote_code"] == {} and encoder.identity["weights"] == "model.safetensors"
    at_24k = embed_waveform(encoder, tones(24000), 24000)
    again = embed_waveform(encoder, tones(24000), 24000)
    np.testing.assert_array_equal(at_24k, again)
    assert cosine(at_24k, again) == pytest.approx(1.0, abs=1e-6)
    for sr in (44100, 16000):
        vector = embed_waveform(encoder, tones(sr), sr)
        assert vector.shape == (16,) and np.isfinite(vector).all()
        assert cosine(at_24k, vector) > 0.99


# -- madmom (offline) ----------------------------------------------------------------------------------------


def test_deepchroma_is_a_real_pretrained_model(deepchroma: Encoder) -> None:
    vector = embed_waveform(deepchroma, tones(32000, 4.0), 32000)
    assert vector.shape == (12,)
    assert set(np.argsort(vector)[-3:]) == {0, 4, 7}  # C, E, G: the chord that was played
    again = embed_waveform(load_encoder("madmom-deepchroma"), tones(32000, 4.0), 32000)
    np.testing.assert_array_equal(vector, again)
    assert deepchroma.identity["model_licence"].startswith("CC BY-NC-SA 4.0")
    assert deepchroma.identity["model_files"] == ["chroma_dnn.onnx"]


def test_deepchroma_hears_the_progression_not_the_instrument(deepchroma: Encoder) -> None:
    organ = progression(PROGRESSION, sr=32000, chord_s=1.0, harmonics=3, decay=0.2)
    pluck = progression(PROGRESSION, sr=44100, chord_s=0.8, harmonics=12, decay=3.0)  # other timbre and tempo
    other = progression(UNRELATED, sr=32000, chord_s=1.0, harmonics=3, decay=0.2)   # organ, other chords
    a, b, c = (embed_waveform(deepchroma, x, sr) for x, sr in ((organ, 32000), (pluck, 44100), (other, 32000)))
    assert cosine(a, b) > cosine(a, c) + 0.2
    assert cosine(a, b) > cosine(b, c) + 0.2


@pytest.mark.parametrize("kind, dim", [("madmom-chordfeat", 128), ("madmom-notes", 88)])
def test_other_madmom_encoders(kind: str, dim: int) -> None:
    encoder = load_encoder(kind)
    vector = embed_waveform(encoder, tones(22050, 2.0), 22050)
    assert vector.shape == (dim,) and np.isfinite(vector).all() and np.abs(vector).max() > 0


def test_long_audio_is_chunked_and_time_averaged() -> None:
    """A frame-per-100-samples encoder of the signal's mean level: the embedding is the mean over time."""
    seen = []

    def frames(chunk: np.ndarray) -> np.ndarray:
        seen.append(chunk.shape[0])
        return chunk[: chunk.shape[0] // 100 * 100].reshape(-1, 100).mean(axis=1, keepdims=True)

    encoder = Encoder(name="level", sample_rate=1000, dim=1, chunk_s=10.0, min_chunk_s=1.0, frames=frames,
                      identity={}, kind="level")
    audio = np.concatenate([np.full(10000, 0.1), np.full(10000, 0.3), np.full(5000, 0.6)]).astype(np.float32)
    assert embed_waveform(encoder, audio, 1000)[0] == pytest.approx((0.1 * 10 + 0.3 * 10 + 0.6 * 5) / 25, rel=1e-6)
    assert seen == [10000, 10000, 5000]
    seen.clear()
    audio = np.concatenate([np.full(20000, 0.2), np.full(500, 1.0)]).astype(np.float32)
    assert embed_waveform(encoder, audio, 1000)[0] == pytest.approx(0.2, rel=1e-6)
    assert seen == [10000, 10000]  # the 0.5 s tail is shorter than min_chunk_s


# -- cache and methods ---------------------------------------------------------------------------------------


def write_corpus(folder: Path) -> Manifest:
    """Four training tracks (two progressions × two timbres) and two queries: a 44.1 kHz, quieter copy of
    t_a_organ and the unrelated progression on a third timbre."""
    specs = {
        "t_a_organ": (PROGRESSION, 32000, 3, 0.2, "train"),
        "t_a_pluck": (PROGRESSION, 32000, 12, 3.0, "train"),
        "t_b_organ": (UNRELATED, 32000, 3, 0.2, "train"),
        "t_b_pluck": (UNRELATED, 32000, 12, 3.0, "train"),
        "q_copy": (PROGRESSION, 44100, 3, 0.2, "query"),
        "q_b_bell": (UNRELATED, 16000, 6, 1.5, "query"),
    }
    rows = []
    for track, (chords, sr, harmonics, decay, split) in specs.items():
        audio = progression(chords, sr=sr, chord_s=1.0, harmonics=harmonics, decay=decay, repeats=1)
        sf.write(folder / f"{track}.wav", audio * (0.5 if track == "q_copy" else 1.0), sr)
        rows.append({"track_id": track, "split": split, "path": f"{track}.wav"})
    return Manifest(pd.DataFrame(rows), folder)


def context(manifest: Manifest, cache: Path, **options: object) -> RunContext:
    def no_generator(*_: object) -> None:
        raise AssertionError("embedding methods never load the generator")

    options = {"name": "embedding", "progress": False, **options}
    return method_context(manifest, options, Layout(cache, cache / "runs", "tiny"), no_generator, threads=1,
                          progress=False)


def test_embed_files_caches_per_file_and_workers_agree(tmp_path: Path, deepchroma: Encoder,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from lumina.methods.retrieval import cache
    manifest = write_corpus(tmp_path)
    paths = {t: manifest.path_of(t) for t in manifest.table["track_id"]}
    partial = embed_files(deepchroma, dict(list(paths.items())[:2]), tmp_path / "cache", progress=False)
    calls = []
    frames = deepchroma.frames
    monkeypatch.setattr(deepchroma, "frames", lambda chunk: calls.append(1) or frames(chunk))
    in_process = embed_files(deepchroma, paths, tmp_path / "cache", workers=1, progress=False)
    assert len(calls) == 4  # an interrupted run's two files are not redone
    np.testing.assert_array_equal(in_process[:2], partial)
    assert in_process.shape == (6, 12) and in_process.dtype == np.float32
    folder = next((tmp_path / "cache").iterdir())
    assert folder.name.startswith("madmom-deepchroma-") and len(list(folder.glob("*.npy"))) == 6
    assert json.loads((folder / "encoder.json").read_text())["encoder"] == "madmom-deepchroma"

    def not_here(chunk: np.ndarray) -> np.ndarray:
        raise AssertionError("the workers, not this process, embed")

    monkeypatch.setattr(deepchroma, "frames", not_here)
    monkeypatch.setattr(deepchroma, "processes", True)  # as madmom-notes, whose files cost enough for workers
    monkeypatch.setattr(cache, "MIN_FILES_PER_WORKER", 3)  # 6 files: two workers get three each
    in_workers = embed_files(deepchroma, paths, tmp_path / "fresh", workers=2, progress=False)
    np.testing.assert_array_equal(in_workers, in_process)


def test_run_embedding_writes_a_track_level_matrix(tmp_path: Path) -> None:
    manifest = write_corpus(tmp_path)
    (matrix,) = get_method("embedding")(context(manifest, tmp_path / "cache", encoder="madmom-deepchroma",
                                                checkpoint=None, chunk_s=None, min_chunk_s=1.0))
    assert isinstance(matrix, ScoreMatrix)
    assert matrix.scores.shape == (4, 2) and matrix.level == "track" and matrix.normalization == "zscore"
    assert matrix.segment_track == manifest.train_ids and matrix.query_ids == ["q_copy", "q_b_bell"]
    assert (matrix.method, matrix.setting) == ("embedding", "madmom-deepchroma")
    assert matrix.settings["sample_rate"] == 44100 and matrix.settings["chunk_s"] == 30.0
    assert np.argmax(matrix.scores[:, 0]) == 0 and matrix.scores[0, 0] > 0.999  # a quieter 44.1 kHz copy
    assert set(np.argsort(matrix.scores[:, 1])[-2:]) == {2, 3}  # the unrelated progression's two renderings
    loaded = ScoreMatrix.load(matrix.save(tmp_path / "scores.h5"))
    np.testing.assert_array_equal(loaded.scores, matrix.scores)


def test_run_clap_and_mert_from_checkpoints(tmp_path: Path, clap: tuple[Path, torch.nn.Module],
                                            hubert: tuple[Path, Path, torch.nn.Module]) -> None:
    manifest = write_corpus(tmp_path).subset(["t_a_organ", "t_b_organ", "q_copy"])
    (matrix,) = get_method("clap")(context(manifest, tmp_path / "cache", checkpoint=str(clap[0]), chunk_s=10.0))
    assert matrix.setting == "clap-tiny_clap_music" and matrix.scores.shape == (2, 1)
    assert matrix.settings["checkpoint"] == str(clap[0].resolve()) and matrix.settings["chunk_s"] == 10.0
    assert matrix.provenance["model_hash"] == matrix.settings["checkpoint_sha256"]
    assert np.isfinite(matrix.scores).all() and np.abs(matrix.scores).max() <= 1.0
    (matrix,) = get_method("mert")(context(manifest, tmp_path / "cache", checkpoint=str(hubert[1]), layer=1))
    assert matrix.setting == "mert-hubert-tiny" and matrix.settings["layer"] == 1
    assert matrix.scores.shape == (2, 1) and np.isfinite(matrix.scores).all()


def test_no_checkpoint_means_not_configured(tmp_path: Path) -> None:
    manifest = write_corpus(tmp_path)
    for method, options in [("clap", {"checkpoint": None}), ("mert", {"checkpoint": None}),
                            ("embedding", {"encoder": "clap", "checkpoint": None})]:
        (result,) = get_method(method)(context(manifest, tmp_path / "cache", **options))
        assert isinstance(result, NotConfigured)
        assert result.method == method and result.setting in ("clap", "mert")
        assert "method.checkpoint" in result.reason
    assert not (tmp_path / "cache").exists()  # nothing was embedded
