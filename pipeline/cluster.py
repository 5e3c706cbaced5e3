"""Run the pipeline on a cluster: its stages in dependency waves, one job array per wave, through submitit.

Usage: python -m pipeline.cluster [--executor slurm|local] [--dry]   (reads params.yaml's `cluster:`)
Each job copies a snapshot of this workspace (code, params, dvc.yaml and dvc.lock, without outputs)
and runs `dvc repro STAGE ...` for its share of the wave, on this workspace's DVC cache (a shared
cache on the cluster's filesystem). Every stage a job runs lands in DVC's run-cache, so the next wave's
jobs restore what they depend on instead of running it, a resubmitted job restores what its killed
attempt had finished, and the closing `dvc repro` here restores every stage and records it in
dvc.lock. No scheduling of our own on a cluster: SLURM runs the jobs, DVC decides what runs.
docs/cluster.md has the SLURM set-up and the command for the paper profile. On one machine
(`--executor local`) a wave would idle cores while its longest stage runs: there, submitit's local
executor runs a pool of workers that start each stage as soon as its upstream is done (pipeline/pool.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from .io import atomic_path
from .params_file import InputError, read, reported_errors, validate
from .schema import Strict, load

# stage kinds in dependency order; `assets` runs here first (its outputs live outside DVC's cache)
WAVES = (("prepare",), ("finetune",), ("cache", "latency"), ("distill", "single", "drop", "agent"), ("analyze",))
# `--executor local` takes the ready stages in this order, so that no worker is left with the longest stages
# at the end (an agent's runs take about twice a distill run)
LONGEST_FIRST = ("finetune", "agent", "cache", "single", "drop", "distill", "latency", "prepare", "analyze")
# a job's copy never holds these: DVC restores the outputs, the rest is this machine's own
NOT_COPIED = (".git", ".venv", "__pycache__", ".pytest_cache")
DVC_OWN = (".dvc/cache", ".dvc/tmp", ".dvc/config.local")
# what `dvc repro` says of each stage: it ran, or came back from the run-cache
RAN = re.compile(r"Running stage '([^']+)'")
RESTORED = re.compile(r"Stage '([^']+)' is cached - skipping run")


class ClusterJob(Strict):
    """One stage kind's resources on the cluster: submitit's shared parameters (SLURM's --gpus-per-node,
    --cpus-per-task, --mem, --time)."""

    gpus: Annotated[int, Field(ge=0, le=64)] = 0
    cpus: Annotated[int, Field(ge=1, le=1024)] = 4
    mem_gb: Annotated[float, Field(gt=0, le=100_000)] = 16
    timeout_min: Annotated[int, Field(ge=1, le=60 * 24 * 30)] = 60


CLUSTER_KINDS = ("prepare", "finetune", "cache", "latency", "distill", "single", "drop", "agent", "analyze")


class Cluster(Strict):
    """The `cluster:` section: how `python -m pipeline.cluster` submits the stages (docs/cluster.md); no stage
    reads it, so dvc.yaml does not track it."""

    folder: str = ".dvc/tmp/cluster"  # the snapshot, the jobs' workspaces and logs: on a filesystem every node sees
    partition: str | None = None  # SLURM's --partition; None: the cluster's default
    account: str | None = None  # SLURM's --account
    setup: list[str] = []  # shell lines each SLURM job runs first, e.g. `module load cuda`, `source .venv/bin/activate`
    array_parallelism: Annotated[int, Field(ge=1, le=100_000)] = 64  # jobs of one array running at once
    retries: Annotated[int, Field(ge=0, le=10)] = 2  # resubmissions of a wave's failed jobs
    # `--executor local`: jobs at once on this machine; None: one per core (each stage on compute.threads threads)
    local_workers: Annotated[int, Field(ge=1, le=256)] | None = None
    jobs: dict[Literal[CLUSTER_KINDS], ClusterJob] = Field(
        {}, validate_default=True
    )  # per stage kind; a kind left out gets ClusterJob()

    @field_validator("jobs")
    @classmethod
    def _every_kind(cls, jobs: dict) -> dict:
        return {k: jobs.get(k, ClusterJob()) for k in CLUSTER_KINDS}


def settings(path: str | Path = "params.yaml") -> Cluster:
    """The file's `cluster:` section, validated (the defaults where it has none)."""
    return validate(Cluster, read(path).get("cluster"), path, prefix="cluster")


