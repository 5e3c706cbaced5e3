"""Benchmark: the peak memory (resident set) of one run of each stage of the embedded default.

Each stage runs as its own process, as DVC runs it, in a scratch folder: the folders it reads are
linked from this workspace (which must have been reproduced) and what it writes stays in the scratch
folder, so the workspace is not touched. The largest instance of each stage is measured: the MPNet
teacher for finetune and cache.
Usage: python -m benchmarks.memory [--skip finetune ...]   (target: every stage under 4 GiB)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# stage -> (command, workspace folders it reads, linked into the scratch folder)
STAGES = {
    "prepare": (["pipeline.prepare", "rt"], ["assets"]),
    "finetune": (["pipeline.finetune", "rt", "mpnet"], ["assets", "data"]),
    "cache": (["pipeline.cache", "rt", "mpnet"], ["assets", "data", "models"]),
    "distill": (["pipeline.distill", "rt", "u_ensemble", "1"], ["assets", "data", "logits"]),
    "rl_kd": (["pipeline.distill", "rt", "rl_kd", "1"], ["assets", "data", "logits"]),
    "latency": (["pipeline.latency", "rt"], ["assets", "data", "models"]),
    "analyze": (["analysis.analyze"], ["assets", "data", "models", "logits", "runs"]),
}


# A forked child starts out counted at its parent's size, so the stage is started by a small launcher
# process, whose own children's peak is then the stage's alone
LAUNCHER = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)"
)


def peak_rss(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(peak resident set in GiB, seconds) of one process, from the kernel's own accounting."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-S", "-c", LAUNCHER, *cmd], cwd=cwd, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
    return int(done.stdout.split()[-1]) / 2**20, seconds  # ru_maxrss is in KiB on Linux


def scratch(reads: list[str]) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="rlkd-memory-"))
    shutil.copy(ROOT / "params.yaml", folder)
    for name in reads:
        if not (ROOT / name).exists():
            raise RuntimeError(f"{ROOT / name}: not found; run `dvc repro` first")
        (folder / name).symlink_to(ROOT / name)
    if "runs" in reads:  # analyze also reads the latency results
        shutil.copytree(ROOT / "results" / "latency", folder / "results" / "latency")
    return folder


def measure(skip: tuple[str, ...] = ()) -> dict:
    out = {}
    for stage, (args, reads) in STAGES.items():
        if stage in skip:
            continue
        folder = scratch(reads)
        try:
            gib, seconds = peak_rss([sys.executable, "-m", *args], folder)
        finally:
            shutil.rmtree(folder)
        out[stage] = {"run": " ".join(args[1:]) or stage, "peak_rss_gib": round(gib, 2), "seconds": round(seconds)}
        print(f"memory: {stage} ({out[stage]['run']}): {gib:.2f} GiB, {seconds:.0f} s", file=sys.stderr, flush=True)
    worst = max(v["peak_rss_gib"] for v in out.values()) if out else None
    return {"stages": out, "max_gib": worst, "target": "< 4 GiB each", "met": bool(worst is not None and worst < 4)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip", nargs="*", default=[], choices=list(STAGES))
    print(json.dumps(measure(tuple(ap.parse_args().skip)), indent=2))
