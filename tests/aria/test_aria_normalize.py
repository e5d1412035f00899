"""Per-query normalisation and segment → track averaging, checked by hand."""

import numpy as np
import pytest

from aria.errors import ParameterError
from aria.normalize import aggregate_tracks, normalize, rank, zscore


def test_zscore_standardises_each_column_and_zeroes_constant_ones():
    S = np.array([[1.0, 5.0], [2.0, 5.0], [6.0, 5.0]])
    Z = zscore(S)
    np.testing.assert_allclose(Z[:, 0], (S[:, 0] - 3.0) / np.sqrt(14 / 3))
    assert (Z[:, 1] == 0).all()


def test_rank_averages_ties_and_gives_the_highest_score_rank_one():
    S = np.array([[3.0, 1.0], [1.0, 2.0], [3.0, 3.0], [2.0, 4.0]])
    R = rank(S)
    np.testing.assert_allclose(R[:, 0], [2.5 / 3, 0.0, 2.5 / 3, 1 / 3])
    np.testing.assert_allclose(R[:, 1], [0.0, 1 / 3, 2 / 3, 1.0])
    assert rank(np.array([[7.0, -1.0]])).tolist() == [[0.5, 0.5]]


def test_normalize_dispatches_and_rejects_unknown_methods():
    S = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_array_equal(normalize(S, "rank"), rank(S))
    np.testing.assert_array_equal(normalize(S, "zscore"), zscore(S))
    with pytest.raises(ParameterError, match="normalization"):
        normalize(S, "minmax")


def test_aggregate_averages_the_segments_of_each_track():
    S = np.array([[1.0, 10.0], [3.0, 20.0], [5.0, 30.0], [7.0, 0.0]])
    T = aggregate_tracks(S, ["b", "a", "b", "c"], ["b", "a", "c"])
    np.testing.assert_allclose(T, [[3.0, 20.0], [3.0, 20.0], [7.0, 0.0]])


def test_aggregate_rejects_rows_of_unknown_tracks():
    with pytest.raises(ParameterError, match="missing from track_ids"):
        aggregate_tracks(np.zeros((2, 1)), ["a", "z"], ["a"])
