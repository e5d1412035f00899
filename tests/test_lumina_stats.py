"""LUMINA's statistics and shares against hand-computed values, and docs/lumina.md#worked-example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lumina.methods.lumina.stats import (
    TIER_NAMES,
    calibration,
    confidence,
    gated_shares,
    lip,
    lip_percent,
    population,
    qualify,
    shares,
    sts,
    tiers,
    weigh,
)
from lumina.runs.errors import ParameterError


def test_sts_is_a_z_score_with_the_population_std():
    scores = np.array([1.0, 2.0, 3.0, 4.0])
    mu, sigma = population(scores)
    assert mu == 2.5 and math.isclose(sigma, math.sqrt(1.25))  # ddof = 0
    np.testing.assert_allclose(sts(scores, mu, sigma), [-1.3416408, -0.4472136, 0.4472136, 1.3416408], rtol=1e-7)
    np.testing.assert_allclose(sts([0.3, 0.1], 0.1, 0.05), [4.0, 0.0])
    assert sts([0.2, 0.2], 0.2, 0.0).tolist() == [0.0, 0.0]


def test_confidence_two_and_one_sided():
    assert math.isclose(confidence(1.96), 0.9500042, rel_tol=1e-6)  # erf(1.96/√2)
    assert math.isclose(confidence(1.0), 0.6826895, rel_tol=1e-6)
    assert confidence(0.0) == 0.0
    assert confidence(-2.6) == 0.0  # not erf's -0.99: a song below the floor has no confidence
    assert math.isclose(confidence(1.645, "one_sided"), 0.9500151, rel_tol=1e-6)  # Φ(1.645)
    assert confidence(0.0, "one_sided") == 0.5
    with pytest.raises(ParameterError):
        confidence(1.0, "both")


def test_lip_and_lip_percent():
    assert math.isclose(lip(2.0), math.tanh(1.0)) and math.isclose(lip(2.0), 0.7615942, rel_tol=1e-6)
    assert math.isclose(lip_percent(2.0), 88.079708, rel_tol=1e-7)
    assert lip_percent(0.0) == 50.0
    assert math.isclose(lip_percent(-2.0, k=1.0), (math.tanh(-2.0) + 1) / 2 * 100)


def test_pizza_example_of_seed_001():
    below = np.linspace(-2.0, 0.99, 83)
    values = np.concatenate([[3.2, 2.1, 1.8, 1.3], below])
    result = gated_shares(values)
    # weights 4.84, 1.21, 0.64, 0.09 of 6.78
    np.testing.assert_allclose(result[:4], np.array([4.84, 1.21, 0.64, 0.09]) / 6.78, rtol=1e-12)
    assert [round(100 * s, 1) for s in result[:4]] == [71.4, 17.8, 9.4, 1.3]
    assert (result[4:] == 0).all() and math.isclose(result.sum(), 1.0)


def test_gated_shares_all_zero_when_nobody_qualifies():
    assert gated_shares(np.array([1.0, 0.5, -3.0])).tolist() == [0.0, 0.0, 0.0]


def test_tiers_on_z_noise():
    z = [-1.0, 0.99, 1.0, 1.99, 2.0, 2.99, 3.0, 7.0]
    assert tiers(z).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [TIER_NAMES[c] for c in tiers(z)] == ["noise", "noise", "qualified", "qualified", "high confidence",
                                                 "high confidence", "definitive", "definitive"]


def test_calibration_theoretical_and_empirical():
    assert calibration(None, 512, "theoretical") == (0.0, 1 / math.sqrt(512))
    assert math.isclose(calibration(None, 512, "theoretical")[1], 0.0441942, rel_tol=1e-6)  # the docs' 4.4 %
    assert math.isclose(calibration(None, 216, "theoretical")[1], 0.0680414, rel_tol=1e-6)  # 6.8 % at 216-D
    mu0, sigma0 = calibration(np.array([[0.1, 0.3], [0.2, 0.4]]), 216)
    assert math.isclose(mu0, 0.25) and math.isclose(sigma0, math.sqrt(0.0125))
    with pytest.raises(ParameterError, match="control tracks"):
        calibration(None, 216, "empirical")


def test_gates_weights_and_shares_by_hand():
    scores = np.array([0.5, 0.2, -0.1, 0.3])
    sts_values = np.array([1.5, 0.8, 1.2, 1.01])
    z = np.array([2.0, 1.9, 3.0, 1.96])
    tau = 0.25
    common = {"scores": scores, "sts_values": sts_values, "z_noise": z, "tau": tau}
    assert qualify("sts1", **common).tolist() == [True, False, False, True]  # -0.1: positive-only
    assert qualify("sts1", **common, positive_only=False).tolist() == [True, False, True, True]
    assert qualify("conf95", **common).tolist() == [True, False, False, True]  # erf(1.96/√2) >= 0.95 > erf(1.9/√2)
    assert qualify("conf95", **common, sided="one_sided").tolist() == [True, True, False, True]
    assert qualify("calibrated", **common).tolist() == [True, False, False, True]
    np.testing.assert_allclose(weigh("gated_sq", scores=scores, sts_values=sts_values, tau=tau),
                               [0.25, 0.0, 0.04, 0.0001])
    np.testing.assert_allclose(weigh("lip", scores=scores, sts_values=sts_values, tau=tau),
                               np.tanh(0.5 * sts_values))
    excess = weigh("excess", scores=scores, sts_values=sts_values, tau=tau)
    np.testing.assert_allclose(excess, [0.25, -0.05, -0.35, 0.05])
    np.testing.assert_allclose(shares(excess, [True, False, False, True]), [0.25 / 0.3, 0, 0, 0.05 / 0.3])
    with pytest.raises(ParameterError):
        qualify("sts2", **common)
