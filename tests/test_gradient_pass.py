"""The shared gradient pass (`+method=gradients`) against each method's own path, on a tiny corpus and trained model:
every derived score matrix equals what `+method=NAME` computes (bit for bit where the arithmetic is the same, else
within a stated tolerance), is written where that run writes it, and the pass resumes from its per-batch cache."""
# ruff: noqa: F811  (the fixtures imported from test_baselines_methods are arguments here)

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lumina.configure import method_context
from lumina.methods import get_method, write_results
from lumina.methods.baselines import gradient_pass as pass_module
from lumina.methods.baselines.block_projected import (
    Compression,
    compress_batches,
    compressed_parameters,
    projected_rows,
    set_up_compressors,
    sparsified_rows,
)
from lumina.methods.baselines.gradient_pass import Columns, Differentiate
from lumina.methods.baselines.gradients import parameter_order, per_example_gradients
from lumina.methods.gradient import gradients_options, segment_corpus
from lumina.methods.options import GRADIENT_PASS_METHODS, METHOD_OPTIONS, options_for
from lumina.models.music_transformer import ArchConfig, MusicTransformerGenerator, build_model
from lumina.models.protocol import Item
from lumina.runs.errors import ParameterError
from lumina.runs.layout import Layout
from tests.generator_fixtures import DESCRIPTIONS, tiny_generator
from tests.test_baselines_methods import corpus, load_generator  # noqa: F401  (module fixtures)

SMALL = {
    "graddot": {},  # every LM parameter, as the default
    "gradcos": {},
    "tracin": {"parameters": [-1]},
    "trak": {"parameters": [-1], "proj_dim": 64, "ensemble": 2},
    "logra": {"proj_dim": 4},  # every called linear, as the default
    "factgrass": {"proj_dim": 4},
}
"""Each method's options beyond its defaults: the defaults' shapes (GradDot and Grad-Cos over every parameter, so the
pass's union is every parameter and TRAK's and TracIn's layers are a slice of it; LoGra and FactGraSS over every
linear), small enough for a test."""

TOLERANCE = {
    "graddot": None, "gradcos": None,  # bit for bit: the same gradients on the same batches, the same products
    # The trained weights' gradients of a subset of the parameters come out of the all-parameter vmap(grad); autograd
    # reaches the same products by other kernels when more parameters require grad, so they differ in the last bits
    # (a few float32 ulps) from a vmap over the subset alone; the saved checkpoints that differ from the trained weights
    # are visited with the method's own parameters and give the same bits.
    "tracin": 1e-6,  # measured 3e-8
    "trak": 1e-6,  # the same last-bit differences through k = 64 projections and (ΦᵀΦ + λI)⁻¹; measured 8e-8
    # The compression is applied to G = Σ_t δ_t x̃_tᵀ instead of summing the compressed outer products over steps
    # (float32 summation order; ~1e-7 relative per row), then amplified by each layer's inverse empirical Fisher.
    "logra": 1e-3,  # measured 1e-5
    "factgrass": 1e-3,  # measured 2.5e-4
}
"""Largest difference allowed between the pass's scores and the own path's, relative to the largest |score|;
None = identical bits."""

TRAK_DIAGNOSTICS = ("kernel_top_eigenvalue", "kernel_mean_eigenvalue", "regularization_over_mean_eigenvalue")


def own_context(name: str, corpus, load_generator, root: Path):
    options = {**METHOD_OPTIONS[name]().as_dict(), **SMALL[name], "segment_s": 1.0, "batch_size": 5}
    return method_context(corpus, options, Layout(root, root / "runs", "tiny"), load_generator, progress=False)


def pass_context(corpus, load_generator, root: Path, methods=GRADIENT_PASS_METHODS):
    options = {**METHOD_OPTIONS["gradients"]().as_dict(), "methods": list(methods), "segment_s": 1.0,
               "batch_size": 5, "overrides": {m: SMALL[m] for m in methods}}
    return method_context(corpus, options, Layout(root, root / "runs", "tiny"), load_generator, progress=False)


