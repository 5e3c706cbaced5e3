"""Gather every distillation run's metrics into one table, and print it as mean +- std over seeds.

Usage: python -m analysis.collect [runs]   (prints a Markdown table; the analyze stage builds on it)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd


def runs(root: str | Path = "runs") -> pd.DataFrame:
    rows = [json.loads(p.read_text()) for p in sorted(Path(root).glob("*/*/*/metrics.json"))]
    if not rows:
        raise SystemExit(f"no runs found under {root}/TASK/METHOD/SEED/metrics.json")
    keep = ["task", "method", "seed", "dev_accuracy", "test_accuracy", "best_epoch", "train_seconds"]
    return pd.DataFrame([{k: r[k] for k in keep} for r in rows])


def mean_std_table(df: pd.DataFrame, metric: str = "test_accuracy") -> pd.DataFrame:
    """Rows: methods (in the order first seen); columns: tasks and their average; cells: mean +- std."""
    stats = df.groupby(["method", "task"])[metric].agg(["mean", "std", "count"])
    order = list(dict.fromkeys(df.method))
    tasks = list(dict.fromkeys(df.task))
    table = {}
    for task in tasks:
        table[task] = [f"{100 * stats.loc[(m, task), 'mean']:.1f} ± {100 * stats.loc[(m, task), 'std']:.1f}"
                       if (m, task) in stats.index else "" for m in order]
    avg = df.groupby(["method", "seed"])[metric].mean().groupby("method").agg(["mean", "std"])
    table["average"] = [f"{100 * avg.loc[m, 'mean']:.1f} ± {100 * avg.loc[m, 'std']:.1f}" for m in order]
    n = stats["count"].groupby("method").min()
    table["seeds"] = [int(n[m]) for m in order]
    return pd.DataFrame(table, index=pd.Index(order, name="method"))


def main(root: str = "runs") -> None:
    print(mean_std_table(runs(root)).to_markdown())


if __name__ == "__main__":
    main(*sys.argv[1:])
