"""Training the embedded LM: learns, deterministic, resumable after an interruption, checkpoints kept."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lumina.models import training
from lumina.models.training import TrainConfig, checkpoint_steps, evaluate_losses, learning_rate, train_lm
from lumina.runs.errors import ParameterError
from tests.generator_fixtures import tiny_generator

CONFIG = TrainConfig(epochs=6, batch_size=2, crop_frames=24, lr=3e-3, warmup_steps=3, checkpoints=2, resume_every=4)


def toy_codes(n: int = 4, frames: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    """Learnable codes: each track repeats its own short random motif in all 4 codebooks."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        motif = rng.integers(0, 8, size=(4, 5))
        out[f"t{i}"] = np.tile(motif, (1, frames // 5 + 1))[:, :frames].astype(np.int64)
    return out


def weights(generator) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in generator.trainable_parameters().items()}


def test_training_learns_and_is_deterministic(tmp_path):
    codes = toy_codes()
    texts = dict.fromkeys(codes, "piano bach")
    ids = list(codes)
    a = tiny_generator()
    before = evaluate_losses(a, codes, texts, ids)
    record = train_lm(a, codes, texts, ids, CONFIG, tmp_path / "a", progress=False)
    after = evaluate_losses(a, codes, texts, ids)
    assert np.mean(list(after.values())) < np.mean(list(before.values())) - 0.3
    b = tiny_generator()
    train_lm(b, codes, texts, ids, CONFIG, tmp_path / "b", progress=False)
    wa, wb = weights(a), weights(b)
    assert all(torch.equal(wa[n], wb[n]) for n in wa)
    # intermediate checkpoints with the learning rate used at their step
    assert [c["step"] for c in record["checkpoints"]] == checkpoint_steps(record["steps"], 2)
    last = record["checkpoints"][-1]
    meta = json.loads((tmp_path / "a" / last["path"] / "meta.json").read_text())
    assert meta["step"] == record["steps"] and meta["lr"] == pytest.approx(last["lr"])
    # the last checkpoint holds the final trainable weights; a folder without weights is named in the error
    saved = training.checkpoint_weights(tmp_path / "a" / last["path"])
    assert saved.keys() == wa.keys() and all(torch.equal(saved[n], wa[n]) for n in wa)
    with pytest.raises(ParameterError, match="lm.safetensors"):
        training.checkpoint_weights(tmp_path)


def test_interrupted_training_resumes_bit_for_bit(tmp_path, monkeypatch):
    codes = toy_codes(seed=1)
    texts = dict.fromkeys(codes, "violin folk")
    ids = list(codes)
    reference = tiny_generator()
    train_lm(reference, codes, texts, ids, CONFIG, tmp_path / "ref", progress=False)

    real_crop = training.pad_clips
    calls = {"n": 0}

    def crop_then_stop(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # the 7th step: after the resume point written at step 4
            raise KeyboardInterrupt
        return real_crop(*args, **kwargs)

    monkeypatch.setattr(training, "pad_clips", crop_then_stop)
    interrupted = tiny_generator()
    with pytest.raises(KeyboardInterrupt):
        train_lm(interrupted, codes, texts, ids, CONFIG, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / training.RESUME_FILE).exists()
    monkeypatch.setattr(training, "pad_clips", real_crop)
    resumed = tiny_generator()
    record = train_lm(resumed, codes, texts, ids, CONFIG, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / training.RESUME_FILE).exists()
    wr, wx = weights(reference), weights(resumed)
    assert all(torch.equal(wr[n], wx[n]) for n in wr)
    assert len(record["step_losses"]) == record["steps"]


def test_learning_rate_schedule_by_hand():
    cfg = TrainConfig(lr=1.0, warmup_steps=4, min_lr_ratio=0.1)
    assert learning_rate(0, 100, cfg) == pytest.approx(0.25)
    assert learning_rate(3, 100, cfg) == pytest.approx(1.0)
    assert learning_rate(4, 100, cfg) == pytest.approx(1.0)
    assert learning_rate(52, 100, cfg) == pytest.approx(0.55)  # half-way through the cosine
    assert learning_rate(100, 100, cfg) == pytest.approx(0.1)
