"""Benchmark: one round of the study, this tree's orchestration against an earlier revision's, and where a run's
time goes.

Needs the study's workspace `.study/` current with this code (`make study`). Two copies of it, `before` (with
orchestration/ as it was at REV) and `after` (this tree's), each on a copy of DVC's cache of its own (hard
links), so that neither restores what the other ran, get the study's next seed and run it as a study round does:
`python -m orchestration.cluster --executor local`, every row, a worker a core. Measured, one side after the other
on this machine: each round's wall time and its phases as the cluster's own lines mark them (planning, the pool of
stages, the closing restore and analysis); DVC's cost a stage in a worker's fresh copy (the first stage's restore,
the next one's, the run-cache save); and, in this process, one student run's own phases (start-up, loading, the
student built and tokenised, training with its dev scoring, test scoring, writing). The new seed's predictions and
weights must be byte-identical on both sides.
Usage: python -m benchmarks.study_round [--before REV]   (target: after / before <= 0.7; about 35 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestration.dvc_api import dvc, kind, save_uncached
from orchestration.study import WORK, write_params
from pipeline.params_file import read

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "b04dd9c"  # the last commit before issue 43's cuts
LINKED = ("assets", "models", "logits", "data")  # outputs DVC and the stages replace whole, never edit in place
COMPARED = ("predictions.parquet", "weights.parquet")


def copy_study(to: Path, cache: Path) -> None:
    """`.study/` at `to` on its own cache: a hard-linked copy of the study's, where this side's runs land."""

    def link_or_copy(src, dst):
        if Path(src).relative_to(WORK.resolve()).parts[0] in LINKED:
            return os.link(src, dst)
        return shutil.copy2(src, dst)  # dvc.lock, params.yaml and runs/ are rewritten in place

    shutil.copytree(WORK.resolve(), to, ignore=shutil.ignore_patterns("tmp"), copy_function=link_or_copy)
    shared = dvc("cache", "dir", cwd=WORK).strip().splitlines()[-1]
    subprocess.run(["cp", "-al", shared, str(cache)], check=True)
    local = to / ".dvc" / "config.local"
    local.write_text(local.read_text().replace(shared, str(cache)))


def next_seed(work: Path) -> int:
    params = read(work / "params.yaml")
    seed = max(params["run"]["seeds"]) + 1
    write_params({**params, "run": {**params["run"], "seeds": [*params["run"]["seeds"], seed]}}, work / "params.yaml")
    return seed


def timed_round(work: Path) -> dict:
    """The cluster's round in `work`: wall time, and the seconds from each of its lines to the next."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "orchestration.cluster", "--executor", "local"]
    begin = time.perf_counter()
    marks = [("start", 0.0)]
    # a session of its own: stopped, this benchmark takes the round's workers with it
    with subprocess.Popen(
        cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    ) as p:
        try:
            for line in p.stdout:
                stage_done = " of " in line and (" ran in " in line or " restored in " in line)
                if line.startswith("cluster: ") and not stage_done:  # the pool's stage lines are in its summary
                    marks.append((line.strip(), time.perf_counter() - begin))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
    wall = time.perf_counter() - begin
    if p.returncode:
        raise RuntimeError(f"the round in {work} failed: {marks[-1][0]}")
    summary = json.loads((work / ".dvc/tmp/cluster/summary.json").read_text())
    stages = {s: r["seconds"] for s, r in summary["pool"]["done"].items()}
    phases = [
        (what, round(marks[i + 1][1] - at, 1) if i + 1 < len(marks) else round(wall - at, 1))
        for i, (what, at) in enumerate(marks)
    ]
    return {"wall_s": round(wall, 1), "phases": phases, "pool_s": summary["pool"]["seconds"], "stage_s": stages}


def dvc_in_a_worker(work: Path, stages: list[str]) -> dict:
    """DVC's own cost a stage in a worker's fresh copy of the round's snapshot: two of the round's stages restored
    from the run-cache (the first pays for checking out what they read), and the run-cache save after each."""
    copy = work / ".dvc/tmp/bench-worker"
    shutil.copytree(work / ".dvc/tmp/cluster/snapshot", copy, symlinks=True, copy_function=os.link)
    out = {}
    try:
        for which, stage in zip(("first_restore_s", "next_restore_s"), stages):
            begin = time.perf_counter()
            dvc("repro", stage, cwd=copy)
            out[which] = round(time.perf_counter() - begin, 1)
        begin = time.perf_counter()
        save_uncached(copy, stages[1:2])
        out["run_cache_save_s"] = round(time.perf_counter() - begin, 1)
    finally:
        shutil.rmtree(copy)
    return out


