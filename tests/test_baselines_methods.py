"""The gradient baselines as harness methods: each registered name runs on a tiny corpus and trained model and
writes a segment-level score matrix with its segment → track map, normalisation and every option recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lumina.configure import method_context
from lumina.methods import METHODS, RunContext, get_method
from lumina.methods.gradient import NORMALIZATION
from lumina.methods.options import METHOD_OPTIONS
from lumina.models.embedded_recipe import EmbeddedModelConfig, train_embedded
from lumina.models.training import TrainConfig
from lumina.runs.layout import Layout
from lumina.runs.score_matrix import ScoreMatrix
from tests.generator_fixtures import TINY_CODEC, TINY_LM

REPO = Path(__file__).resolve().parents[1]

FAST = {
    "trak": {"proj_dim": 64, "parameters": [-1], "ensemble": 2},
    "gradcos": {"parameters": [-1]},
    "graddot": {"parameters": [-1]},
    "tracin": {"parameters": [-1], "proj_dim": 32},
    "logra": {"proj_dim": 4, "layers": [-1]},
    "factgrass": {"proj_dim": 4, "layers": [-1]},
    "unlearning": {"steps": 2, "lr": 0.01, "fisher_samples": 6},
}
"""Each method's options beyond its conf/method defaults, small enough for a test."""


@pytest.fixture(scope="module")
def corpus(tiny_corpus):
    """Four training tracks of 3 s (12 segments of 1 s) and three queries of the tiny embedded corpus."""
    return tiny_corpus.subset(tiny_corpus.train_ids[:4] + tiny_corpus.query_ids[:3])


@pytest.fixture(scope="module")
def load_generator(corpus, tmp_path_factory):
    config = EmbeddedModelConfig(codec=TINY_CODEC, lm=TINY_LM, train=TrainConfig(
        epochs=2, batch_size=2, crop_frames=48, warmup_steps=1, checkpoints=2, resume_every=1000))
    cache = tmp_path_factory.mktemp("models")
    return lambda train_ids=None: train_embedded(corpus, config, cache, train_ids=train_ids, progress=False)


def context(name: str, corpus, load_generator, cache: Path) -> RunContext:
    options = METHOD_OPTIONS[name]().as_dict()
    options.update(FAST[name], segment_s=1.0)
    return method_context(corpus, options, Layout(cache, cache / "runs", "tiny"), load_generator, progress=False)


@pytest.mark.parametrize("name", sorted(FAST))
def test_method_writes_a_segment_level_matrix(name, corpus, load_generator, tmp_path):
    assert name in METHODS
    ctx = context(name, corpus, load_generator, tmp_path)
    (result,) = get_method(name)(ctx)
    assert isinstance(result, ScoreMatrix)
    assert result.scores.shape == (12, 3) and np.isfinite(result.scores).all()
    assert result.method == name and result.normalization == NORMALIZATION[name]
    assert result.level == "segment" and result.track_ids == corpus.train_ids
    assert result.segment_track == [t for t in corpus.train_ids for _ in range(3)]
    np.testing.assert_allclose(result.segment_start_s, [0.0, 1.0, 2.0] * 4)
    assert result.query_ids == corpus.query_ids
    assert all(k in result.settings for k in ctx.options.as_dict())
    assert result.provenance["model_hash"] == ctx.generator.identity()
    loaded = ScoreMatrix.load(result.save(tmp_path / "scores.h5"))
    np.testing.assert_array_equal(loaded.scores, result.scores)
    again = get_method(name)(context(name, corpus, load_generator, tmp_path))[0]  # from the caches
    np.testing.assert_allclose(again.scores, result.scores, rtol=1e-6)
    if name == "tracin":  # every saved checkpoint, weighted by its learning rate
        record = ctx.generator.record["checkpoints"]
        assert len(record) == 2 and result.settings["checkpoint_weights"] == [c["lr"] for c in record]

