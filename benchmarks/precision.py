"""Benchmark: a student run in bfloat16 on the CPU (`compute.precision: bf16`) against the same run in fp32.

Opt-in and never the default: bf16 changes the numbers. Each precision runs the same `distill` runs (U-Ensemble
on `rt`, seeds 1 to N) as their stage runs them, one thread each, alternating, in a scratch folder that links
this workspace's prepared data and teacher caches (`dvc repro` first), as benchmarks/workers.py does. Reported: the
training seconds and test accuracy of each run, the speed-up, and whether the CPU has bf16 instructions (AVX-512
BF16 or AMX; without them bf16 is emulated and slower). The four kernel variables of docs/reproducibility.md cap the
instruction set at AVX2 and so switch bf16's kernels off: unset them for this benchmark.
Usage: python -m benchmarks.precision [--seeds N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from orchestration.study import write_params
from pipeline.params_file import read

from .memory import scratch
from .workers import start, wait

RUN = ["pipeline.distill", "rt", "u_ensemble"]
READS = ["assets", "data", "logits"]


def cpu_bf16() -> list[str]:
    """The CPU's bf16 instruction sets, from /proc/cpuinfo (empty elsewhere)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return []
    return sorted({f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_tile")})


def one_run(precision: str, seed: int) -> dict:
    folder = scratch(READS)
    try:
        params = read(folder / "params.yaml")
        write_params({**params, "compute": {**params["compute"], "precision": precision}}, folder / "params.yaml")
        wait(start(RUN, seed, folder))
        m = json.loads((folder / f"runs/rt/u_ensemble/{seed}/metrics.json").read_text())
        return {"train_s": round(m["train_seconds"], 1), "test_accuracy": round(m["test_accuracy"], 4)}
    finally:
        shutil.rmtree(folder)


def measure(seeds: int = 2) -> dict:
    runs = {"fp32": {}, "bf16": {}}
    for seed in range(1, seeds + 1):
        for precision in ("fp32", "bf16") if seed % 2 else ("bf16", "fp32"):  # alternating: a drift hits both
            runs[precision][seed] = one_run(precision, seed)
            print(f"precision: {precision} seed {seed}: {runs[precision][seed]}", file=sys.stderr, flush=True)
    mean = {p: sum(r["train_s"] for r in v.values()) / len(v) for p, v in runs.items()}
    acc = {p: sum(r["test_accuracy"] for r in v.values()) / len(v) for p, v in runs.items()}
    return {
        "cpu_bf16": cpu_bf16(),
        "runs": runs,
        "speedup": round(mean["fp32"] / mean["bf16"], 2),
        "test_accuracy_fp32": round(acc["fp32"], 4),
        "test_accuracy_bf16": round(acc["bf16"], 4),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2)
    print(json.dumps(measure(ap.parse_args().seeds), indent=1))