def run_phases(work: Path, task: str, method: str, seed: int) -> dict:
    """One student run's phases, timed here as pipeline/distill.py's main() runs them (its writing to a scratch
    folder); start-up is a fresh interpreter importing the stage's module."""
    from pipeline import compute, distill, training

    begin = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pipeline.distill"], cwd=work, check=True)
    out = {"start_up_s": time.perf_counter() - begin}
    with contextlib.chdir(work):
        begin = time.perf_counter()
        params = distill.load("params.yaml").for_task(task)
        seed_, settings = distill.resolve(params, task, method, str(seed), "params.yaml")
        acc = compute.from_params(params.compute)
        data = distill.load_task(params, task)
        out["loading_s"] = time.perf_counter() - begin
        begin = time.perf_counter()
        student = distill.distill(params, data, method, seed_, settings, acc)
        fit = time.perf_counter() - begin
        out["training_with_dev_scoring_s"] = student.train_seconds  # distill.py times the epochs with their dev pass
        out["test_scoring_s"] = student.infer_seconds
        out["building_tokenising_s"] = fit - student.train_seconds - student.infer_seconds
        begin = time.perf_counter()
        with tempfile.TemporaryDirectory() as scratch:
            distill.write_run(Path(scratch) / "run", params, data, method, seed_, student, acc)
        out["writing_s"] = time.perf_counter() - begin
    out["test_accuracy"] = training.accuracy(student.test_logits, data.gold["test"])
    return {k: round(v, 2 if k.endswith("_s") else 4) for k, v in out.items()}


def files_of_seed(work: Path, seed: int) -> dict[str, str]:
    return {
        str(p.relative_to(work)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted((work / "runs").glob(f"*/*/{seed}/*"))
        if p.name in COMPARED
    }


def measure(before: str = BEFORE) -> dict:
    if not (WORK / "params.yaml").exists():  # `python -m benchmarks` goes on with the others
        return {"skipped": f"{WORK}/: no study workspace here; `make study` first (benchmarks.study_round copies it)"}
    (ROOT / ".dvc/tmp").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / ".dvc/tmp") as tmp:  # hard links: the study's filesystem
        sides = {}
        for side in ("before", "after"):
            work = Path(tmp) / side
            copy_study(work, Path(tmp) / f"cache-{side}")
            # the stages' code is the study's on both sides: only the orchestration differs
            shutil.rmtree(work / "orchestration")
            if side == "before":
                archive = subprocess.run(["git", "archive", before, "orchestration"], cwd=ROOT, capture_output=True)
                subprocess.run(["tar", "-x", "-C", str(work)], input=archive.stdout, check=True)
            else:
                shutil.copytree(ROOT / "orchestration", work / "orchestration")
            seed = next_seed(work)
            print(f"round: {side}: seed {seed} of every row in a copy of {WORK}", file=sys.stderr, flush=True)
            sides[side] = timed_round(work)
            new = sorted(s for s in sides[side]["stage_s"] if s.endswith(f"-{seed}"))
            sides[side]["dvc_in_a_worker"] = dvc_in_a_worker(work, [s for s in new if kind(s) == "distill"][:2])
            sides[side]["files"] = files_of_seed(work, seed)
            print(f"round: {side}: {sides[side]['wall_s']:.0f} s", file=sys.stderr, flush=True)
        after = Path(tmp) / "after"
        phases = run_phases(after, read(after / "params.yaml")["run"]["tasks"][0], "u_ensemble", seed)
    same = sides["before"].pop("files") == sides["after"].pop("files")
    ratio = round(sides["after"]["wall_s"] / sides["before"]["wall_s"], 3)
    return {
        "revision": before,
        "seed": seed,
        **sides,
        "run_phases": phases,
        "ratio": ratio,
        "identical_outputs": same,
        "met": ratio <= 0.7 and same,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=BEFORE, help="the revision whose orchestration/ is `before` (a git revision)")
    print(json.dumps(measure(ap.parse_args().before), indent=1))
