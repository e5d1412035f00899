"""Homogeneity z-scores: the null is calibrated, planted structure is found, summaries and strata by hand."""

import numpy as np
import pytest

from aria.channels import ChannelSet
from aria.homogeneity import (
    group_similarity,
    group_values,
    homogeneity,
    null_distribution,
    random_groups,
    stratify,
    summarize,
    top_k_groups,
    valid_ks,
    zscores,
)
from aria.similarity import feature_std, standardized_similarity

CHANNELS = ChannelSet("test", {"rhythm": ("a",), "timbre": ("b", "c")}, {f: "euclidean" for f in "abc"},
                      {"rhythm": "Rhythmic", "timbre": "Timbral"})


def _pool(n=60, seed=0, clusters=None):
    rng = np.random.default_rng(seed)
    vectors = {"a": rng.normal(size=(n, 4)), "b": rng.normal(size=(n, 6)), "c": rng.normal(size=(n, 3))}
    if clusters is not None:
        vectors["b"] += 4.0 * np.eye(6)[clusters]  # timbre clusters
    return {k: standardized_similarity(v, feature_std(v)) for k, v in vectors.items()}


@pytest.mark.parametrize("k", [5, 20])
def test_groups_drawn_with_a_fresh_seed_have_standard_z(k):
    sims = _pool()
    null = null_distribution(sims, k, channel_set=CHANNELS, n_groups=1000, seed=0)
    fresh = random_groups(60, k, 3000, seed=12345)
    _, by_channel = group_values(sims, fresh, channel_set=CHANNELS)
    for channel, z in zscores(by_channel, null["channels"]).items():
        assert abs(z.mean()) < 0.12, channel
        assert z.std() == pytest.approx(1.0, abs=0.1), channel


def test_random_groups_are_distinct_members_and_deterministic():
    groups = random_groups(30, 7, 200, seed=4)
    assert groups.shape == (200, 7)
    assert all(len(set(g)) == 7 for g in groups) and groups.max() < 30
    np.testing.assert_array_equal(groups, random_groups(30, 7, 200, seed=4))
    assert not np.array_equal(groups, random_groups(30, 7, 200, seed=5))


def test_group_similarity_by_hand():
    sim = np.array([[1.0, 0.2, 0.4], [0.2, 1.0, 0.6], [0.4, 0.6, 1.0]])
    np.testing.assert_allclose(group_similarity(sim, np.array([[0, 1, 2], [2, 0, 1]])), [0.4, 0.4])
    np.testing.assert_allclose(group_similarity(sim, np.array([[1, 2]])), [0.6])


def test_top_k_groups_take_the_highest_scores():
    T = np.array([[0.1, 9.0], [0.5, 1.0], [0.3, 5.0], [0.9, 2.0]])
    assert top_k_groups(T, 2).tolist() == [[3, 1], [0, 2]]


def test_query_groups_from_a_planted_cluster_are_homogeneous_in_their_channel_only():
    n = 60
    clusters = np.arange(n) % 6
    sims = _pool(n, clusters=clusters)
    T = (clusters[:, None] == np.arange(6)[None, :]).astype(float)  # query q retrieves cluster q
    T += 0.01 * np.random.default_rng(1).normal(size=T.shape)
    out = homogeneity(T, sims, [5, 10, 50, 60], lambda k: null_distribution(sims, k, channel_set=CHANNELS, seed=0),
                      channel_set=CHANNELS)
    assert sorted(out) == [5, 10, 50]
    assert out[10]["summary"]["timbre"]["z_mean"] > 3.0
    assert out[10]["summary"]["timbre"]["sig"] == 1.0
    assert abs(out[10]["summary"]["rhythm"]["z_mean"]) < 2.0
    assert out[10]["features"]["b"].shape == (6,)


def test_summaries_and_strata_by_hand():
    z = np.array([2.0, -1.0, 0.5, np.nan, 3.0])
    assert summarize(z) == {"z_mean": pytest.approx(1.125), "pos": 0.75, "sig": 0.5, "n": 4}
    out = stratify(np.array([2.0, -1.0, 0.5, 3.0]), ["x", "x", "y", "y"])
    assert out["groups"]["x"]["z_mean"] == pytest.approx(0.5)
    assert out["groups"]["y"]["sig"] == 0.5
    assert out["spread"] == pytest.approx(np.std([0.5, 1.75], ddof=1))
    assert np.isnan(stratify(np.array([1.0]), ["only"])["spread"])


def test_valid_ks_keep_sizes_below_the_pool():
    assert valid_ks([50, 5, 10, 20, 10], 20) == [5, 10]
