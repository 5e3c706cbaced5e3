"""Benchmark: the deciding test on real runs where the truth is known. A placebo: one method's committed runs
(results/study/runs, 16 seeds each) split at random into two arms of S seeds, paired seed for seed, compared by
the test that decides every comparison (analysis.stats.crossed_test, with rt's movies as the test units). Both
arms are the same method, so every rejection at 5% is a false one: the rejection rate is the test's type I error
on the suite's own runs, with their real seed-to-seed and movie-to-movie variance, not on a model of them
(benchmarks/decision.py simulates from the model). Target: at most 6% at 3, 5 and 8 seeds.

Usage: python -m benchmarks.placebo [--draws N]   (about a minute; needs results/study/runs and data/rt, which
`make repro` prepares)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import stats
from analysis.collect import test_groups

RUNS, DATA, TASK = Path("results/study/runs"), Path("data"), "rt"
SEEDS = (3, 5, 8)
ALPHA = 0.05


def correctness(folder: Path) -> dict[int, np.ndarray]:
    """Each seed's 0/1 correctness on the test examples, in id order."""
    out = {}
    for run in sorted(folder.iterdir(), key=lambda p: int(p.name)):
        df = pd.read_parquet(run / "predictions.parquet", columns=["id", "label", "pred"]).sort_values("id")
        out[int(run.name)] = (df.pred == df.label).to_numpy(int)
    return out


def measure(draws: int = 400, seed: int = 0, runs: Path = RUNS, data: Path = DATA) -> dict:
    """Per S: the share of `draws` random splits per method (every method of `runs` with at least 2 S seeds) whose
    two arms the deciding test calls different at ALPHA."""
    rng = np.random.default_rng(seed)
    groups = test_groups(data, TASK)
    methods = {m.name: correctness(m) for m in sorted((runs / TASK).iterdir()) if m.is_dir()}
    cells = []
    for s in SEEDS:
        hits, used = [], []
        for name, correct in methods.items():
            seeds = sorted(correct)
            if len(seeds) < 2 * s:
                continue
            used.append(name)
            for _ in range(draws):
                drawn = rng.permutation(seeds)[: 2 * s]
                a = np.stack([correct[k] for k in drawn[:s]])
                b = np.stack([correct[k] for k in drawn[s:]])
                hits.append(stats.crossed_test(a, b, groups).p() < ALPHA)
        rate = float(np.mean(hits)) if hits else float("nan")
        cells.append(
            {
                "seeds": s,
                "methods": used,
                "splits": len(hits),
                "rejection_rate": round(rate, 4),
                # binomial, as if the splits were independent; those of one method share runs, so the true
                # Monte Carlo error is larger
                "mc_se": round(float(np.sqrt(rate * (1 - rate) / max(len(hits), 1))), 4),
            }
        )
    worst = max(c["rejection_rate"] for c in cells)
    return {"alpha": ALPHA, "cells": cells, "worst": worst, "met": worst <= 0.06}


def table(result: dict) -> str:
    rows = ["| seeds per arm | methods | splits | false rejections at 5% (± binomial error) |", "|---|---|---|---|"]
    for c in result["cells"]:
        rows.append(
            f"| {c['seeds']} | {len(c['methods'])} | {c['splits']:,} | {100 * c['rejection_rate']:.1f}% "
            f"(± {100 * c['mc_se']:.1f}) |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.placebo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--draws", type=int, default=400, help="random splits per method and seed count (default 400)")
    result = measure(ap.parse_args().draws)
    print(table(result))
    print(f"\nworst: {100 * result['worst']:.1f}% (target <= 6%)")


if __name__ == "__main__":
    main()
