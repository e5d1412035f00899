"""Sampling from the generator and the generated queries made from it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lumina.data.generated import add_generated_queries
from lumina.data.manifest import Manifest
from lumina.models.teacher_forcing import delay_pattern
from tests.generator_fixtures import DESCRIPTIONS, SR, tiny_generator, tone


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


def test_generated_queries_are_added_once_and_reused(tmp_path) -> None:
    import soundfile as sf

    generator = tiny_generator()
    rows = []
    for i, text in enumerate(DESCRIPTIONS):
        path = tmp_path / f"t{i}.wav"
        sf.write(str(path), tone([220 * (i + 1)], seconds=1.0, seed=i), SR)
        rows.append({"track_id": f"t{i}", "split": "train", "path": path.name, "description": text})
    manifest = Manifest(pd.DataFrame(rows), tmp_path)
    extended = add_generated_queries(manifest, generator, count=3, seconds=0.5, seed=0, progress=False)
    queries = extended.table[extended.table["query_kind"] == "generated"]
    assert queries["track_id"].tolist() == ["q_generated_00", "q_generated_01", "q_generated_02"]
    assert set(queries["description"]) <= set(DESCRIPTIONS) and (queries["split"] == "query").all()
    assert (queries["source_ids"] == "").all()
    audio, rate = sf.read(str(extended.path_of("q_generated_00")))
    assert rate == SR and audio.shape[0] == 25 * generator.codec.config.hop_length and np.abs(audio).max() > 0
    stamp = extended.path_of("q_generated_01").stat().st_mtime_ns
    again = add_generated_queries(manifest, generator, count=3, seconds=0.5, seed=0, progress=False)
    assert again.sha256() == extended.sha256() and extended.path_of("q_generated_01").stat().st_mtime_ns == stamp
    assert manifest.content_key(manifest.train_ids) == extended.content_key(extended.train_ids)
    # the extended manifest has a file of its own beside the corpus's (what run provenance names)
    assert extended.path.parent == tmp_path and extended.path.name != "manifest.csv"
    assert Manifest.load(extended.path).sha256() == extended.sha256()


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
    grown = add_generated_queries(corpus, generator, count=2, seconds=0.5, seed=0, progress=False)
    assert len(grown.query_ids) == 3
    monkeypatch.setattr(embedded, "train_lm", lambda *a, **k: pytest.fail("a model was trained again"))
    monkeypatch.setattr(embedded, "_fit_and_save_codec", lambda *a, **k: pytest.fail("the codec was fitted again"))
    again = train_embedded(grown, config, tmp_path, progress=False)
    assert again.identity() == generator.identity()