@pytest.fixture(scope="module")
def own(corpus, load_generator, tmp_path_factory):
    """Each method's matrix from its own path (`+method=NAME`), batches of 5 (the last one smaller)."""
    root = tmp_path_factory.mktemp("own")
    return {name: get_method(name)(own_context(name, corpus, load_generator, root))[0] for name in SMALL}


@pytest.fixture(scope="module")
def shared(corpus, load_generator, tmp_path_factory):
    """The six matrices from one shared pass, and its context."""
    ctx = pass_context(corpus, load_generator, tmp_path_factory.mktemp("shared"))
    return {m.method: m for m in get_method("gradients")(ctx)}, ctx


@pytest.mark.parametrize("name", list(SMALL))
def test_shared_pass_scores_equal_the_methods_own_path(name, own, shared):
    ours, theirs = shared[0][name], own[name]
    assert ours.scores.shape == theirs.scores.shape == (12, 3)
    assert (ours.setting, ours.segment_track, ours.query_ids) == (theirs.setting, theirs.segment_track,
                                                                  theirs.query_ids)
    if TOLERANCE[name] is None:
        assert ours.scores.tobytes() == theirs.scores.tobytes()
    else:
        scale = np.abs(theirs.scores).max()
        assert np.abs(ours.scores - theirs.scores).max() <= TOLERANCE[name] * scale
        # the same top segment for every query, not only close numbers
        assert (ours.scores.argmax(axis=0) == theirs.scores.argmax(axis=0)).all()


def test_shared_pass_records_the_methods_own_settings_and_a_note(own, shared):
    matrices, _ = shared
    for name, theirs in own.items():
        ours = matrices[name].settings
        note = {k: ours[k] for k in ours if k.startswith("gradient_pass")}
        assert "+method=gradients" in note["gradient_pass"]
        rest = {k: v for k, v in ours.items() if k not in note}
        diagnostics = TRAK_DIAGNOSTICS if name == "trak" else ()
        for key in diagnostics:  # computed from the features: equal to the features' rounding
            assert rest.pop(key) == pytest.approx(theirs.settings[key], rel=1e-4)
        assert rest == {k: v for k, v in theirs.settings.items() if k not in diagnostics}
    # the tiny recipe's last training checkpoint is its final model: TracIn reads it from the trained weights' pass
    assert len(matrices["tracin"].settings["gradient_pass_checkpoints_as_final"]) == 1


def test_shared_pass_writes_where_each_method_writes(shared, own, tmp_path):
    matrices, ctx = shared
    folders = write_results(list(matrices.values()), ctx, seconds=1.0)
    assert [f.relative_to(ctx.layout.runs).parts for f in folders] == [(m.method, m.setting)
                                                                       for m in matrices.values()]
    for folder in folders:
        record = json.loads((folder / "run.json").read_text())
        assert record["method"] == folder.parent.name and (folder / "scores.h5").exists()


def test_compression_from_per_example_gradients_equals_dattri_hooks(load_generator, corpus, tmp_path):
    """`sparsified_rows` then `projected_rows` on vmap's per-example gradients against dattri's hooks on the mean loss
    (which scale each example's compressed gradient back by the batch size): one batch of 5 segments, every linear."""
    generator = load_generator()
    items = segment_corpus(own_context("logra", corpus, load_generator, tmp_path), generator).train[:5]
    for method in ("logra", "factgrass"):
        compression = Compression(method, "all", 16, 4, 0, items[0])
        with torch.compiler.set_stance("force_eager"):
            setup = set_up_compressors(generator, compression)
            compress_batches(generator, setup, items, [(0, np.arange(5))], tmp_path / method, 5)
        hooks = np.load(tmp_path / method / "batch5-00000.npy")
        names = compressed_parameters(setup)
        module = generator.loss_module()
        grads = per_example_gradients(module, names, generator.collate(items))
        ours = projected_rows(setup, sparsified_rows(setup, Columns(module, names).views(grads, names))).numpy()
        assert ours.shape == hooks.shape == (5, 16 * len(setup[1]))
        np.testing.assert_allclose(ours, hooks, rtol=1e-4, atol=1e-5 * np.abs(hooks).max())


