"""Teacher forcing, gradient capture and checkpoints of the generator, on a tiny model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lumina.models.capture import (
    LUMINA_TENSORS,
    capture_gradients,
    count_autograd_nodes,
    only_requiring_grad,
    per_clip_gradients,
)
from lumina.models.musicgen import MusicgenGenerator
from lumina.models.teacher_forcing import delay_pattern
from tests.generator_fixtures import DESCRIPTIONS, tiny_generator
from tests.tones import tone


@pytest.fixture(scope="module")
def generator() -> MusicgenGenerator:
    return tiny_generator()


@pytest.fixture(scope="module")
def batch(generator) -> torch.Tensor:
    codes = [generator.codec.encode(tone([261.6 * (1 + i / 7)], seconds=0.4, seed=i)) for i in range(3)]
    return torch.from_numpy(np.stack(codes))


def test_delay_pattern_by_hand():
    codes = torch.tensor([[[1, 2, 3], [4, 5, 6]]])  # B=1, K=2, T=3
    inputs, targets, valid = delay_pattern(codes, special=9)
    assert targets[0, 0, :3].tolist() == [1, 2, 3] and valid[0, 0].tolist() == [True, True, True, False]
    assert targets[0, 1, 1:].tolist() == [4, 5, 6] and valid[0, 1].tolist() == [False, True, True, True]
    assert inputs[0, 0].tolist() == [9, 1, 2, 3] and inputs[0, 1].tolist() == [9, 9, 4, 5]
    # a padded clip of length 2 masks its last frame in every codebook
    _, _, valid2 = delay_pattern(codes, special=9, lengths=torch.tensor([2]))
    assert valid2[0, 0].tolist() == [True, True, False, False]
    assert valid2[0, 1].tolist() == [False, True, True, False]


def test_loss_equals_hand_written_reference(generator, batch):
    texts = DESCRIPTIONS[:3]
    weights = [0.4, 1.2, 1.3, 1.4]
    got = generator.clip_losses(batch, texts, codebook_weights=weights)
    # reference: explicit loops over clips, codebooks and steps, log-softmax by hand
    b, k, t = batch.shape
    special = generator.special_token
    for i in range(b):
        seq = torch.full((k, t + k), special)  # column 0 is the start token
        for q in range(k):
            seq[q, 1 + q : 1 + q + t] = batch[i, q]
        with torch.no_grad():
            ids, mask = generator.tokenizer([texts[i]])
            states = generator.model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            states = generator.model.enc_to_dec_proj(states) * mask[..., None]
            out = generator.model.decoder(input_ids=seq[:, :-1], encoder_hidden_states=states,
                                          encoder_attention_mask=mask).logits  # (K, S, V)
        total, count = 0.0, 0
        for q in range(k):
            for j in range(t):
                step = q + j  # code (q, j) is predicted at delayed step q + j
                logp = out[q, step] - torch.logsumexp(out[q, step], dim=0)
                total += -weights[q] * float(logp[batch[i, q, j]])
                count += 1
        assert math.isclose(float(got[i].detach()), total / count, rel_tol=1e-5)


def test_captured_gradients_equal_full_autograd(generator, batch):
    texts = DESCRIPTIONS[:3]
    names = [n for tensor in LUMINA_TENSORS for n in generator.lumina_tensors(2)[tensor]]
    captured = capture_gradients(generator, batch, texts, names)
    params = generator.trainable_parameters()
    with only_requiring_grad(generator.model, list(params)), torch.enable_grad():
        loss = generator.clip_losses(batch, texts).mean()
        full = dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))
    for name in names:
        torch.testing.assert_close(captured[name], full[name], rtol=1e-5, atol=1e-7)
    # per-clip gradients average to the batch gradient
    per_clip = per_clip_gradients(generator, batch, texts, names[:2])
    for name in names[:2]:
        torch.testing.assert_close(per_clip[name].mean(0), captured[name], rtol=1e-4, atol=1e-7)


def test_truncated_backward_touches_fewer_parameters_and_nodes(generator, batch):
    texts = DESCRIPTIONS[:3]
    top = [n for t in LUMINA_TENSORS for n in generator.lumina_tensors(generator.num_layers - 1)[t]]
    params = generator.trainable_parameters()

    def build(names):
        with only_requiring_grad(generator.model, names), torch.enable_grad():
            loss = generator.clip_losses(batch, texts).mean()
            loss.backward()
            touched = [n for n, p in generator.model.named_parameters() if p.grad is not None]
            nodes = count_autograd_nodes(loss)
        generator.model.zero_grad(set_to_none=True)
        return nodes, touched

    full_nodes, full_touched = build(list(params))
    cut_nodes, cut_touched = build(top)
    assert sorted(cut_touched) == sorted(top)
    assert len(cut_touched) < len(full_touched) and cut_nodes < full_nodes / 2
    # and the gradients themselves do not change
    truncated = capture_gradients(generator, batch, texts, top)
    with only_requiring_grad(generator.model, list(params)), torch.enable_grad():
        loss = generator.clip_losses(batch, texts).mean()
        full = dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))
    for name in top:
        torch.testing.assert_close(truncated[name], full[name], rtol=1e-5, atol=1e-7)


def test_cross_attention_gradients_are_live(generator, batch):
    names = generator.lumina_tensors(1)["cross_attention.in_proj"]
    grads = capture_gradients(generator, batch, DESCRIPTIONS[:3], names)
    assert all(float(g.abs().sum()) > 0 for g in grads.values())


def test_save_load_gives_identical_outputs(generator, batch, tmp_path):
    generator.save(tmp_path / "gen")
    loaded = MusicgenGenerator.load(tmp_path / "gen")
    texts = DESCRIPTIONS[:3]
    with torch.no_grad():
        a = generator.clip_losses(batch, texts)
        b = loaded.clip_losses(batch, texts)
    assert torch.equal(a, b)
    audio = tone([300.0], seconds=0.3)
    assert np.array_equal(generator.codec.encode(audio), loaded.codec.encode(audio))
    assert loaded.identity() == generator.identity()
