"""The analysis statistics against values worked out by hand."""
import numpy as np
import pytest

from analysis import stats


def test_holm_matches_the_step_down_worked_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone 0.06
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_skips_missing_values():
    adjusted = stats.holm([0.5, np.nan, 0.4])
    np.testing.assert_allclose(adjusted[[0, 2]], [0.8, 0.8])
    assert np.isnan(adjusted[1])


def test_exact_mcnemar_on_one_against_nine_discordant_pairs():
    a = np.array([1] * 1 + [0] * 9 + [1] * 5)  # 1 only a right, 9 only b right, 5 both right
    b = np.array([0] * 1 + [1] * 9 + [1] * 5)
    only_a, only_b, p = stats.mcnemar(a, b)
    assert (only_a, only_b) == (1, 9)
    assert p == pytest.approx(2 * (1 + 10) / 2 ** 10)  # 2 * P(X <= 1), X ~ Bin(10, 1/2)


def test_mcnemar_without_discordant_pairs():
    same = np.array([[1, 0, 1], [0, 0, 1]])
    assert stats.mcnemar(same, same) == (0, 0, 1.0)


def test_paired_t_and_effect_size_by_hand():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 0.0, 0.0, 1.0])
    # d = [1, 2, 3, 3]: mean 2.25, sd sqrt(2.75 / 3); t = mean / (sd / 2) = 4.700 on 3 degrees of freedom
    sd = np.sqrt(2.75 / 3)
    assert stats.cohens_dz(a, b) == pytest.approx(2.25 / sd)
    from scipy.stats import t
    assert stats.paired_t(a, b) == pytest.approx(2 * t.sf(2.25 / (sd / 2), 3))
    assert stats.paired_t(a, b) == pytest.approx(0.01819, abs=1e-4)


def test_paired_t_without_spread():
    assert stats.paired_t([0.7, 0.8], [0.7, 0.8]) == 1.0
    assert np.isnan(stats.paired_t([0.7, 0.8], [0.6, 0.7]))
    assert np.isnan(stats.paired_t([0.7], [0.7]))  # one seed: no test, not p = 1
    assert np.isnan(stats.cohens_dz([0.7, 0.8], [0.6, 0.7]))


def test_wilcoxon_needs_enough_seeds():
    assert stats.wilcoxon([0.7, 0.8, 0.9], [0.6, 0.7, 0.8]) is None
    a = np.arange(6) / 10 + 0.1
    # all six differences positive with distinct ranks: exact two-sided p = 2 / 2^6
    assert stats.wilcoxon(a + np.array([1, 2, 3, 4, 5, 6]) / 100, a) == pytest.approx(2 / 64)


def test_bootstrap_ci_covers_the_planted_difference_and_is_reproducible():
    rng = np.random.default_rng(1)
    b = (rng.random((3, 2000)) < 0.7).astype(int)
    a = b.copy()
    flip = rng.random((3, 2000)) < 0.1  # a is right on about a tenth of b's wrong answers more
    a[flip & (b == 0)] = 1
    mean, lo, hi = stats.bootstrap_diff_ci(a, b, n_boot=2000)
    assert mean == pytest.approx((a - b).mean())
    assert lo < mean < hi and lo > 0  # about +0.03: clearly positive
    assert stats.bootstrap_diff_ci(a, b, n_boot=2000) == (mean, lo, hi)
    assert stats.bootstrap_diff_ci(b, b, n_boot=500) == (0.0, 0.0, 0.0)


def test_bootstrap_ci_refuses_unpaired_shapes():
    with pytest.raises(ValueError, match="same shape"):
        stats.bootstrap_diff_ci(np.zeros((3, 10)), np.zeros((3, 11)))
