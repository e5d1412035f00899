"""FactGraSS's projection blocks drawn once instead of per batch give dattri's results bit for bit
(benchmarks/gradient_baselines.py times the difference)."""

from __future__ import annotations

import numpy as np
import torch
from dattri.func.projection import random_project

from lumina.methods.baselines import block_projected as bp
from lumina.models.protocol import Item
from lumina.runs.device import REFERENCE
from tests.generator_fixtures import DESCRIPTIONS, tiny_generator


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
