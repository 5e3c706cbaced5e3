"""Benchmark: the significance table's bootstrap CI (analysis.stats.bootstrap_diff_ci) at QQP size.

3 seeds x 40,430 test examples and 10,000 resamples, on random 0/1 correctness where the two methods
disagree on about a tenth of the examples. Unchunked, the resampled indices and differences alone
would take 12 GiB; the peak is what the call allocates (tracemalloc, which sees numpy's arrays).
Usage: python -m benchmarks.bootstrap [--examples N] [--seeds S] [--resamples B]   (target: peak < 1 GiB)
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc

import numpy as np

from analysis.stats import bootstrap_diff_ci


def measure(examples: int = 40_430, seeds: int = 3, resamples: int = 10_000) -> dict:
    rng = np.random.default_rng(0)
    b = (rng.random((seeds, examples)) < 0.8).astype(int)
    flip = rng.random((seeds, examples)) < 0.1  # the discordant predictions
    a = np.where(flip, 1 - b, b)
    tracemalloc.start()
    try:
        start = time.perf_counter()
        diff, lo, hi = bootstrap_diff_ci(a, b, resamples)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**30
    finally:
        tracemalloc.stop()
    unchunked = resamples * examples * 8 * (seeds + 1) / 2**30  # int64 indices and float64 differences
    return {
        "peak_gib": round(peak, 3),
        "seconds": round(seconds, 1),
        "unchunked_gib": round(unchunked, 1),
        "target": "< 1 GiB",
        "met": bool(peak < 1),
        "seeds": seeds,
        "examples": examples,
        "resamples": resamples,
        "ci": [round(x, 5) for x in (diff, lo, hi)],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=40_430)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--resamples", type=int, default=10_000)
    args = ap.parse_args()
    print(json.dumps(measure(args.examples, args.seeds, args.resamples), indent=2))


if __name__ == "__main__":
    main()
