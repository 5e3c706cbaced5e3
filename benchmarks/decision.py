"""Benchmark: the deciding test's errors, by simulation from the suite's own variance components.

Each simulated experiment draws a paired difference d[seed, example] = mu + a_seed + b_unit + e with the variance
components of the study's first primary comparison (results/study/tables/table3_significance.csv, or the earlier
verdict the study keeps while a task it added catches up; read when this runs: 16 seeds, rt's 3,795 test snippets),
at 3, 5, 8 and 16 seeds, at the measured seed variance and at 3x it, and tests it at nominal 5%:
- under no difference (mu = 0), the share that rejects is the type I error (target: at most 6% in every cell for
  the deciding test); beside it the paired t-test on per-seed differences, and the two-way bootstrap that decided
  before (fewer experiments: it resamples);
- at a true difference of one point (mu = 0.01, analysis.gap), the share called `equivalent` (the whole 95%
  interval within +-1 point) is the rate of a false "no difference" (target: at most 5%).
A second design gives the test examples groups (rt's movies) that share errors, to show why the test resamples
groups, not examples, where a task has them. The same model the test assumes draws the data here, so this
checks the test's arithmetic, not its model: benchmarks/placebo.py checks it on real runs.

Usage: python -m benchmarks.decision [--experiments N]   (about 15 minutes on 2 cores; most of it the bootstrap's
100 experiments a cell)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis import stats

# the study's table, and the one it keeps while rows or tasks it added catch up (orchestration/study.py, keep_earlier)
STUDIES = tuple(Path(f"results/study/{at}tables/table3_significance.csv") for at in ("", "earlier/"))
# used where neither table has seeds enough: rt's primary comparison at 16 seeds (commit f569ef9's study)
MEASURED = {"seed_var": 1.2e-5, "residual_var": 0.0643, "examples": 3795}
GROUPS, GROUP_VAR = 420, 2e-3  # the grouped design: about 9 snippets a movie, a movie effect shared by its snippets
SEEDS = (3, 5, 8, 16)
SCALES = (1, 3)  # the seed variance as measured, and 3x it (inside its uncertainty at few seeds)
ALPHA, GAP = 0.05, 0.01


def components(paths: tuple[Path, ...] = STUDIES) -> dict:
    """The variance components of the first primary comparison of the table of `paths` with the most seeds:
    sigma2_seed and sigma2_residual per example (analysis.stats.Crossed.at's estimates), and its number of test
    examples. A table at one seed has none (a round of a study widened by a task, say)."""
    rows = [pd.read_csv(p).query("role == 'primary'").iloc[0] for p in paths if p.is_file()]
    rows = [r for r in rows if "residual_term" in r and pd.notna(r.residual_term)]
    if not rows:
        return dict(MEASURED)
    r = max(rows, key=lambda r: r.seeds)
    residual = r.residual_term * r.seeds * r.examples
    return {
        "seed_var": float(max(0.0, r.seed_term * r.seeds - residual / r.examples)),
        "residual_var": float(residual),
        "examples": int(r.examples),
        "comparison": f"{r.a} - {r.b}",
    }


def experiment(rng, seeds: int, seed_var: float, c: dict, grouped: bool, mu: float = 0.0):
    """One experiment's differences d[seed, example] at true difference `mu`, and the examples' groups (or None)."""
    n = c["examples"]
    d = mu + rng.normal(0, np.sqrt(c["residual_var"]), (seeds, n))
    d += rng.normal(0, np.sqrt(seed_var), (seeds, 1))
    if not grouped:
        return d, None
    groups = rng.integers(0, GROUPS, n)
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


def false_equivalence(d: np.ndarray, groups) -> bool:
    """The deciding test calls a true difference of GAP `equivalent`: its 95% interval inside +-GAP."""
    low, high = stats.crossed_test(d, np.zeros_like(d), groups).ci(0.95)
    return -GAP < low and high < GAP


def measure(experiments: int = 3000, boot_experiments: int = 100, seed: int = 0) -> dict:
    rng, c = np.random.default_rng(seed), components()
    cells = []
    for grouped in (False, True):
        for scale in SCALES:
            for s in SEEDS:
                hits: dict[str, list[bool]] = {}
                for i in range(experiments):
                    d, groups = experiment(rng, s, scale * c["seed_var"], c, grouped)
                    for test, p in pvalues(d, groups, rng, i < boot_experiments).items():
                        hits.setdefault(test, []).append(p < ALPHA)
                    d, groups = experiment(rng, s, scale * c["seed_var"], c, grouped, mu=GAP)
                    hits.setdefault("false equivalent", []).append(false_equivalence(d, groups))
                cell = {"design": "grouped" if grouped else "independent", "seed_var_x": scale, "seeds": s}
                for test, h in hits.items():
                    rate = float(np.mean(h))
                    cell[test] = {
                        "type_one": round(rate, 4),
                        "mc_se": round(float(np.sqrt(rate * (1 - rate) / len(h))), 4),
                        "experiments": len(h),
                    }
                cells.append(cell)
    worst = max(c_["crossed"]["type_one"] for c_ in cells)
    worst_equivalent = max(c_["false equivalent"]["type_one"] for c_ in cells)
    return {
        "alpha": ALPHA,
        "components": c,
        "cells": cells,
        "worst_crossed": worst,
        "worst_false_equivalent": worst_equivalent,
        "met": worst <= 0.06 and worst_equivalent <= 0.05,
    }


def table(result: dict) -> str:
    tests = ["crossed", "paired t", "two-way bootstrap", "crossed, groups ignored", "false equivalent"]
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
    print(f"type I error at nominal {100 * ALPHA:.0f}% (± its Monte Carlo standard error), and the share of")
    print(f"experiments at a true {100 * GAP:g}-point difference called equivalent, from {result['components']}:\n")
    print(table(result))
    print(f"\nworst cell of the deciding test: {100 * result['worst_crossed']:.1f}% (target <= 6%)")
    print(f"false 'equivalent' at a true 1-point difference: at most {100 * result['worst_false_equivalent']:.1f}%")


if __name__ == "__main__":
    main()
