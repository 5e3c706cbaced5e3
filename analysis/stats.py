"""Paired comparisons of two methods on the same test examples and seeds.

Every function takes per-seed, per-example correctness (arrays [seeds, examples] of 0/1, the
same examples in the same order for both methods) or per-seed accuracies (arrays [seeds]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

# Memory for one chunk of resamples in bootstrap_diff_ci: its example indices and the gathered differences
CHUNK_BYTES = 16 * 2**20  # at QQP size, 64 MiB chunks were 10-15% slower


def bootstrap_diffs(
    correct_a: np.ndarray, correct_b: np.ndarray, n_boot: int = 10_000, seed: int = 0, chunk: int | None = None
) -> np.ndarray:
    """The two-way bootstrap of the mean accuracy difference a - b: [n_boot] resampled differences, each
    resampling seeds and test examples (both with replacement; the same resample for both methods, so the
    pairing is kept). It accounts for both sources of chance in a comparison: training randomness (seeds)
    and test-set sampling (examples).

    The resamples are computed `chunk` at a time (by default as many as fit in CHUNK_BYTES), so memory
    does not grow with n_boot x examples; the chunk size does not change the result."""
    a, b = np.asarray(correct_a, float), np.asarray(correct_b, float)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"expected two [seeds, examples] arrays of the same shape, got {a.shape} and {b.shape}")
    rng = np.random.default_rng(seed)
    diff = a - b  # [S, N]
    s, n = diff.shape
    seeds = rng.integers(0, s, (n_boot, s))  # small, and drawn before the examples, as it always was
    chunk = chunk or max(1, CHUNK_BYTES // (8 * n * (s + 1)))  # int64 indices [chunk, N], floats [S, chunk, N]
    per_seed = np.empty((n_boot, s))
    # Drawing [chunk, N] indices in turn continues the generator's stream exactly where one [n_boot, N]
    # draw would (tests/test_stats.py checks it), so the numbers are those of the unchunked computation
    for start in range(0, n_boot, chunk):
        examples = rng.integers(0, n, (min(chunk, n_boot - start), n))
        per_seed[start : start + len(examples)] = diff[:, examples].mean(-1).T
    # mean over the resampled seeds of the mean over the resampled examples
    return np.take_along_axis(per_seed, seeds, 1).mean(1)


def bootstrap_diff_ci(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    n_boot: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
    chunk: int | None = None,
) -> tuple[float, float, float]:
    """Mean accuracy difference a - b with the percentile CI of its two-way bootstrap (`bootstrap_diffs`)."""
    boot = bootstrap_diffs(correct_a, correct_b, n_boot, seed, chunk)
    tail = (1 - level) / 2
    lo, hi = np.quantile(boot, [tail, 1 - tail])
    return float(np.mean(np.asarray(correct_a, float) - np.asarray(correct_b, float))), float(lo), float(hi)


def bootstrap_p(boot: np.ndarray) -> float:
    """Two-sided p of "no difference" from bootstrap resamples: 2 min(P*(diff <= 0), P*(diff >= 0)), capped at 1.
    The percentile CI at level 1 - alpha excludes 0 exactly when this p is below alpha (up to the quantiles'
    interpolation), so the p and the CI tell one story."""
    boot = np.asarray(boot, float)
    return float(min(1.0, 2 * min((boot <= 0).mean(), (boot >= 0).mean())))


@dataclass
class Crossed:
    """The mean difference a - b over seeds and test examples, with its variance under the crossed model
    d[seed, example] = mu + a_seed + b_unit + e (`crossed_test`), tested against a t distribution with S - 1
    degrees of freedom.

    Its variance is `seed_term` (the spread of the per-seed means) plus the test units' own share: `unit_term` (the
    spread of the test units' totals: examples, or the groups that hold them) less `residual_term` (the
    interaction, which both count), at least 0."""

    diff: float
    seeds: int
    units: int  # independent test units: examples, or the groups that hold them (rt: movies)
    examples: int
    seed_term: float
    unit_term: float
    residual_term: float

    @property
    def var(self) -> float:
        # the units' own component (unit_term - residual_term) is a variance: a negative estimate counts as 0
        return self.seed_term + max(0.0, self.unit_term - self.residual_term)

    @property
    def df(self) -> int:
        """S - 1, the seeds' ("containment") degrees of freedom: the seed term is the part of the variance that
        is estimated from a handful of values. The Satterthwaite approximation, which adds the test units'
        many degrees of freedom, rejected up to 7.5% at nominal 5% at 3 seeds when the units' term is a sixth
        of the variance (benchmarks/decision.py); S - 1 errs on the safe side there, and is exact where the seeds
        dominate."""
        return self.seeds - 1

    def p(self) -> float:
        """Two-sided p of "no difference"."""
        if self.var == 0:  # every seed gave the same mean difference: no spread to test it against
            return 1.0 if self.diff == 0 else float("nan")
        return float(2 * stats.t.sf(abs(self.diff) / np.sqrt(self.var), self.df))

    def ci(self, level: float = 0.95) -> tuple[float, float]:
        half = stats.t.ppf(1 - (1 - level) / 2, self.df) * np.sqrt(self.var)
        return float(self.diff - half), float(self.diff + half)

    def at(self, seeds: int, examples: int) -> float:
        """The variance of the mean at another number of seeds and test examples (the same tasks, test units of
        the same size), from the components these terms estimate."""
        s, n = self.seeds, self.examples
        residual = self.residual_term * s * n  # sigma_e^2
        seed = max(0.0, self.seed_term * s - residual / n)  # sigma_seed^2
        unit = max(0.0, self.unit_term * n - residual / s)  # sigma_unit^2, per example (groups' share included)
        return seed / seeds + unit / examples + residual / (seeds * examples)

    def power(self, alpha: float, gap: float) -> float:
        """The probability that this test (two-sided, level `alpha`) finds a true difference `gap`: the
        noncentral t with S - 1 degrees of freedom, the far tail included."""
        if self.var == 0:
            return float("nan")
        crit, ncp = stats.t.ppf(1 - alpha / 2, self.df), gap / np.sqrt(self.var)
        return float(stats.nct.sf(crit, self.df, ncp) + stats.nct.cdf(-crit, self.df, ncp))

    def detectable(self, alpha: float, power: float, seeds: int | None = None, examples: int | None = None):
        """The smallest true difference this test finds with probability `power` at level `alpha` (two-sided),
        at `seeds` and `examples` (default: as measured), and the one-sided 95% upper confidence bound of that
        figure: its variance is estimated from S - 1 degrees of freedom, so at 3 seeds the bound is about 4.4x
        the estimate."""
        seeds, examples = seeds or self.seeds, examples or self.examples
        df = seeds - 1
        factor = stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)
        var = self.at(seeds, examples)
        upper = self.df * var / stats.chi2.ppf(0.05, self.df)
        return float(factor * np.sqrt(var)), float(factor * np.sqrt(upper))


def crossed_test(correct_a: np.ndarray, correct_b: np.ndarray, groups=None) -> Crossed:
    """The deciding test of a paired comparison over S >= 2 seeds and N test examples: the mean difference and its
    variance under a crossed random-effects model, seeds (training randomness) crossed with test units (which
    examples were drawn), with a t reference distribution on S - 1 degrees of freedom, as the paired t-test on
    per-seed differences has. Its type I error stays at most at the nominal level where the seeds dominate the
    variance (benchmarks/decision.py measures it); the two-way bootstrap it replaces rejected up to four times as
    often at 3 seeds.

    `groups` (one label per example): examples that share a group (rt: one movie's snippets) share errors, so
    the group, not the example, is the unit of test sampling; its totals are what vary. The variance of the mean
    is estimated by the method of moments from three mean squares (Searle, Casella & McCulloch, Variance
    Components, 1992, ch. 4):

        seed_term     = var_s(mean_n d[s, n]) / S                    (sigma_seed^2 / S + sigma_e^2 / (S N))
        unit_term     = G / (G - 1) * sum_g (sum_(n in g) (mean_s d[s, n] - mean))^2 / N^2
                                                                      (sigma_unit^2 / N + sigma_e^2 / (S N))
        residual_term = MS_residual / (S N)                           (sigma_e^2 / (S N), counted twice above)
        var(mean)     = seed_term + max(0, unit_term - residual_term)
    """
    d = np.asarray(correct_a, float) - np.asarray(correct_b, float)
    if d.ndim != 2 or d.shape[0] < 2:
        raise ValueError(f"expected [seeds >= 2, examples] differences, got shape {d.shape}")
    s, n = d.shape
    rows, cols, grand = d.mean(1), d.mean(0), d.mean()
    ms_residual = ((d - rows[:, None] - cols[None, :] + grand) ** 2).sum() / ((s - 1) * (n - 1))
    labels = np.arange(n) if groups is None else pd.factorize(np.asarray(groups))[0]
    totals = np.bincount(labels, weights=cols - grand)
    g = len(totals)
    return Crossed(
        diff=float(grand),
        seeds=s,
        units=g,
        examples=n,
        seed_term=float(rows.var(ddof=1) / s),
        unit_term=float(g / (g - 1) * (totals**2).sum() / n**2) if g > 1 else 0.0,
        residual_term=float(ms_residual / (s * n)),
    )


def paired_t(acc_a: np.ndarray, acc_b: np.ndarray) -> float:
    """Two-sided p of the paired t-test over seeds; 1.0 when the differences are all equal to 0, nan
    when they are equal and not 0 (no variance to test against) or there is one seed (no test)."""
    d = np.asarray(acc_a, float) - np.asarray(acc_b, float)
    if len(d) < 2:
        return float("nan")
    if np.allclose(d, d[0]):
        return 1.0 if np.isclose(d[0], 0) else float("nan")
    return float(stats.ttest_rel(acc_a, acc_b).pvalue)


def wilcoxon(acc_a: np.ndarray, acc_b: np.ndarray, min_seeds: int = 6) -> float | None:
    """Two-sided p of the Wilcoxon signed-rank test over seeds; None below `min_seeds` seeds, where
    its smallest attainable p (2 / 2^n) could never reach 0.05."""
    d = np.asarray(acc_a, float) - np.asarray(acc_b, float)
    if len(d) < min_seeds:
        return None
    if np.allclose(d, 0):
        return 1.0
    return float(stats.wilcoxon(d).pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); nan stays nan and is not counted."""
    p = np.asarray(pvalues, float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


def cohens_dz(acc_a: np.ndarray, acc_b: np.ndarray) -> float:
    """Effect size of paired differences over seeds: mean / standard deviation (nan without spread)."""
    d = np.asarray(acc_a, float) - np.asarray(acc_b, float)
    sd = d.std(ddof=1) if len(d) > 1 else 0.0
    return float(d.mean() / sd) if sd > 1e-12 else float("nan")
