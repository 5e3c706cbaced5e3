"""Benchmark: a student run's start-up, from process start to its first training step, before and after a change.

Both versions of the code (a git revision, by default the one before the methods registry, and this working
tree) get a tiny repository of their own with the tiny test profile, prepared and cached by `dvc repro`; each
student run then starts as its stage starts it, and the time until it prints the line it prints just before
its first training step ("distill: METHOD on TASK, seed S: student ...") is taken, the process then stopped.
Rounds alternate the two versions, so that the ratio holds on a noisy machine. What it measures: imports,
the params check, loading the prepared task and the teacher cache, building and tokenising the student.
Usage: python -m benchmarks.startup [--before REV] [--rounds R]   (target: after / before < 1 for every method)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "ffc45f3"  # the last commit before the methods registry (issue 26)
METHODS = ("u_ensemble", "ae_kd", "rl_kd")
TASK = "reviews"


def environment(repo: Path) -> dict:
    return {
        **os.environ,
        "PYTHONPATH": str(repo),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }


def tiny_repo(source: Path, repo: Path) -> None:
    """The tiny profile over `source`'s code (its own tests/conftest.py writes its params), teachers cached."""
    make = f"from pathlib import Path; from tests.conftest import make_tiny_repo; make_tiny_repo(Path({str(repo)!r}))"
    stages = [f"cache@{TASK}-{t}" for t in ("tiny_a", "tiny_b")]
    for cmd, cwd in (([sys.executable, "-c", make], source), ([sys.executable, "-m", "dvc", "repro", *stages], repo)):
        done = subprocess.run(cmd, cwd=cwd, env=environment(cwd), capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def command(repo: Path, method: str) -> list[str]:
    """The stage's command: before the registry, RL-KD ran as its own module."""
    if method == "rl_kd" and (repo / "pipeline" / "rl_kd.py").is_file():
        return [sys.executable, "-m", "pipeline.rl_kd", TASK, "1"]
    return [sys.executable, "-m", "pipeline.distill", TASK, method, "1"]


def start_up(repo: Path, method: str) -> float:
    """Seconds from starting the run's process to its line before the first training step."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        command(repo, method), cwd=repo, env=environment(repo), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        for line in proc.stdout:
            if line.startswith(f"distill: {method} on {TASK}"):
                return time.perf_counter() - start
        raise RuntimeError(f"{' '.join(command(repo, method))} in {repo} ended before training (exit {proc.wait()})")
    finally:
        proc.kill()
        proc.wait()


def measure(before: str = BEFORE, rounds: int = 5) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_src = tmp / "before_src"
        old_src.mkdir()
        archive = subprocess.run(["git", "archive", before], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive, check=True)
        repos = {"before": tmp / "before", "after": tmp / "after"}
        tiny_repo(old_src, repos["before"])
        tiny_repo(ROOT, repos["after"])
        times = {(v, m): [] for v in repos for m in METHODS}
        for r in range(rounds):
            for version in ("before", "after") if r % 2 == 0 else ("after", "before"):
                for method in METHODS:
                    times[version, method].append(start_up(repos[version], method))
    out = {"before": before, "rounds": rounds, "target": "< 1", "methods": {}}
    for method in METHODS:
        b, a = (float(np.median(times[v, method])) for v in ("before", "after"))
        out["methods"][method] = {"before_s": round(b, 2), "after_s": round(a, 2), "ratio": round(a / b, 3)}
    out["met"] = all(m["ratio"] < 1 for m in out["methods"].values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=BEFORE, help="the git revision to compare with (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print(json.dumps(measure(args.before, args.rounds), indent=2))


if __name__ == "__main__":
    main()
