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


def test_drawing_indices_in_chunks_of_rows_continues_the_same_stream():
    # bootstrap_diff_ci's chunks reproduce the one-shot draw (and so the committed results) only if this holds,
    # for odd chunk sizes too and for a range that rejects half its raw draws (Lemire's method)
    for high in (7, 40_430, 2**31 + 1):
        whole = np.random.default_rng(3).integers(0, high, (9, 5))
        rng = np.random.default_rng(3)
        parts = [rng.integers(0, high, (rows, 5)) for rows in (1, 3, 2, 3)]
        np.testing.assert_array_equal(np.concatenate(parts), whole)


def planted(seeds: int, examples: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """0/1 correctness of two methods that disagree on about a tenth of the examples."""
    rng = np.random.default_rng(seed)
    b = (rng.random((seeds, examples)) < 0.7).astype(int)
    flip = rng.random((seeds, examples)) < 0.1
    return np.where(flip, 1 - b, b), b


def test_bootstrap_ci_equals_an_explicit_loop_over_the_same_draws():
    a, b = planted(3, 25)
    n_boot, level = 400, 0.9
    # the same draws, in the same order: every resample's seeds first, then each resample's examples
    rng = np.random.default_rng(7)
    seeds = rng.integers(0, 3, (n_boot, 3))
    boot = []
    for i in range(n_boot):
        examples = rng.integers(0, 25, 25)
        boot.append(np.mean([np.mean([a[s, e] - b[s, e] for e in examples]) for s in seeds[i]]))
    lo, hi = np.quantile(boot, [0.05, 0.95])
    mean, got_lo, got_hi = stats.bootstrap_diff_ci(a, b, n_boot, level, seed=7)
    assert mean == pytest.approx(np.mean(a - b))
    assert (got_lo, got_hi) == pytest.approx((lo, hi), abs=1e-12)


def test_bootstrap_ci_does_not_depend_on_the_chunk_size():
    a, b = planted(4, 301)
    whole = stats.bootstrap_diff_ci(a, b, 250, seed=2, chunk=250)
    for chunk in (1, 7, 64, None, 10_000):
        assert stats.bootstrap_diff_ci(a, b, 250, seed=2, chunk=chunk) == whole


def test_bootstrap_ci_memory_is_bounded_by_the_chunk_not_the_resamples(monkeypatch):
    import tracemalloc

    a, b = planted(3, 10_000)
    # unchunked, the indices [1000, 10000] and the gathered differences [3, 1000, 10000] would take 320 MB;
    # chunked, one chunk (4 MiB) plus the inputs as floats and their difference (3 x 240 kB) and the
    # per-resample arrays (a few [1000, 3] arrays, 24 kB each)
    monkeypatch.setattr(stats, "CHUNK_BYTES", 4 * 2**20)
    tracemalloc.start()
    try:
        stats.bootstrap_diff_ci(a, b, 1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 4 * 2**20 * 0.8 < peak < 6 * 2**20  # a chunk is allocated, and not much else


def test_bootstrap_p_counts_the_resamples_on_each_side_of_zero():
    assert stats.bootstrap_p(np.array([-1.0, 1.0, 2.0, 3.0])) == 0.5  # 2 min(1/4, 3/4)
    assert stats.bootstrap_p(np.array([0.1, 0.2])) == 0.0
    assert stats.bootstrap_p(np.zeros(5)) == 1.0  # 2 min(1, 1), capped


def test_bootstrap_p_agrees_with_the_ci():
    a, b = planted(3, 400)
    boot = stats.bootstrap_diffs(a, b, 2000, seed=4)
    _, lo, hi = stats.bootstrap_diff_ci(a, b, 2000, 0.95, seed=4)  # the same resamples
    assert (stats.bootstrap_p(boot) < 0.05) == (lo > 0 or hi < 0)


# d = a - b over 2 seeds x 4 test examples: [[1, 0, 0, 1], [0, 0, 0, 1]] (per-seed means 0.5 and 0.25, mean 0.375).
# By hand: seed_term = var([0.5, 0.25], ddof=1) / 2 = 0.015625; residuals d - row - col + mean = +-[0.375, -0.125,
# -0.125, -0.125], MS_residual = 0.375 / 3 = 0.125, residual_term = 0.125 / 8 = 0.015625. Examples as units: column
# totals about the mean [0.125, -0.375, -0.375, 0.625], unit_term = 4/3 * 0.6875 / 16 = 0.0572917, var = 0.0572917,
# t = 0.375 / 0.239357 = 1.5667 on 1 df (Cauchy: p = 1 - 2 atan(t) / pi = 1 - 2 * 1.00271 / pi = 0.36166).
# Groups {x: 1-2, y: 3-4}: totals
# [-0.25, 0.25], unit_term = 2/1 * 0.125 / 16 = 0.015625, var = 0.015625, t = 3, p = 1 - 2 atan(3) / pi = 0.20483.
CROSSED_A = np.array([[1, 0, 0, 1], [0, 0, 0, 1]])
CROSSED_B = np.zeros((2, 4), int)


@pytest.mark.parametrize(
    "groups, unit_term, var, p",
    [(None, 0.0572917, 0.0572917, 0.36166), (["x", "x", "y", "y"], 0.015625, 0.015625, 0.20483)],
    ids=["examples", "groups"],
)
def test_crossed_test_by_hand(groups, unit_term, var, p):
    test = stats.crossed_test(CROSSED_A, CROSSED_B, groups)
    assert test.diff == 0.375 and test.df == 1 and test.units == (4 if groups is None else 2)
    assert test.seed_term == pytest.approx(0.015625) and test.residual_term == pytest.approx(0.015625)
    assert test.unit_term == pytest.approx(unit_term, abs=1e-7) and test.var == pytest.approx(var, abs=1e-7)
    assert test.p() == pytest.approx(p, abs=1e-5)
    lo, hi = test.ci(0.95)  # t(1) 97.5% quantile: tan(0.475 pi) = 12.7062
    assert (lo, hi) == pytest.approx((0.375 - 12.7062 * var**0.5, 0.375 + 12.7062 * var**0.5), abs=1e-4)


def test_crossed_test_with_no_spread_at_all():
    ones, zeros = np.ones((2, 4)), np.zeros((2, 4))
    assert stats.crossed_test(ones, ones).p() == 1.0  # no difference at all
    assert np.isnan(stats.crossed_test(ones, zeros).p())  # +1 everywhere: no spread to test it against
    # the same per-seed means, but examples that differ: test sampling alone gives the spread (t = 0.5 / 0.2887)
    same = np.array([[1, 0, 0, 1], [1, 0, 0, 1]])
    assert stats.crossed_test(same, zeros).var == pytest.approx(4 / 3 * 1.0 / 16)
