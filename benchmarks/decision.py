"""Benchmark: the type I error of the deciding test, by simulation from the suite's own variance components.

Each simulated experiment draws a paired difference d[seed, example] = a_seed + b_unit + e under "no difference"
(mean 0), with the variance components that the embedded default's primary comparison measured (rt, RL-KD v
U-Ensemble: results/tables/table3_significance.csv), at 3, 5 and 10 seeds, at the measured seed variance and at
3x it; then tests it at nominal 5%. The share of experiments that reject is the type I error (target: at most
6% in every cell for the deciding test). Beside it: the paired t-test on per-seed differences, and the two-way
bootstrap that decided before (fewer experiments: it resamples). A second design gives the test examples
groups (rt's movies) that share errors, to show why the test resamples groups, not examples, where a task has
them.

Usage: python -m benchmarks.decision [--experiments N]   (about 10 minutes on 2 cores; most of it the bootstrap's
100 experiments a cell)
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats as sps

from analysis import stats

# rt, rl_kd - u_ensemble, as measured on the embedded default (3 seeds, 6,370 test snippets)
SEED_VAR, EXAMPLE_VAR, RESIDUAL_VAR, EXAMPLES = 3.37e-5, 0.0, 0.0638, 6370
GROUPS, GROUP_VAR = 700, 2e-3  # the grouped design: about 9 snippets a movie, a movie effect shared by its snippets
SEEDS = (3, 5, 10)
SCALES = (1, 3)  # the seed variance as measured, and 3x it (well inside its uncertainty at 2 df)
ALPHA = 0.05


def experiment(rng, seeds: int, seed_var: float, grouped: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """One experiment's differences d[seed, example] under no difference, and the examples' groups (or None)."""
    d = rng.normal(0, np.sqrt(RESIDUAL_VAR), (seeds, EXAMPLES))
    d += rng.normal(0, np.sqrt(seed_var), (seeds, 1))
    d += rng.normal(0, np.sqrt(EXAMPLE_VAR), (1, EXAMPLES)) if EXAMPLE_VAR else 0
    if not grouped:
        return d, None
    groups = rng.integers(0, GROUPS, EXAMPLES)
    d += rng.normal(0, np.sqrt(GROUP_VAR), GROUPS)[groups]
    return d, groups


def pvalues(d: np.ndarray, groups, rng, bootstrap: bool) -> dict[str, float]:
    """Every test's p on one simulated experiment (the same data for all, so that they compare like for like)."""
    zero = np.zeros_like(d)
    out = {"crossed": stats.crossed_test(d, zero, groups).p(), "paired t": sps.ttest_1samp(d.mean(1), 0).pvalue}
    if groups is not None:
        out["crossed, groups ignored"] = stats.crossed_test(d, zero).p()
    if bootstrap:  # the test that decided before: two-way bootstrap, 1,000 resamples
        boot = stats.bootstrap_diffs(d, zero, n_boot=1000, seed=int(rng.integers(2**31)))
        out["two-way bootstrap"] = stats.bootstrap_p(boot)
    return out


def measure(experiments: int = 3000, boot_experiments: int = 100, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    cells = []
    for grouped in (False, True):
        for scale in SCALES:
            for s in SEEDS:
                hits: dict[str, list[bool]] = {}
                for i in range(experiments):
                    d, groups = experiment(rng, s, scale * SEED_VAR, grouped)
                    for test, p in pvalues(d, groups, rng, i < boot_experiments).items():
                        hits.setdefault(test, []).append(p < ALPHA)
                cell = {"design": "grouped" if grouped else "independent", "seed_var_x": scale, "seeds": s}
                for test, h in hits.items():
                    rate = float(np.mean(h))
                    cell[test] = {
                        "type_one": round(rate, 4),
                        "mc_se": round(float(np.sqrt(rate * (1 - rate) / len(h))), 4),
                        "experiments": len(h),
                    }
                cells.append(cell)
    worst = max(c["crossed"]["type_one"] for c in cells)
    return {"alpha": ALPHA, "cells": cells, "worst_crossed": worst, "met": worst <= 0.06}


def table(result: dict) -> str:
    tests = ["crossed", "paired t", "two-way bootstrap", "crossed, groups ignored"]
    rows = [
        "| design | seed variance | seeds | " + " | ".join(tests) + " |",
        "|---|---|---|" + "---|" * len(tests),
    ]
    for c in result["cells"]:
        shown = [f"{100 * c[t]['type_one']:.1f}% ± {100 * c[t]['mc_se']:.1f}" if t in c else "" for t in tests]
        rows.append(f"| {c['design']} | {c['seed_var_x']}x | {c['seeds']} | " + " | ".join(shown) + " |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.decision", description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiments", type=int, default=3000, help="simulated experiments per cell (default 3000)")
    args = ap.parse_args()
    result = measure(args.experiments)
    print(f"type I error at nominal {100 * ALPHA:.0f}% (± its Monte Carlo standard error):\n")
    print(table(result))
    print(f"\nworst cell of the deciding test: {100 * result['worst_crossed']:.1f}% (target <= 6%)")


if __name__ == "__main__":
    main()
