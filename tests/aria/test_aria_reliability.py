"""Reliability diagnostics against expectations worked out independently of the implementation."""

import warnings

import numpy as np
import pytest

from aria.errors import AriaWarning, ParameterError
from aria.reliability import (
    concentration,
    dominant_component,
    energy_spectrum,
    inter_query_corr,
    is_collapsed,
    reliability,
    remove_rank1,
)

rng = np.random.default_rng(0)


def test_rank1_matrix_has_rho1_one_and_rho_bar_one():
    u, v = rng.normal(size=200), rng.normal(size=30)
    rel = reliability(np.outer(u, v))
    assert rel["rho1"] == pytest.approx(1.0, abs=1e-10)
    assert rel["rho2_5"] == pytest.approx(0.0, abs=1e-10)
    assert rel["inter_query_corr"] == pytest.approx(1.0, abs=1e-10)


def test_constant_columns_have_concentration_one():
    S = np.tile(rng.normal(size=12), (50, 1))  # every column constant, different constants
    assert concentration(S) == pytest.approx(1.0)
    assert reliability(S)["concentration"] == pytest.approx(1.0)
    # a constant column correlates 0 with anything
    assert inter_query_corr(S) == 0.0


def test_orthogonal_zero_mean_columns_have_rho_bar_zero():
    X = rng.normal(size=(300, 20))
    X -= X.mean(axis=0)
    Q, _ = np.linalg.qr(X)  # orthonormal columns that stay zero-mean (span of centred vectors)
    assert np.abs(Q.mean(axis=0)).max() < 1e-12
    assert inter_query_corr(Q * rng.uniform(0.5, 3.0, size=20)) == pytest.approx(0.0, abs=1e-10)
    assert concentration(Q) == pytest.approx(0.0, abs=1e-20)


def test_energy_ratios_sum_to_one_and_match_numpy_svd():
    S = rng.normal(size=(80, 40)) + 0.3
    e = energy_spectrum(S)
    sigma = np.linalg.svd(S, compute_uv=False)
    assert e.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(e, sigma**2 / np.sum(S**2), atol=1e-12)
    wide = energy_spectrum(S.T)  # more queries than rows uses the other Gram matrix
    np.testing.assert_allclose(wide, e, atol=1e-12)


def test_rho_bar_is_invariant_to_per_column_affine_maps():
    S = rng.normal(size=(100, 15)) + rng.normal(size=(100, 1))  # correlated columns
    scale = rng.uniform(-5, 5, size=15)
    scale[np.abs(scale) < 0.1] = 1.0
    shifted = S * scale + rng.normal(size=15) * 10
    assert inter_query_corr(shifted) == pytest.approx(inter_query_corr(S), abs=1e-12)


def test_rho_bar_matches_pearson_by_hand():
    S = rng.normal(size=(40, 4))
    corr = np.corrcoef(S.T)
    expected = np.mean([abs(corr[i, j]) for i in range(4) for j in range(i + 1, 4)])
    assert inter_query_corr(S) == pytest.approx(expected)


def test_concentration_by_hand():
    S = np.array([[1.0, 1.0], [1.0, -1.0], [1.0, 0.0], [1.0, 4.0]])
    # column 0 constant → 1; column 1: mean 1, N·mean² = 4, ‖col‖² = 18
    assert concentration(S) == pytest.approx((1.0 + 4.0 / 18.0) / 2)


def test_zero_column_counts_as_constant():
    S = rng.normal(size=(30, 3))
    S[:, 1] = 0.0
    ratios = [1.0] + [30 * S[:, q].mean() ** 2 / np.sum(S[:, q] ** 2) for q in (0, 2)]
    assert concentration(S) == pytest.approx(np.mean(ratios))
    corr = abs(np.corrcoef(S[:, 0], S[:, 2])[0, 1])
    assert inter_query_corr(S) == pytest.approx(corr / 3)


def test_all_zero_matrix():
    rel = reliability(np.zeros((10, 5)))
    assert (rel["rho1"], rel["rho2_5"], rel["concentration"], rel["inter_query_corr"]) == (0.0, 0.0, 1.0, 0.0)
    assert np.all(rel["energy"] == 0)


def test_single_query_gives_nan_rho_bar_with_warning():
    with pytest.warns(AriaWarning, match="two queries"):
        rel = reliability(rng.normal(size=(20, 1)))
    assert np.isnan(rel["inter_query_corr"])
    assert rel["rho1"] == pytest.approx(1.0)


def test_single_row_gives_undefined_values_with_warning():
    with pytest.warns(AriaWarning, match="single training unit"):
        rel = reliability(rng.normal(size=(1, 6)))
    for key in ("rho1", "rho2_5", "concentration", "inter_query_corr"):
        assert np.isnan(rel[key])


def test_single_cell_warns_and_never_crashes():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rel = reliability(np.array([[3.0]]))
    assert np.isnan(rel["rho1"]) and caught


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros(5), np.array([[1.0, np.nan]])])
def test_bad_matrices_raise(bad):
    with pytest.raises(ParameterError):
        reliability(bad)


def test_residual_removes_exactly_the_leading_component():
    S = 5.0 * np.outer(rng.normal(size=60), rng.normal(size=12)) + rng.normal(size=(60, 12))
    U, s, Vt = np.linalg.svd(S, full_matrices=False)
    expected = S - s[0] * np.outer(U[:, 0], Vt[0])
    np.testing.assert_allclose(remove_rank1(S), expected, atol=1e-9)
    sigma, u, v = dominant_component(S)
    assert sigma == pytest.approx(s[0])
    assert u.sum() >= 0


def test_collapse_flag_reproduces_the_papers_labels():
    # Table 2: Trak-fine ρ₁ 0.772 query-dependent; Grad-Cos-fine 0.793 and FactGraSS-fine 0.866 collapsed;
    # CLAP dominated by its offset (c̄ 0.801)
    assert not is_collapsed(0.772, 0.002)
    assert is_collapsed(0.793, 0.015)
    assert is_collapsed(0.866, 0.000)
    assert is_collapsed(0.1, 0.801)  # the offset alone flags it
    assert not is_collapsed(0.5, 0.2, rho1_max=0.6) and is_collapsed(0.5, 0.2, rho1_max=0.5)
