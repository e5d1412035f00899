"""Axis–channel alignment: a planted axis is found in its channel and not in others."""

import numpy as np
import pytest

from aria.alignment import alignment, dominant_axis, pc_r2
from aria.channels import ChannelSet

rng = np.random.default_rng(0)
CHANNELS = ChannelSet("test", {"rhythm": ("a",), "timbre": ("b",), "harmony": ("chords",)},
                      {"a": "euclidean", "b": "euclidean", "chords": "lcs"},
                      {"rhythm": "Rhythmic", "timbre": "Timbral", "harmony": "Harmonic"})


def test_axis_equal_to_one_dimension_has_r_max_one():
    X = {"a": rng.normal(size=(100, 8)), "b": rng.normal(size=(100, 30))}
    u = 3.0 * X["b"][:, 7] + 1.0
    out = alignment(u, X, channel_set=CHANNELS)
    assert out["timbre"]["r_max"] == pytest.approx(1.0)
    assert (out["timbre"]["r_max_feature"], out["timbre"]["r_max_dim"]) == ("b", 7)
    assert out["rhythm"]["r_max"] < 0.4
    assert "harmony" not in out  # the chord sequence is not a vector feature


def test_r2_uses_only_the_leading_components():
    latent = rng.normal(size=(200, 2)) * [5.0, 4.0]
    X = latent @ rng.normal(size=(2, 40)) + 0.05 * rng.normal(size=(200, 40))
    assert pc_r2(latent[:, 0] + latent[:, 1], X) == pytest.approx(1.0, abs=1e-3)
    noise = rng.normal(size=200)
    assert pc_r2(noise, X) < 0.1
    wide = rng.normal(size=(20, 200))  # a wide group alone could fit anything; 5 PCs cannot
    assert pc_r2(rng.normal(size=20), wide) < 0.9


def test_dominant_axis_of_a_rank1_matrix():
    u = rng.normal(size=50)
    axis = dominant_axis(np.outer(u, rng.normal(size=9)))
    assert abs(np.corrcoef(axis, u)[0, 1]) == pytest.approx(1.0)
