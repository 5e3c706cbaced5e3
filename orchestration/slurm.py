"""Ask SLURM, before anything runs, whether it takes each stage kind's job as `cluster:` sets it.

A job that SLURM refuses at submission would otherwise surface only when its wave comes, after hours of
the waves before it; one that exceeds a partition's limits where the cluster does not enforce them at
submission would wait forever. `sbatch --test-only` asks the controller without submitting: the same
resources submitit sends (orchestration/cluster.py, `executor`), one question per stage kind.
"""

from __future__ import annotations

import shutil
import subprocess

from pipeline.params_file import InputError


def sbatch_options(job, partition: str | None, account: str | None) -> list[str]:
    """The options submitit's AutoExecutor gives sbatch for a ClusterJob (its `--mem` in MB: the same amount)."""
    return [
        f"--time={job.timeout_min}",
        f"--cpus-per-task={job.cpus}",
        f"--mem={int(job.mem_gb * 1024)}M",
        *([f"--gpus-per-node={job.gpus}"] if job.gpus else []),
        *([f"--partition={partition}"] if partition else []),
        *([f"--account={account}"] if account else []),
    ]


def refusal(options: list[str]) -> str | None:
    """SLURM's reason for refusing a job with these options, or None if it would take it."""
    done = subprocess.run(
        ["sbatch", "--test-only", *options, "--wrap", "true"], capture_output=True, text=True, timeout=60
    )
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return "; ".join(lines) or f"sbatch exited {done.returncode}"


def check(cluster, kinds: list[str]) -> None:
    """Raise one InputError naming every stage kind whose job SLURM refuses, with SLURM's reason."""
    if shutil.which("sbatch") is None:
        raise InputError(
            "--executor slurm: no `sbatch` on PATH (is this a SLURM login node? tools/slurm-local "
            "starts a one-node SLURM here)"
        )
    refused = []
    for kind in kinds:
        reason = refusal(sbatch_options(cluster.jobs[kind], cluster.partition, cluster.account))
        if reason:
            job = cluster.jobs[kind]
            refused.append(
                f"cluster.jobs.{kind} (timeout_min {job.timeout_min}, cpus {job.cpus}, mem_gb {job.mem_gb}, "
                f"gpus {job.gpus}, partition {cluster.partition or 'default'}): {reason}"
            )
    if refused:
        raise InputError("SLURM refuses these jobs, so nothing was submitted: " + " | ".join(refused))
