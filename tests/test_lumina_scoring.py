"""Cosine and kernel-regression scoring, and the per-channel report built on them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lumina.methods.lumina.attribution import score_channel, summary
from lumina.methods.lumina.scoring import ScoringConfig, combined, cosine_scores, kernel_factor, kernel_scores
from lumina.methods.lumina.stats import gated_shares
from lumina.runs.errors import ParameterError


def test_cosine_by_hand():
    train = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, -2.0]])
    np.testing.assert_allclose(cosine_scores(train, np.array([[2.0, 0.0]]))[:, 0], [1.0, 1 / math.sqrt(2), 0.0],
                               atol=1e-15)
    with pytest.raises(ParameterError):
        cosine_scores(train, np.zeros((1, 2)))


def test_kernel_regression_by_hand():
    # K = [[1], [2]], λ = 0.01, g = [1]: (K Kᵀ + λI)⁻¹ K g = [1, 2] / 5.01
    got = kernel_scores(np.array([[1.0], [2.0]]), np.array([[1.0]]), lam=0.01)[:, 0]
    np.testing.assert_allclose(got, [1 / 5.01, 2 / 5.01], rtol=1e-12)


@pytest.mark.parametrize("n, d", [(7, 5), (5, 9)])
def test_kernel_regression_equals_a_direct_linear_solve(n, d):
    rng = np.random.default_rng(n)
    k, g = rng.standard_normal((n, d)), rng.standard_normal((3, d))
    direct = np.linalg.solve(k @ k.T + 0.01 * np.eye(n), k @ g.T)
    np.testing.assert_allclose(kernel_scores(k, g, 0.01), direct, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(kernel_scores(k, g, 0.01, kernel_factor(k, 0.01)), direct, rtol=1e-8, atol=1e-10)


def test_combined_channel_cosine_is_the_mean_of_both():
    rng = np.random.default_rng(1)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    p, m = unit(rng.standard_normal((4, 6))), unit(rng.standard_normal((4, 3)))
    both = cosine_scores(combined(p, m), combined(p[:1], m[:1]))[:, 0]
    np.testing.assert_allclose(both, (cosine_scores(p, p[:1]) + cosine_scores(m, m[:1]))[:, 0] / 2, rtol=1e-12)


def test_channel_report_by_hand():
    cos = np.array([0.6, 0.1, 0.05, -0.15, 0.0, 0.2])
    ids = [f"t{i}" for i in range(6)]
    report = summary(score_channel(cos, np.zeros(6), noise=(-0.3, 0.2), config=ScoringConfig()), ids)
    mu, sigma = cos.mean(), cos.std()
    assert math.isclose(report["mu"], mu) and math.isclose(report["sigma"], sigma)
    assert math.isclose(report["tau"], -0.1)
    rows = {r["track_id"]: r for r in report["rows"]}
    assert [r["track_id"] for r in report["rows"]] == ["t0", "t5", "t1", "t2", "t4", "t3"]
    expected_shares = gated_shares((cos - mu) / sigma)
    for i, t in enumerate(ids):
        assert math.isclose(rows[t]["sts"], (cos[i] - mu) / sigma)
        assert math.isclose(rows[t]["z_noise"], (cos[i] + 0.3) / 0.2)
        assert math.isclose(rows[t]["share"], expected_shares[i], abs_tol=1e-15)
        assert math.isclose(rows[t]["lip_percent"], (math.tanh(0.5 * rows[t]["sts"]) + 1) * 50)
    assert rows["t0"]["tier"] == "definitive" and rows["t0"]["share"] == 1.0  # only t0 has STS > 1
    assert rows["t3"]["z_noise"] == pytest.approx(0.75) and rows["t3"]["tier"] == "noise"
    # z_noise of t4 is 1.5 (qualified), but a cosine of 0 is no influence under the positive-only policy
    assert rows["t4"]["z_noise"] == pytest.approx(1.5) and rows["t4"]["tier"] == "noise"
    excess = ScoringConfig(gate="calibrated", weight="excess")
    calibrated = summary(score_channel(cos, np.zeros(6), (-0.3, 0.2), excess), ids)
    got = {r["track_id"]: r["share"] for r in calibrated["rows"]}
    positive = {t: c + 0.1 for t, c in zip(ids, cos, strict=True) if c > 0}
    assert got == pytest.approx({t: positive.get(t, 0.0) / sum(positive.values()) for t in ids})


@pytest.mark.parametrize("gate", ["sts1", "conf95", "calibrated"])
@pytest.mark.parametrize("weight", ["gated_sq", "lip", "excess"])
@pytest.mark.parametrize("sided", ["two_sided", "one_sided"])
def test_scoring_only_the_candidates_equals_scoring_every_song(gate, weight, sided):
    """`score_channel` evaluates gates, weights and tiers on the songs that can pass; every song's values are
    those of the plain formulas over all songs (shares to rounding), whatever the gate, weight and floor."""
    from lumina.methods.lumina.stats import confidence, qualify, shares, sts, tiers, weigh

    rng = np.random.default_rng(7)
    for noise, positive_only in (((0.05, 0.1), True), ((-0.2, 0.05), False), ((0.0, 0.0), True)):
        cos = np.clip(rng.normal(0.1, 0.2, 500), -1, 1)
        config = ScoringConfig(gate=gate, weight=weight, confidence=sided, positive_only=positive_only)
        got = score_channel(cos, np.zeros(500), noise, config)
        mu, sigma, tau = cos.mean(), cos.std(), noise[0] + noise[1]
        s, z = sts(cos, mu, sigma), sts(cos, *noise)
        qualified = qualify(gate, scores=cos, sts_values=s, z_noise=z, tau=tau, sided=sided,
                            positive_only=positive_only)
        tier = np.where(cos > 0, tiers(z), 0) if positive_only else tiers(z)
        assert qualified.any() or gate == "conf95"
        assert (got.qualified == qualified).all() and (got.tier == tier).all()
        np.testing.assert_allclose(got.share, shares(weigh(weight, scores=cos, sts_values=s, tau=tau), qualified),
                                   rtol=1e-12, atol=1e-15)
        assert (got.sts == s).all() and (got.z_noise == z).all() and (got.confidence == confidence(z, sided)).all()
