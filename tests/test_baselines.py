"""Gradient baselines on a tiny MusicGen: known answers, and the project's pipelines equal dattri's attributors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dattri.algorithm import FactGraSSAttributor, LoGraAttributor, TracInAttributor, TRAKAttributor
from dattri.task import AttributionTask

from lumina.methods.baselines.block_projected import block_projected, linear_layers
from lumina.methods.baselines.gradient_similarity import inner_product_scores
from lumina.methods.baselines.gradients import example_rows, per_example_gradients
from lumina.methods.baselines.items import batch_fields, loader, loud_frames
from lumina.methods.baselines.trak import trak
from lumina.methods.baselines.unlearning import prepare, segment_losses, unlearning_scores
from lumina.methods.baselines.weights import load_weights, make_task, weights_copy
from lumina.models.capture import capture_gradients, only_requiring_grad
from lumina.models.protocol import Item
from lumina.models.training import save_checkpoint
from tests.generator_fixtures import DESCRIPTIONS, tiny_generator
from tests.tones import tone


@pytest.fixture(scope="module")
def generator():
    return tiny_generator()


@pytest.fixture(scope="module")
def items(generator) -> list[Item]:
    """Seven clips of different pitch, length (0.3–0.4 s) and description."""
    return [
        Item(generator.codec.encode(tone([220 * 2 ** (i / 5), 330 * 2 ** (i / 7)], seconds=0.3 + 0.05 * (i % 3),
                                         seed=i)), DESCRIPTIONS[i % 4])
        for i in range(7)
    ]


@pytest.fixture(scope="module")
def top(generator) -> list[str]:
    """The top layer's parameters (a subset, as the embedded default's TRAK uses)."""
    return generator.parameter_group([-1])


@torch.no_grad()
def test_loss_module_equals_teacher_forcing_loss_under_padding(generator, items):
    got = generator.loss_module()(**generator.collate(items[:4]))
    for i, item in enumerate(items[:4]):
        want = generator.clip_losses(torch.from_numpy(item.tokens)[None], [item.text])
        assert float(got[i]) == pytest.approx(float(want), rel=1e-5)


def test_graddot_equals_manual_autograd_dot_product(generator, items, tmp_path):
    train, queries = items[:5], items[5:]
    names = list(generator.trainable_parameters())
    with only_requiring_grad(generator.loss_module(), names):
        got = inner_product_scores(generator, names, [weights_copy(generator)], [1.0], train, queries, tmp_path,
                                   batch_size=2, progress=False)

    def flat(item: Item) -> torch.Tensor:
        grads = capture_gradients(generator, torch.from_numpy(item.tokens)[None], [item.text], names)
        return torch.cat([grads[n].flatten() for n in names]).double()

    want = np.array([[float(flat(t) @ flat(q)) for q in queries] for t in train])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize("choice", ["all", "cross_attn"])
def test_per_example_gradients_equal_dattri_task_gradients(generator, items, choice):
    names = generator.parameter_group(choice)
    batch = generator.collate(items[:3])
    module = generator.loss_module()
    ours = per_example_gradients(module, names, batch)
    with only_requiring_grad(generator.loss_module(), names):
        task = make_task(module, [weights_copy(generator)], tuple(batch))
        params, _ = task.get_param(0)
        theirs = task.get_grad_loss_func(in_dims=(None, 0))(params.detach(), batch)
    assert ours.shape == theirs.shape == (3, sum(generator.trainable_parameters()[n].numel() for n in names))
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("proj_dim", [0, 64])
def test_gradcos_of_a_sample_with_itself_is_one_and_ranks_first(generator, items, top, tmp_path, proj_dim):
    train, queries = items[:5], [items[1], items[3]]
    with only_requiring_grad(generator.loss_module(), top):
        scores = inner_product_scores(generator, top, [weights_copy(generator)], [1.0], train, queries, tmp_path,
                                      normalize=True, proj_dim=proj_dim, batch_size=3, progress=False)
    assert scores[1, 0] == pytest.approx(1.0, abs=1e-5) and scores[3, 1] == pytest.approx(1.0, abs=1e-5)
    assert np.argmax(scores[:, 0]) == 1 and np.argmax(scores[:, 1]) == 3
    assert np.all(scores <= 1.0 + 1e-5)


def test_tracin_over_one_checkpoint_with_weight_one_equals_graddot(generator, items, top, tmp_path):
    train, queries = items[:5], items[5:]
    generator.save(tmp_path / "model")
    with only_requiring_grad(generator.loss_module(), top):
        graddot = inner_product_scores(generator, top, [weights_copy(generator)], [1.0], train, queries,
                                       tmp_path / "a", progress=False)
        folder = save_checkpoint(generator, tmp_path / "model", 1, 0.5)
        tracin = inner_product_scores(generator, top, [folder], [1.0], train, queries, tmp_path / "b", progress=False)
        halved = inner_product_scores(generator, top, [folder], [0.5], train, queries, tmp_path / "c", progress=False)
    np.testing.assert_allclose(tracin, graddot, rtol=1e-6)
    np.testing.assert_allclose(halved, 0.5 * graddot, rtol=1e-6)


def dattri_task(generator, items) -> AttributionTask:
    return make_task(generator.loss_module(), [weights_copy(generator)], batch_fields(generator, items[0]))


@pytest.mark.parametrize(("normalize", "proj_dim"), [(False, 0), (True, 0), (False, 32), (True, 32)])
def test_inner_products_equal_dattri_tracin_attributor(generator, items, top, tmp_path, normalize, proj_dim):
    train, queries = items[:5], items[5:]
    state = weights_copy(generator)
    weights = [1.0, 0.25]
    with only_requiring_grad(generator.loss_module(), top):
        ours = inner_product_scores(generator, top, [state, state], weights, train, queries, tmp_path,
                                    normalize=normalize, proj_dim=proj_dim, proj_seed=3, batch_size=2, progress=False)
        task = make_task(generator.loss_module(), [state, state], batch_fields(generator, items[0]))
        projector = ({"proj_dim": proj_dim, "proj_max_batch_size": 32, "proj_seed": 3, "device": "cpu",
                      "proj_type": "normal"} if proj_dim else
                     {"proj_dim": -1, "proj_max_batch_size": 32, "proj_seed": 0, "device": "cpu",
                      "proj_type": "identity"})
        attributor = TracInAttributor(task, weight_list=torch.tensor(weights), normalized_grad=normalize,
                                      projector_kwargs=projector)
        theirs = attributor.attribute(loader(generator, train, 5), loader(generator, queries, 2)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * np.abs(theirs).max())


def test_trak_equals_dattri_and_ranks_a_duplicate_first(generator, items, top, tmp_path):
    train, queries = items[:6], [items[4], items[6]]
    state = weights_copy(generator)
    with only_requiring_grad(generator.loss_module(), top):
        ours, info = trak(generator, top, [state], [(0, 0), (0, 1)], train, queries, tmp_path, proj_dim=48,
                          regularization=1e-3, proj_seed=5, batch_size=4, progress=False)
        task = make_task(generator.loss_module(), [state, state], batch_fields(generator, items[0]))
        attributor = TRAKAttributor(
            task, correct_probability_func=lambda params, data: data[0].sum() * 0.0,
            projector_kwargs={"proj_dim": 48, "proj_max_batch_size": 32, "proj_seed": 5, "device": "cpu"},
            # dattri scales g by 1/√D
            regularization=1e-3 / sum(generator.trainable_parameters()[n].numel() for n in top),
        )
        attributor.cache(loader(generator, train, 6))
        theirs = attributor.attribute(loader(generator, queries, 2)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4 * np.abs(theirs).max())
    assert np.argmax(ours[:, 0]) == 4
    assert info["kernel_top_eigenvalue"] > 0


@pytest.mark.parametrize(("method", "attributor", "kwargs"), [
    ("logra", LoGraAttributor, {"proj_dim": 4}),
    ("factgrass", FactGraSSAttributor, {"proj_dim": 4, "blowup_factor": 4}),
])
def test_block_projected_equals_dattri(generator, items, tmp_path, method, attributor, kwargs):
    train, queries = items[:7], items[5:]
    module = generator.loss_module(mean=True)
    task = AttributionTask(loss_func=lambda model, batch, device: model(**batch).loss, model=module,
                           checkpoints=[weights_copy(generator)], checkpoints_load_func=load_weights)
    with torch.compiler.set_stance("force_eager"):
        reference = attributor(task=task, layer_names=linear_layers(module, "all", generator.num_layers),
                               device="cpu", offload="cpu", cache_dir=str(tmp_path / "dattri"), **kwargs)
        reference.cache(loader(generator, train, 7, as_dict=True))
        theirs = reference.attribute(loader(generator, train, 7, as_dict=True),
                                     loader(generator, queries, 2, as_dict=True)).numpy()
    ours, info = block_projected(generator, method, train, queries, tmp_path / "ours", proj_dim=4, batch_size=3,
                                 progress=False)
    assert info["feature_dim"] == 4 * info["layers"]
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4 * np.abs(theirs).max())
    assert np.argmax(ours[:, 0]) == 5 and np.argmax(ours[:, 1]) == 6


def test_unlearning_ranks_the_unlearned_sample_first(generator, items, tmp_path):
    train, queries = items[:6], [items[2], items[5]]
    before = weights_copy(generator)
    names = generator.parameter_group("layers")
    scores, info = unlearning_scores(generator, names, train, queries, train, tmp_path, steps=3, lr=1e-3,
                                     optimizer="adam", batch_size=4, progress=False)
    assert scores.shape == (6, 2)
    assert np.argmax(scores[:, 0]) == 2 and np.argmax(scores[:, 1]) == 5
    assert info["query_loss_increase_mean"] > 0 and info["fisher_penalty_mean"] > 0
    for name, param in generator.trainable_parameters().items():
        assert torch.equal(param, before[name]), f"{name} not restored"


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("choice", [[-1], [1, 2], "self_attn"])
def test_unlearning_evaluates_only_the_layers_above_the_lowest_target(generator, items, choice):
    names = generator.parameter_group(choice)
    prepared = prepare(generator, items, names, batch_size=3)
    assert prepared.start == (0 if choice == "self_attn" else min(choice) % generator.num_layers)
    with torch.no_grad():
        full = generator.loss_module()(**generator.collate(items)).double().numpy()
    np.testing.assert_allclose(segment_losses(generator, prepared, len(items)), full, rtol=1e-5)


def test_interrupted_gradients_resume_from_the_cached_batches(generator, items, top, tmp_path):
    calls: list[int] = []
    interrupt_at = [2]

    def failing_second(g: torch.Tensor) -> torch.Tensor:
        calls.append(g.shape[0])
        if len(calls) == interrupt_at[0]:
            raise Interrupted
        return g.sum(dim=1, keepdim=True)

    with pytest.raises(Interrupted):
        example_rows(generator, top, items, failing_second, tmp_path, batch_size=3, progress=False)
    assert len(list(tmp_path.glob("batch3-*.npy"))) == 1
    calls.clear()
    interrupt_at[0] = 0
    resumed = example_rows(generator, top, items, failing_second, tmp_path, batch_size=3, progress=False)
    assert calls == [3, 1]  # the first batch came from the cache
    fresh = example_rows(generator, top, items, lambda g: g.sum(dim=1, keepdim=True), None, batch_size=3,
                         progress=False)
    np.testing.assert_array_equal(resumed, fresh)


def test_parameter_choices(generator):
    every = list(generator.trainable_parameters())
    assert generator.parameter_group("all") == every
    kv = generator.parameter_group("cross_attn_kv")
    assert len(kv) == 2 * generator.num_layers and all("encoder_attn.k_proj" in n or "encoder_attn.v_proj" in n
                                                         for n in kv)
    assert set(kv) < set(generator.parameter_group("cross_attn")) < set(generator.parameter_group("layers"))
    assert all(".self_attn." in n for n in generator.parameter_group("self_attn"))
    assert generator.parameter_group([-1]) == generator.parameter_group([generator.num_layers - 1])
    with pytest.raises(ValueError, match="out of range"):
        generator.parameter_group([generator.num_layers])
    with pytest.raises(ValueError, match="unknown parameter choice"):
        generator.parameter_group("mlp")


def test_silence_mask_removes_quiet_frames_from_the_loss(generator, items):
    hop = 640
    audio = np.concatenate([tone([440.0], seconds=0.2), np.zeros(int(0.2 * 32000), dtype=np.float32)])
    keep = loud_frames(audio, 20, hop, -50.0)
    assert keep[:9].all() and not keep[11:].any()
    item = items[0]
    mask = np.zeros(item.frames, dtype=bool)
    mask[:5] = True
    valid = generator.collate([Item(item.tokens, item.text, mask)])["valid"]
    full = generator.collate([item])["valid"]
    assert int(valid.sum()) == 5 * generator.num_codebooks < int(full.sum())
    assert bool(valid[0, 0, :5].all()) and bool(valid[0, 3, 3:8].all())
