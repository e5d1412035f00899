"""Sampling from the generator and the generated queries made from it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lumina.data.generated import include_generated
from lumina.data.manifest import Manifest
from lumina.models.generate import GenerationSettings, generate_queries, generation_key
from lumina.models.musicgen import MusicgenGenerator
from lumina.models.teacher_forcing import delay_pattern
from lumina.runs.errors import CorpusError
from tests.generator_fixtures import DESCRIPTIONS, tiny_generator
from tests.tones import SR, tone


def teacher_forcing_logits(generator, codes: np.ndarray, texts: list[str]) -> torch.Tensor:
    """Logits (B, K, S, V) of the full delayed sequence in one forward pass, without the key-value cache."""
    batch = generator.batch(torch.from_numpy(codes), texts)
    b, k, s = batch["inputs"].shape
    condition = generator.model.enc_to_dec_proj(batch["states"]) * batch["text_mask"][..., None]
    out = generator.model.decoder(input_ids=batch["inputs"].reshape(b * k, s), encoder_hidden_states=condition,
                                  encoder_attention_mask=batch["text_mask"][:, None, None, :], use_cache=False)
    return out.logits.reshape(b, k, s, -1)


def test_greedy_sample_is_the_teacher_forcing_argmax() -> None:
    """With top_k = 1 each sampled code is the argmax, over its codebook's valid codes, of the logits a single
    uncached teacher-forcing pass gives at its delayed position: the cached loop and the delay pattern agree."""
    generator = tiny_generator()
    texts = DESCRIPTIONS[:2]
    codes = generator.sample(texts, 12, seed=0, top_k=1)
    assert codes.shape == (2, generator.num_codebooks, 12)
    logits = teacher_forcing_logits(generator, codes, texts)
    _, targets, valid = delay_pattern(torch.from_numpy(codes), generator.special_token)
    sizes = generator.codec.codebook_sizes
    for q, size in enumerate(sizes):
        best = logits[:, q, :, :size].argmax(-1)
        assert torch.equal(best[valid[:, q]], targets[:, q][valid[:, q]])
        assert codes[:, q].max() < size


def test_sampling_is_seeded_and_respects_codebook_sizes() -> None:
    generator = tiny_generator()
    first = generator.sample(DESCRIPTIONS, 20, seed=3)
    torch.manual_seed(123)  # global random state does not matter
    np.testing.assert_array_equal(first, generator.sample(DESCRIPTIONS, 20, seed=3))
    assert not np.array_equal(first, generator.sample(DESCRIPTIONS, 20, seed=4))
    for q, size in enumerate(generator.codec.codebook_sizes):
        assert 0 <= first[:, q].min() and first[:, q].max() < size


def _tone_catalogue(folder) -> Manifest:
    import soundfile as sf

    rows = []
    for i, text in enumerate(DESCRIPTIONS):
        path = folder / f"t{i}.wav"
        sf.write(str(path), tone([220 * (i + 1)], seconds=1.0, seed=i), SR)
        rows.append({"track_id": f"t{i}", "split": "train", "path": path.name, "description": text})
    return Manifest(pd.DataFrame(rows), folder)


def test_generated_queries_are_a_stage_the_corpus_includes(tmp_path) -> None:
    """The stage writes clips and their record once; the corpus includes them by reading the folder (no
    generator); the same settings reuse the folder, a changed one writes it anew."""
    import soundfile as sf

    generator = tiny_generator()
    (tmp_path / "corpus").mkdir()
    manifest = _tone_catalogue(tmp_path / "corpus")
    settings = GenerationSettings(count=3, seconds=0.5, seed=0)
    folder = generate_queries(generator, manifest, tmp_path / "generated", settings, progress=False)
    extended = include_generated(manifest, folder)
    queries = extended.table[extended.table["query_kind"] == "generated"]
    assert queries["track_id"].tolist() == ["q_generated_00", "q_generated_01", "q_generated_02"]
    assert set(queries["description"]) <= set(DESCRIPTIONS) and (queries["split"] == "query").all()
    assert (queries["source_ids"] == "").all()
    audio, rate = sf.read(str(extended.path_of("q_generated_00")))
    assert rate == SR and audio.shape[0] == 25 * generator.codec.config.hop_length and np.abs(audio).max() > 0
    key, parts = generation_key(generator, settings)
    assert extended.generated == {"key": key, "model_identity": generator.identity(), "settings": parts["settings"],
                                  "track_ids": ["q_generated_00", "q_generated_01", "q_generated_02"]}
    assert extended.catalogue_key == manifest.catalogue_key  # the generated queries are keyed apart
    assert parts["decoder"] == generator.codec.decoder
    # the same settings reuse the folder: nothing is written again
    stamp = extended.path_of("q_generated_01").stat().st_mtime_ns
    generate_queries(generator, manifest, folder, settings, progress=False)
    assert extended.path_of("q_generated_01").stat().st_mtime_ns == stamp
    assert include_generated(manifest, folder).sha256() == extended.sha256()
    # the catalogue key names the training catalogue only; the combined manifest has a file of its own
    assert manifest.content_key(manifest.train_ids) == extended.content_key(extended.train_ids)
    assert extended.path.parent == manifest.root and extended.path.name == f"manifest-generated-{key}.csv"
    assert Manifest.load(extended.path).sha256() == extended.sha256()
    # another temperature is another key: the folder is written anew, never reused silently
    hotter = GenerationSettings(count=3, seconds=0.5, seed=0, temperature=2.0)
    generate_queries(generator, manifest, folder, hotter, progress=False)
    assert include_generated(manifest, folder).generated["key"] == generation_key(generator, hotter)[0] != key


def test_generated_clips_do_not_depend_on_the_workers_or_threads(tmp_path, monkeypatch) -> None:
    """Sampling and decoding batches in two worker processes gives the bytes one process gives, whatever torch and
    BLAS threads the caller runs (sampled codes and the mel inversion's last bits depend on them; each batch pins
    one of each)."""
    from threadpoolctl import threadpool_limits

    from lumina.models import generate

    monkeypatch.setattr(generate, "BATCH", 1)  # two batches of one clip: one a worker
    generator = MusicgenGenerator.load(tiny_generator().save(tmp_path / "generator"))
    manifest = _tone_catalogue(tmp_path)
    settings = GenerationSettings(count=2, seconds=0.5, seed=1)
    folders, previous = [], torch.get_num_threads()
    try:
        for threads, workers in ((2, 1), (1, 1), (2, 2)):
            torch.set_num_threads(threads)
            with threadpool_limits(limits=threads, user_api="blas"):
                folders.append(generate_queries(generator, manifest, tmp_path / f"{threads}-{workers}", settings,
                                                workers=workers, progress=False))
    finally:
        torch.set_num_threads(previous)
    for name in ("q_generated_00.wav", "q_generated_01.wav", "q_generated_00.codes.npy", "q_generated_01.codes.npy"):
        assert len({(folder / name).read_bytes() for folder in folders}) == 1


def test_a_corpus_without_the_stage_names_it(tmp_path) -> None:
    manifest = _tone_catalogue(tmp_path)
    with pytest.raises(CorpusError, match="experiments.generate"):
        include_generated(manifest, tmp_path / "missing")


def test_adding_queries_retrains_nothing(tiny_corpus, tmp_path, monkeypatch) -> None:
    """Queries are not training data: the codec, the model and its vocabulary are keyed by the training tracks
    alone, so a corpus grown by generated queries reuses them (training is not even called)."""
    from lumina.models import embedded_recipe as embedded
    from lumina.models.embedded_recipe import EmbeddedModelConfig, train_embedded
    from lumina.models.training import TrainConfig
    from tests.generator_fixtures import TINY_CODEC, TINY_LM

    corpus = tiny_corpus.subset(tiny_corpus.train_ids[:3] + tiny_corpus.query_ids[:1])
    config = EmbeddedModelConfig(codec=TINY_CODEC, lm=TINY_LM, train=TrainConfig(
        epochs=1, batch_size=2, crop_frames=48, warmup_steps=1, checkpoints=0, resume_every=1000))
    generator = train_embedded(corpus, config, tmp_path, progress=False)
    assert set(generator.tokenizer.vocabulary[3:]) == {w for t in corpus.train_ids
                                                      for w in corpus.description_of(t).split()}
    folder = generate_queries(generator, corpus, tmp_path / "generated", GenerationSettings(count=2, seconds=0.5),
                              progress=False)
    grown = include_generated(corpus, folder)
    assert len(grown.query_ids) == 3
    monkeypatch.setattr(embedded, "train_lm", lambda *a, **k: pytest.fail("a model was trained again"))
    monkeypatch.setattr(embedded, "_fit_and_save_codec", lambda *a, **k: pytest.fail("the codec was fitted again"))
    again = train_embedded(grown, config, tmp_path, progress=False)
    assert again.identity() == generator.identity()
