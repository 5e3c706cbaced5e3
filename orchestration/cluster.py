"""Run the pipeline on a cluster: its stages in dependency waves, one job array per wave, through submitit.

Usage: python -m orchestration.cluster [--executor slurm|local] [--dry]   (reads params.yaml's `cluster:`)
Each job copies a snapshot of this workspace (code, params, dvc.yaml, and dvc.lock's entries of the stages the jobs
read, without outputs) and runs `dvc repro STAGE ...` for its share of the wave, on this workspace's DVC cache (a shared
cache on the cluster's filesystem). Every stage a job runs lands in DVC's run-cache, so the next wave's
jobs restore what they depend on instead of running it, a resubmitted job restores what its killed
attempt had finished, and at the end every stage is restored here and recorded in dvc.lock. No scheduling of
our own on a cluster: SLURM runs the jobs, DVC decides what runs.
docs/cluster.md has the SLURM set-up and the command for the paper profile. On one machine
(`--executor local`) a wave would idle cores while its longest stage runs: there, submitit's local
executor runs a pool of workers that start each stage as soon as its upstream is done (orchestration/pool.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from pipeline import user_data
from pipeline.params_file import InputError, read, reported_errors, validate
from pipeline.schema import Strict, load

from . import slurm
from .dvc_api import RAN, RESTORED, cache_dir, dvc, forget, keep_only, kind, restore, save_uncached, stage_names, todo
from .pool import PoolWorker, run_pool
from .stages import CLUSTER_KINDS, WaveFailed, shares, waves
from .workspace import attempt_workspace, cores, hold, snapshot


class ClusterJob(Strict):
    """One stage kind's resources on the cluster: submitit's shared parameters (SLURM's --gpus-per-node,
    --cpus-per-task, --mem, --time)."""

    gpus: Annotated[int, Field(ge=0, le=64)] = 0
    cpus: Annotated[int, Field(ge=1, le=1024)] = 4
    mem_gb: Annotated[float, Field(gt=0, le=100_000)] = 16
    timeout_min: Annotated[int, Field(ge=1, le=60 * 24 * 30)] = 60


class Cluster(Strict):
    """The `cluster:` section: how `python -m orchestration.cluster` submits the stages (docs/cluster.md); no stage
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