class WaveFailed(Exception):
    pass


class DvcFailed(RuntimeError):
    """`dvc` exited with an error (a stage failed, or DVC itself)."""


def dvc(*args: str, cwd: Path | str = ".", check: bool = True) -> str:
    """Run DVC with this interpreter's folder first on PATH, so that stages' `python` is this one."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and done.returncode:
        raise DvcFailed(f"dvc {' '.join(args)} failed in {cwd} (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def stage_names(root: Path | str = ".") -> list[str]:
    """Every stage of dvc.yaml by name (`distill@rt-ce-1`), in dvc.yaml's order."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return [stage.name for stage in repo.index.stages]


def stale(root: Path | str = ".") -> set[str]:
    """The stages `dvc repro` would run: those `dvc status` finds changed, and every stage downstream of them
    (`dvc repro --dry` cannot say: it stops at the first dependency that is not there yet)."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        changed = repo.status()
        graph = repo.index.graph  # edges: stage -> a stage it depends on
        hit = [s for s in repo.index.stages if s.addressing in changed or s.name in changed]
        return {s.name for s in hit} | {a.name for s in hit for a in nx.ancestors(graph, s)}


def upstream(root: Path | str, stages: list[str]) -> dict[str, list[str]]:
    """Each of `stages` with the stages among them that it depends on, directly or not (DVC's graph)."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges: stage -> a stage it depends on
        by_name = {s.name: s for s in repo.index.stages}
        return {s: sorted({d.name for d in nx.descendants(graph, by_name[s])} & set(stages)) for s in stages}


def kind(stage: str) -> str:
    return stage.split("@")[0]


def waves(stages: list[str]) -> list[dict[str, list[str]]]:
    """The stages of each wave by kind, `assets` left out; an unknown kind (a stage added to dvc.yaml
    but not to WAVES) is refused, since its place in the order is unknown."""
    known = {k for wave in WAVES for k in wave} | {"assets"}
    unknown = sorted({kind(s) for s in stages} - known)
    if unknown:
        raise InputError(f"dvc.yaml: stage kind(s) {unknown} have no wave in pipeline/cluster.py WAVES {WAVES}")
    out = [{k: [s for s in stages if kind(s) == k] for k in wave} for wave in WAVES]
    return [{k: v for k, v in wave.items() if v} for wave in out if any(wave.values())]


def shares(stages: list[str], jobs: int) -> list[list[str]]:
    """`stages` dealt round-robin into at most `jobs` jobs, so that the jobs get a similar mix."""
    jobs = max(1, min(jobs, len(stages)))
    return [stages[i::jobs] for i in range(jobs)]


def output_paths(root: Path) -> list[str]:
    """Every output path of dvc.yaml, relative to `root`."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return sorted({os.path.relpath(out.fs_path, root) for stage in repo.index.stages for out in stage.outs})


def snapshot(root: Path, to: Path, cache_dir: str, skip: tuple[str, ...] = ()) -> None:
    """Copy `root` to `to` without outputs, git, virtual environments or the paths `skip`, and point its DVC at
    `cache_dir`, without git (a job needs none). The assets stage's outputs are kept: they are not in
    DVC's cache, so they travel with the snapshot (hard-linked, hundreds of MB of encoders)."""
    skip = {root / p for p in output_paths(root) if not p.startswith("assets")} | {root / p for p in DVC_OWN + skip}

    def ignore(folder, names):
        return [n for n in names if n in NOT_COPIED or Path(folder) / n in skip]

    if to.exists():
        shutil.rmtree(to)
    shutil.copytree(root, to, ignore=ignore, symlinks=True, copy_function=linked_assets(root))
    local = to / ".dvc" / "config.local"
    local.write_text(
        f"[core]\n    no_scm = true\n    autostage = false\n[cache]\n    dir = {cache_dir}\n"
        '    type = "hardlink,copy"\n    shared = group\n'
    )


def linked_assets(root: Path):
    assets = (root / "assets").resolve()

    def copy(src, dst):
        if Path(src).resolve().is_relative_to(assets):
            try:
                return os.link(src, dst)
            except OSError:  # another filesystem
                pass
        return shutil.copy2(src, dst)

    return copy


def copy_snapshot(snap: Path, to: Path) -> None:
    """A job attempt's own workspace: a copy of the snapshot (assets hard-linked again)."""
    if to.exists():
        shutil.rmtree(to)
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(snap, to, symlinks=True, copy_function=linked_assets(snap))


@dataclass
class StageJob:
    """One job of a wave: `dvc repro` of its stages in a fresh copy of the snapshot. What a killed attempt
    finished is in the run-cache, so the next attempt restores it."""

    name: str
    stages: list[str]
    snapshot: str
    folder: str
    attempt: int = 0

    def __call__(self) -> dict:
        start = time.perf_counter()
        work = Path(self.folder) / self.name / f"attempt-{self.attempt}"
        copy_snapshot(Path(self.snapshot), work)
        log = work.parent / f"attempt-{self.attempt}.log"
        try:
            out = self.repro(work)
        except RuntimeError as err:  # DVC or a stage failed: its output beside the kept workspace
            log.write_text(str(err))
            raise
        log.write_text(out)
        self.save_uncached(work)
        record = {
            "job": self.name,
            "attempt": self.attempt,
            "stages": self.stages,
            "ran": RAN.findall(out),
            "restored": RESTORED.findall(out),
            "seconds": round(time.perf_counter() - start, 1),
        }
        shutil.rmtree(work)  # every output is in the cache now; the log stays beside it
        return record

    def repro(self, work: Path) -> str:
        return dvc("repro", *self.stages, cwd=work)

    def save_uncached(self, work: Path) -> None:
        save_uncached(work, self.stages)

    def checkpoint(self, *args, **kwargs):
        """Preempted or out of time on SLURM: submitit requeues the job, and DVC restores what finished."""
        import submitit

        return submitit.helpers.DelayedSubmission(replace(self, attempt=self.attempt + 1))


def forget(lock: Path, stages: list[str]) -> None:
    """Drop `stages` from the dvc.lock `lock`, so that DVC finds them in its run-cache. DVC restores a stage whose
    lock entry still matches its dependencies from that entry's outputs, never from the run-cache; a lock
    committed from another run names metrics files with that run's timings, which this cache lacks, so every
    job would run those stages again (a fresh clone would fine-tune each teacher once per job)."""
    from ruamel.yaml import YAML

    if not lock.exists():
        return
    yaml = YAML()
    entries = yaml.load(lock.read_text())
    if entries and entries.get("stages"):
        for name in stages:
            entries["stages"].pop(name, None)
        with atomic_path(lock) as tmp, open(tmp, "w") as f:
            yaml.dump(entries, f)


def save_uncached(work: Path, stages: list[str]) -> None:
    """DVC keeps a stage out of its run-cache when an output is `cache: false` (finetune's metrics, latency,
    analyze: results/ is committed to git), so the stages whose restore elsewhere would fail are saved to it
    here; the run-cache then holds a copy of those outputs, and `dvc repro` restores them."""
    from dvc.repo import Repo

    wanted = set(stages)
    with contextlib.chdir(work), Repo(".") as repo:  # DVC resolves a stage's name against the current folder
        # one pass over the index: `repo.stage.collect(name)` parses dvc.yaml again for each name (about 3 s a
        # stage at the study's 179 stages, minutes before a round's first stage)
        for stage in repo.index.stages:
            if stage.name in wanted and any(not out.use_cache for out in stage.outs):
                repo.stage_cache.save(stage)


def executor(cluster: Cluster, how: str, kind_: str, folder: Path):
    import submitit

    spec = cluster.jobs[kind_]
    ex = submitit.AutoExecutor(folder=folder / "logs" / kind_, cluster=how)
    ex.update_parameters(
        name=f"rlkd-{kind_}",
        timeout_min=spec.timeout_min,
        cpus_per_task=spec.cpus,
        gpus_per_node=spec.gpus,
        mem_gb=spec.mem_gb,
        slurm_array_parallelism=cluster.array_parallelism,
        **({"slurm_partition": cluster.partition} if cluster.partition else {}),
        **({"slurm_account": cluster.account} if cluster.account else {}),
        **({"slurm_setup": cluster.setup} if cluster.setup else {}),
    )
    return ex


def pool_executor(cluster: Cluster, folder: Path, stages: list[str]):
    """The local workers' executor; a worker may run every stage, so its time limit is all of theirs."""
    import submitit

    ex = submitit.AutoExecutor(folder=folder / "logs" / "pool", cluster="local")
    ex.update_parameters(name="rlkd-pool", timeout_min=sum(cluster.jobs[kind(s)].timeout_min for s in stages))
    return ex


def cores() -> int:
    """The cores this process may run on (a container's or a job's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_wave(
    number: int,
    wave: dict[str, list[str]],
    jobs_of,
    submit,
    retries: int,
    snap: Path,
    folder: Path,
    job_class=StageJob,
) -> list[dict]:
    """Submit a wave's jobs (one array per stage kind) and wait; resubmit the jobs that failed, up to
    `retries` times. `jobs_of(kind, n)`: how many jobs share n stages; `submit(kind, jobs)`: submitit jobs."""
    pending = [
        job_class(f"w{number}-{k}-{i}", share, str(snap), str(folder / "jobs"))
        for k, stages in wave.items()
        for i, share in enumerate(shares(stages, jobs_of(k, len(stages))))
    ]
    records = []
    for attempt in range(retries + 1):
        running = []
        for k in wave:
            mine = [job for job in pending if kind(job.stages[0]) == k]
            if mine:
                running += zip(mine, submit(k, mine))
        failed = []
        for job, handle in running:
            try:
                records.append(handle.result())
                r = records[-1]
                print(
                    f"cluster: job {job.name} done in {r['seconds']:.0f} s: ran {len(r['ran'])}, "
                    f"restored {len(r['restored'])}",
                    flush=True,
                )
            except Exception as err:  # a lost, killed or failed job: its wave resubmits it
                print(f"cluster: job {job.name} (attempt {job.attempt}) failed: {str(err).strip()[-500:]}", flush=True)
                records.append(
                    {"job": job.name, "attempt": job.attempt, "stages": job.stages, "failed": str(err)[-2000:]}
                )
                failed.append(job)
        if not failed:
            return records
        pending = [replace(job, attempt=job.attempt + 1) for job in failed]
        if attempt < retries:
            print(f"cluster: wave {number}: resubmitting {len(pending)} job(s)", flush=True)
    stages = [s for job in pending for s in job.stages]
    raise WaveFailed(
        f"wave {number}: {len(pending)} job(s) failed {retries + 1} times; stages {stages}; "
        f"their logs: {folder / 'logs'} and {folder / 'jobs'}"
    )


def run(cluster: Cluster, how: str, worker_class=None) -> dict:
    """Run every stage that `dvc repro` would run, but `assets`, through submitit; return the summary (also
    written to the folder). On SLURM, one job per stage, wave after wave; locally, `cluster.local_workers`
    workers share the stages but `analyze`, which the closing `dvc repro` runs (pipeline/pool.py; `worker_class`
    stands in for its PoolWorker). Each stage runs on `compute.threads` torch threads (1 by default), so that
    local workers do not oversubscribe the cores."""
    root = Path.cwd()
    folder = (root / cluster.folder).resolve()
    print("cluster: assets, here first (not restorable from DVC's cache)", flush=True)
    dvc("repro", "assets")
    cache_dir = str(Path(dvc("cache", "dir").strip().splitlines()[-1]).resolve())
    changed = stale(root)
    todo = [s for s in stage_names(root) if s in changed]
    plan = waves(todo)  # refuses a stage kind it does not know, before anything runs
    # the jobs restore every stage from the run-cache: the current ones go in (DVC leaves out a stage with an
    # output outside its cache), the lock entries of those to run go out (forget)
    save_uncached(root, [s for s in stage_names(root) if s not in todo and s != "assets"])
    snap = folder / "snapshot"
    snapshot(root, snap, cache_dir)
    forget(snap / "dvc.lock", todo)
    summary = {"executor": how, "cache": cache_dir, "waves": []}
    # on one machine `analyze` is left to the closing `dvc repro` here, where every run is checked out anyway:
    # a worker's fresh copy would first restore every run (about 2.5 s each, minutes for the study's hundreds)
    pooled = [s for s in todo if kind(s) != "analyze"] if how == "local" else []
    if pooled:
        from .pool import PoolWorker, run_pool  # pool imports this module

        workers = min(cluster.local_workers or cores(), len(pooled))
        print(f"cluster: {len(pooled)} stage(s), {workers} local workers on {cores()} cores", flush=True)
        start = time.perf_counter()
        submit = pool_executor(cluster, folder, pooled).submit_array
        summary["pool"] = run_pool(
            pooled, upstream(root, pooled), workers, submit, cluster.retries, snap, folder, worker_class or PoolWorker
        )
        summary["pool"]["seconds"] = round(time.perf_counter() - start, 1)
    executors = {}

    def submit(kind_, jobs):
        if kind_ not in executors:
            executors[kind_] = executor(cluster, how, kind_, folder)
        return executors[kind_].submit_array(jobs)

    for number, wave in enumerate(plan if how == "slurm" else [], 1):
        start = time.perf_counter()
        print(f"cluster: wave {number}: " + ", ".join(f"{k} x{len(v)}" for k, v in wave.items()), flush=True)
        records = run_wave(number, wave, lambda kind_, n: n, submit, cluster.retries, snap, folder)
        summary["waves"].append(
            {
                "wave": number,
                "stages": wave,
                "jobs": records,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    forget(root / "dvc.lock", todo)  # every job succeeded: their stages are in the run-cache
    print("cluster: the closing `dvc repro` here (restores every stage; locally, runs the analysis)", flush=True)
    out = dvc("repro")  # restores every stage from the run-cache and records it in dvc.lock
    summary["final_repro"] = {"ran": RAN.findall(out), "restored": RESTORED.findall(out)}
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--executor",
        choices=["slurm", "local"],
        default="slurm",
        help="slurm: submit to the cluster; local: jobs as processes on this machine",
    )
    ap.add_argument("--dry", action="store_true", help="print the waves, submit nothing")
    args = ap.parse_args(argv)
    with reported_errors():
        load("params.yaml")  # what the stages read
        cluster = settings("params.yaml")
        if args.dry:  # `run` prints each wave as it submits it
            for number, wave in enumerate(waves(stage_names()), 1):
                print(f"wave {number}: " + ", ".join(f"{k} x{len(v)}" for k, v in wave.items()))
            return
    try:
        summary = run(cluster, args.executor)
    except (WaveFailed, RuntimeError) as err:
        sys.exit(f"cluster: {err}")
    final = summary["final_repro"]
    print(
        f"cluster: done; the closing `dvc repro` restored {len(final['restored'])} stage(s) and ran "
        f"{len(final['ran'])}{': ' + ', '.join(final['ran']) if final['ran'] else ''}"
    )


if __name__ == "__main__":
    main()
