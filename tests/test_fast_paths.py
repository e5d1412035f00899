"""The faster paths give the results of the plain ones: the one-pass similarity kernel of the similarity-and-shares
step, and FactGraSS's projection blocks drawn once instead of per batch (benchmarks/lumina_extraction.py and
benchmarks/gradient_baselines.py time them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from dattri.func.projection import random_project

from lumina.baselines import block_projected as bp
from lumina.database import SignatureDatabase
from lumina.device import REFERENCE
from lumina.generator.protocol import Item
from lumina.report import attribute, prepare, score_channel
from lumina.signature_scoring import ScoringConfig, kernel_factor, kernel_scores, query_scores, unit_rows
from tests.generator_fixtures import DESCRIPTIONS, tiny_generator


def test_one_pass_similarity_equals_the_two_products():
    rng = np.random.default_rng(0)
    train = unit_rows(rng.standard_normal((700, 36)))
    query = unit_rows(rng.standard_normal((1, 36)))[0]
    factor = kernel_factor(train, 0.01)
    cos, kr = query_scores(train, query, factor)
    np.testing.assert_allclose(cos, train @ query, rtol=0, atol=1e-14)
    np.testing.assert_allclose(kr, kernel_scores(train, query[None], 0.01)[:, 0], rtol=1e-12, atol=1e-14)


def test_similarity_and_shares_equal_the_plain_products():
    rng = np.random.default_rng(1)
    n, dims = 400, {"P": 72, "M": 36}
    signatures = {c: rng.standard_normal((n + 10, d)).astype(np.float32) for c, d in dims.items()}
    for c in dims:  # a few training songs close to the query, so that some qualify
        signatures[c][:5] += 3 * signatures[c][-1]
    db = SignatureDatabase(Path("random"), [f"t{i}" for i in range(n + 10)], ["train"] * n + ["control"] * 10,
                           signatures, [], {})
    query = {c: signatures[c][-1] for c in dims}
    reference = prepare(db, ScoringConfig())
    fast = attribute(query, reference)
    for c in dims:
        g = unit_rows(np.asarray(query[c])[None])
        plain = score_channel(reference.train[c] @ g[0], kernel_scores(reference.train[c], g, 0.01)[:, 0],
                              reference.noise[c], reference.config)
        assert plain.qualified.any() and (fast[c].qualified == plain.qualified).all()
        assert (fast[c].tier == plain.tier).all()
        for field in ("cosine", "kernel", "sts", "z_noise", "confidence", "share"):
            np.testing.assert_allclose(getattr(fast[c], field), getattr(plain, field), rtol=1e-12, atol=1e-13)


def test_projection_drawn_once_gives_dattris_bits():
    features = torch.randn(6, 1024, generator=torch.Generator().manual_seed(0))
    project = random_project(features, 6, proj_dim=256, proj_max_batch_size=64, proj_seed=7, proj_type="normal",
                             device=REFERENCE.device)
    once = bp.drawn_once(project)
    assert isinstance(once, bp.DrawnOnce) and len(once.blocks) == 3
    for rows in (features, features[:2] * 3):
        assert torch.equal(once(rows, ensemble_id=0), project(rows, ensemble_id=0))
    single = random_project(features, 6, proj_dim=64, proj_max_batch_size=64, proj_seed=7, proj_type="normal",
                            device=REFERENCE.device)
    assert bp.drawn_once(single) is single  # one block: dattri draws it once already


def test_factgrass_scores_unchanged_by_drawing_once(tmp_path, monkeypatch):
    generator = tiny_generator(seed=1)
    rng = np.random.default_rng(0)
    items = [Item(rng.integers(0, generator.special_token, (generator.num_codebooks, 30 - i)), DESCRIPTIONS[i % 4])
             for i in range(10)]
    options = {"layers": [-1], "proj_dim": 256, "hessian": "Identity", "batch_size": 4, "progress": False}
    fast, _ = bp.block_projected(generator, "factgrass", items[:8], items[8:], tmp_path / "fast", **options)
    monkeypatch.setattr(bp, "drawn_once", lambda project: project)
    plain, _ = bp.block_projected(generator, "factgrass", items[:8], items[8:], tmp_path / "plain", **options)
    assert fast.tobytes() == plain.tobytes()
