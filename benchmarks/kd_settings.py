"""KD's temperature and weight chosen on dev, as the paper chooses them: T in {5, 10, 20} x alpha in {0.2, 0.5, 0.7}.

Usage: python -m benchmarks.kd_settings [--task rt] [--method u_ensemble] [--seeds 1 2 3]
Trains the method's student at every point of the paper's grid from the same seed (`distill.grid`, as the paper
profile does) on the embedded default's teachers (`make repro` first), one file per seed in results/kd_settings/
(a rerun skips the seeds that are there), and writes each point's dev accuracy, mean and standard deviation over
the seeds, to results/kd_settings.md: the measurement behind params.yaml's fixed distill.temperature and
distill.alpha, which every method shares. Dev only: no test score enters the choice.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from pipeline import compute, distill
from pipeline import schema as P
from pipeline.io import write_json
from pipeline.params_file import reported_errors
from pipeline.task_data import load_task

GRID = {"temperature": [5.0, 10.0, 20.0], "alpha": [0.2, 0.5, 0.7]}  # the paper's (Yuan et al. 2021, Sec. 4.1)
OUT = Path("results/kd_settings")


def dev_grid(params: P.Params, task: str, method: str, seed: int) -> dict:
    """Every grid point's dev accuracy for one seed, with the seconds it took."""
    cfg = params.distill.model_validate({**params.distill.model_dump(), "grid": GRID})
    start = time.perf_counter()
    student = distill.distill(params.model_copy(update={"distill": cfg}), load_task(params, task), method, seed)
    return {"task": task, "method": method, "seed": seed, "grid": student.grid, "seconds": time.perf_counter() - start}


def summary(records: list[dict], params: P.Params) -> tuple[pd.DataFrame, str]:
    """Mean and std of dev accuracy per point over the seeds, best first, and what it says of params.yaml's."""
    df = pd.DataFrame([{**point, "seed": r["seed"]} for r in records for point in r["grid"]])
    table = df.groupby(["temperature", "alpha"]).dev_accuracy.agg(["mean", "std", "count"]).reset_index()
    table = table.sort_values("mean", ascending=False).reset_index(drop=True)
    ours = table[(table.temperature == params.distill.temperature) & (table.alpha == params.distill.alpha)].iloc[0]
    best = table.iloc[0]
    seeds = sorted({r["seed"] for r in records})
    said = (
        f"On dev, over seeds {seeds} of `{records[0]['method']}` on `{records[0]['task']}`, the best point is "
        f"T = {best.temperature:g}, alpha = {best.alpha:g} ({100 * best['mean']:.2f}); params.yaml's T = "
        f"{params.distill.temperature:g}, alpha = {params.distill.alpha:g} scores {100 * ours['mean']:.2f}, rank "
        f"{int(ours.name) + 1} of {len(table)}, {100 * (best['mean'] - ours['mean']):.2f} points below the best, "
        f"against a seed standard deviation of {100 * table['std'].mean():.2f} points per point."
    )
    return table, said


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="rt")
    ap.add_argument("--method", default="u_ensemble", help="the KD method whose student is tuned")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args(argv)
    with reported_errors():
        params = P.load("params.yaml")
        compute.pin_threads(params.compute)  # 1 thread: two of these side by side on 2 cores
        OUT.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            path = OUT / f"{args.task}-{args.method}-{seed}.json"
            if path.exists():
                continue
            record = dev_grid(params, args.task, args.method, seed)
            write_json(path, record)
            print(f"kd_settings: seed {seed} in {record['seconds']:.0f} s", flush=True)
        records = [json.loads(p.read_text()) for p in sorted(OUT.glob(f"{args.task}-{args.method}-*.json"))]
        table, said = summary(records, params)
        shown = table.assign(dev=[f"{100 * m:.2f} ± {100 * s:.2f}" for m, s in zip(table["mean"], table["std"])]).drop(
            columns=["mean", "std"]
        )
        text = (
            "# KD's temperature and weight, chosen on dev\n\n"
            f"Written by `python -m benchmarks.kd_settings --task {args.task} --method {args.method}`: the paper's "
            "grid (T in {5, 10, 20} x alpha in {0.2, 0.5, 0.7}), each point's student trained from the same seed, "
            "dev accuracy (%) mean ± std over seeds.\n\n"
            f"{shown.to_markdown(index=False)}\n\n{said}\n"
        )
        Path("results/kd_settings.md").write_text(text)
        print(text)


if __name__ == "__main__":
    main()