def slurm_job() -> str | None:
    """This process's SLURM job as squeue, sacct and scancel name it (ARRAY_TASK for a task of a job array: its
    own SLURM_JOB_ID is not accepted by scancel everywhere); None outside SLURM (the local executor)."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


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
        work, log = attempt_workspace(self.snapshot, self.folder, self.name, self.attempt)
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
            "slurm_job": slurm_job(),
            "stages": self.stages,
            "ran": RAN.findall(out),
            "restored": RESTORED.findall(out),
            "seconds": round(time.perf_counter() - start, 1),
        }
        # every output is in the cache now; the logs stay. An earlier attempt's workspace, where a killed or
        # failed job left half-written outputs, goes too
        for done in work.parent.glob("attempt-*"):
            if done.is_dir():
                shutil.rmtree(done)
        return record

    def repro(self, work: Path) -> str:
        return dvc("repro", *self.stages, cwd=work)

    def save_uncached(self, work: Path) -> None:
        save_uncached(work, self.stages)

    def checkpoint(self, *args, **kwargs):
        """Preempted or out of time on SLURM: submitit requeues the job, and DVC restores what finished."""
        import submitit

        return submitit.helpers.DelayedSubmission(replace(self, attempt=self.attempt + 1))


def executor(cluster: Cluster, how: str, kind_: str, folder: Path):
    import submitit

    spec = cluster.jobs[kind_]
    # a job at its time limit is not requeued (a job runs one stage, which would run out of time again): it
    # fails, and its wave resubmits it as any failed job; a preempted job is still requeued
    ex = submitit.AutoExecutor(folder=folder / "logs" / kind_, cluster=how, slurm_max_num_timeout=0)
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
                    {"job": job.name, "attempt": job.attempt, "slurm_job": handle.job_id, "stages": job.stages}
                    | {"failed": str(err)[-2000:]}
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


def run(cluster: Cluster, how: str, worker_class=None, only: set[str] | None = None) -> dict:
    """Run every stage that `dvc repro` would run, but `assets`, through submitit (with `only`, the stages of those
    kinds and the stages they need); return the summary (also written to the folder). On SLURM, one job per stage,
    wave after wave; locally, `cluster.local_workers` workers share the stages but `analyze`, which the closing `dvc
    repro` runs (orchestration/pool.py; `worker_class` stands in for its PoolWorker). Each stage runs on
    `compute.threads` torch threads (1 by default), so that local workers do not oversubscribe the cores."""
    root = Path.cwd()
    folder = (root / cluster.folder).resolve()
    print("cluster: assets, here first (not restorable from DVC's cache)", flush=True)
    dvc("repro", "assets")
    cache = cache_dir()
    due = todo(root).only(only) if only else todo(root)
    plan = waves(due.stages)  # refuses a stage kind it does not know, before anything runs
    # on one machine `analyze` is left to the closing `dvc repro` here, where every run is checked out anyway:
    # a worker's fresh copy would first restore every run (about 2.5 s each, minutes for the study's hundreds)
    pooled = [s for s in due.stages if kind(s) != "analyze"] if how == "local" else []
    # the jobs restore what their stages read from the run-cache (DVC leaves out a stage with an output outside its
    # cache: it goes in here); their lock holds those stages alone, so that DVC there parses a short one
    reads = due.inputs(pooled if how == "local" else due.stages)
    save_uncached(root, [s for s in reads if s != "assets"])
    snap = folder / "snapshot"
    snapshot(root, snap, cache)
    keep_only(snap / "dvc.lock", reads)
    summary = {"executor": how, "cache": cache, "waves": []}
    if pooled:
        workers = min(cluster.local_workers or cores(), len(pooled))
        print(f"cluster: {len(pooled)} stage(s), {workers} local workers on {cores()} cores", flush=True)
        start = time.perf_counter()
        submit = pool_executor(cluster, folder, pooled).submit_array
        summary["pool"] = run_pool(
            pooled, due.needs, workers, submit, cluster.retries, snap, folder, worker_class or PoolWorker
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
    forget(root / "dvc.lock", due.stages)  # every job succeeded: their stages are in the run-cache
    print("cluster: restoring the stages here from DVC's run-cache", flush=True)
    restored = restore(root, [s for s in due.stages if kind(s) != "analyze"])
    left = [s for s in due.stages if s not in restored]
    out = ""
    if left:  # locally, the analysis; alone, `--single-item`: a full `dvc repro` checks every stage again (30 s)
        alone = all(kind(s) == "analyze" for s in left)
        print(f"cluster: the closing `dvc repro` here of {', '.join(left) if alone else 'every stage'}", flush=True)
        out = dvc("repro", "--single-item", *left) if alone else dvc("repro")
    summary["final_repro"] = {"ran": RAN.findall(out), "restored": restored + RESTORED.findall(out)}
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
    ap.add_argument(
        "--only",
        nargs="+",
        metavar="KIND",
        help="only the stale stages of these kinds (finetune cache ...) and the stale stages they need",
    )
    args = ap.parse_args(argv)
    with reported_errors():
        if unknown := set(args.only or ()) - set(CLUSTER_KINDS):
            raise InputError(f"--only: {sorted(unknown)} is no stage kind; the kinds: {', '.join(CLUSTER_KINDS)}")
        if not args.dry:  # one runner a workspace; --dry only reads
            hold(Path.cwd(), f"python -m orchestration.cluster --executor {args.executor}")
        load("params.yaml")  # what the stages read
        cluster = settings("params.yaml")
        every = waves(stage_names())
        if args.dry:  # `run` prints each wave as it submits it
            for number, wave in enumerate(every, 1):
                print(f"wave {number}: " + ", ".join(f"{k} x{len(v)}" for k, v in wave.items()))
            return
        user_data.check(Path("user_data"))  # before DVC hashes it: a FIFO there would hang `dvc repro`
        if args.executor == "slurm":  # before `assets` or any stage runs
            slurm.check(cluster, [k for wave in every for k in wave])
    try:
        with reported_errors():  # a full disk, a refused write: one line naming the file
            summary = run(cluster, args.executor, only=set(args.only or ()))
    except (WaveFailed, RuntimeError) as err:
        sys.exit(f"cluster: {err}")
    except KeyboardInterrupt as err:
        sys.exit(f"cluster: stopped by {str(err) or 'SIGINT'}; the stages that finished are in DVC's run-cache; rerun")
    final = summary["final_repro"]
    print(
        f"cluster: done; the closing `dvc repro` restored {len(final['restored'])} stage(s) and ran "
        f"{len(final['ran'])}{': ' + ', '.join(final['ran']) if final['ran'] else ''}"
    )


if __name__ == "__main__":
    main()
