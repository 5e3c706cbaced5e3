"""Benchmark: student runs as `make repro` runs them on this machine's cores (one worker a core, each run on one
thread) against one run at a time on all the cores (`cluster.local_workers: 1`, `compute.threads: null`).

For each stage kind (a distill run, an RL-KD run), the same runs (seeds 1 to N, N the cores) are started once all
at once, each on one torch thread, and once one after the other, each on torch's default threads (every core).
Each run is the stage's own process in a scratch folder that links this workspace's prepared data and teacher
caches (`dvc repro` first), as benchmarks/memory.py does. Ratio: serial seconds / parallel seconds (above 1: the
workers are faster). The two settings give other last digits of the numbers (docs/cluster.md).
Usage: python -m benchmarks.workers [--kinds distill rl_kd]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from orchestration.study import write_params
from orchestration.workspace import cores
from pipeline.params_file import read

from .memory import ROOT, scratch

RUNS = {"distill": ["pipeline.distill", "rt", "u_ensemble"], "rl_kd": ["pipeline.distill", "rt", "rl_kd"]}
READS = ["assets", "data", "logits"]


def folder_with_threads(threads: int | None):
    """A scratch folder whose params.yaml runs each stage on `threads` torch threads (None: torch's default)."""
    folder = scratch(READS)
    params = read(folder / "params.yaml")
    write_params({**params, "compute": {**params["compute"], "threads": threads}}, folder / "params.yaml")
    return folder


def start(args: list[str], seed: int, folder) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", *args, str(seed)]
    return subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait(proc: subprocess.Popen) -> None:
    _, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(proc.args)} failed: {err[-2000:]}")


def timed(args: list[str], seeds: list[int], threads: int | None, together: bool) -> float:
    folder = folder_with_threads(threads)
    try:
        begin = time.perf_counter()
        if together:
            for proc in [start(args, s, folder) for s in seeds]:
                wait(proc)
        else:
            for s in seeds:
                wait(start(args, s, folder))
        return time.perf_counter() - begin
    finally:
        shutil.rmtree(folder)


def measure(kinds: tuple[str, ...] = tuple(RUNS)) -> dict:
    n = cores()
    seeds = list(range(1, n + 1))
    out = {"cores": n, "runs_each": n}
    for kind in kinds:
        parallel = timed(RUNS[kind], seeds, 1, together=True)
        serial = timed(RUNS[kind], seeds, None, together=False)
        out[kind] = {
            "workers_1_thread_s": round(parallel),
            "serial_all_threads_s": round(serial),
            "ratio": round(serial / parallel, 2),
        }
        print(
            f"workers: {kind}: {n} runs, {parallel:.0f} s at once on 1 thread each, "
            f"{serial:.0f} s one at a time on {n} threads: {serial / parallel:.2f}x",
            file=sys.stderr,
            flush=True,
        )
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", nargs="*", default=list(RUNS), choices=list(RUNS))
    print(json.dumps(measure(tuple(ap.parse_args().kinds)), indent=2))