@pytest.mark.parametrize("kind", ["musicgen", "musictransformer"])
def test_gradients_above_a_cut_equal_the_full_vmap_bit_for_bit(kind):
    """Parameters above decoder layer 0 only: the lower layers run batched outside vmap (the layer split), the
    gradients are those of `per_example_gradients` over the whole forward, bit for bit, on both generators."""
    rng = np.random.default_rng(0)
    if kind == "musicgen":
        generator = tiny_generator()
        items = [Item(rng.integers(0, 16, (4, 30 + 3 * i)), DESCRIPTIONS[i % 4]) for i in range(5)]
        choices = ([-1], [1, 3], "cross_attn_kv", "all")
    else:
        generator = MusicTransformerGenerator(build_model(ArchConfig(
            n_layers=3, num_heads=2, d_model=16, dim_feedforward=32, max_sequence=64, rpr=True), 0))
        items = [Item(rng.integers(0, 388, 20 + 3 * i)[None], "") for i in range(4)]
        choices = ([-1], [1, 2], "all")
    module = generator.loss_module()
    for choice in choices:
        order = parameter_order(module, generator.parameter_group(choice))
        differentiate = Differentiate(generator, module, order)
        assert (differentiate.upper is None) == (choice in ("all", "cross_attn_kv"))  # these start at layer 0
        want = per_example_gradients(module, order, generator.collate(items))
        assert differentiate(items).numpy().tobytes() == want.numpy().tobytes(), choice


def test_interrupted_pass_resumes_from_its_batches(corpus, load_generator, shared, tmp_path, monkeypatch):
    """Interrupt the pass in the second visit's second training batch, rerun: only the missing batches (and the query
    gradients their inner products need) are computed again, the scores are the uninterrupted pass's bit for bit,
    and a third run computes nothing."""
    calls: list[int] = []
    real = pass_module.Differentiate.__call__

    def counted(self, items):
        calls.append(len(items))
        if len(calls) == 7:  # per visit: the 3 queries (one batch), then the 12 segments (batches of 5, 5, 2)
            raise KeyboardInterrupt
        return real(self, items)

    monkeypatch.setattr(pass_module.Differentiate, "__call__", counted)
    methods = ("graddot", "tracin", "logra")
    with pytest.raises(KeyboardInterrupt):
        get_method("gradients")(pass_context(corpus, load_generator, tmp_path, methods))
    # visit 1 (the trained weights) done; visit 2 (TracIn's first checkpoint): queries, one batch, then interrupted
    assert calls == [3, 5, 5, 2, 3, 5, 5]
    calls.clear()
    resumed = get_method("gradients")(pass_context(corpus, load_generator, tmp_path, methods))
    assert calls == [3, 5, 2]  # visit 2 only: its queries again (held for the inner products), its two last batches
    for matrix in resumed:
        assert matrix.scores.tobytes() == shared[0][matrix.method].scores.tobytes()
    calls.clear()
    again = get_method("gradients")(pass_context(corpus, load_generator, tmp_path, methods))
    assert calls == [] and all(a.scores.tobytes() == b.scores.tobytes() for a, b in zip(again, resumed, strict=True))


def test_pass_options_derive_each_methods_defaults():
    derived = gradients_options(options_for("gradients", {
        **METHOD_OPTIONS["gradients"]().as_dict(), "batch_size": 4, "overrides": {"trak": {"proj_dim": 512}}}))
    assert list(derived) == list(GRADIENT_PASS_METHODS)
    assert derived["trak"] == options_for("trak", {**METHOD_OPTIONS["trak"]().as_dict(), "batch_size": 4,
                                                   "proj_dim": 512})
    assert derived["graddot"] == options_for("graddot", {**METHOD_OPTIONS["graddot"]().as_dict(), "batch_size": 4})
    for bad in ({"methods": ["unlearning"]}, {"methods": ["trak"], "overrides": {"logra": {}}},
                {"overrides": {"trak": {"batch_size": 2}}}):
        with pytest.raises(ParameterError):
            gradients_options(options_for("gradients", {**METHOD_OPTIONS["gradients"]().as_dict(), **bad}))
