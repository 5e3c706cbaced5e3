"""`python -m orchestration.cluster --executor slurm` against a real SLURM: tools/slurm-local's one-node
cluster on this machine (SLURM 22.05 from Debian; munge, slurmdbd for `sacct`, slurmctld, slurmd).

The tiny profile runs wave by wave as SLURM jobs while two of them are broken as a cluster breaks them: the
first `prepare` job runs past its time limit (SLURM ends it: TIMEOUT) and the first `distill` job is
cancelled with `scancel` while its stage runs. The run must recover, run every stage exactly once to the
end, inside a SLURM job, with the resources and setup lines configured, and give a serial `dvc repro`'s
bytes. Needs root (it starts daemons); marker `slurm`, in the slow tier and in `.ci/run`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from orchestration.stages import CLUSTER_KINDS
from tests.conftest import ROOT, dvc, edit_params, outputs, run, tiny_cluster_repo

TOOL = ROOT / "tools" / "slurm-local"
pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def slurm():
    """A one-node SLURM, started for these tests (and stopped after them) unless one was up already."""
    if os.geteuid() != 0:
        pytest.skip("starting SLURM needs root (tools/slurm-local)")
    was_up = subprocess.run([TOOL, "status"], capture_output=True).returncode == 0
    started = subprocess.run([TOOL, "start"], capture_output=True, text=True, timeout=900)
    assert started.returncode == 0, started.stdout + started.stderr
    yield
    if not was_up:
        subprocess.run([TOOL, "stop"], capture_output=True, timeout=120)


def cluster(repo: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "orchestration.cluster", "--executor", "slurm"], repo, timeout=1500)


def slurm_stage_processes(repo: Path, module: str):
    """(SLURM job, pid) of every running `python -m MODULE` under `repo` that a SLURM job started; the job as
    scancel takes it (ARRAY_TASK for an array's task)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
            env = dict(item.split(b"=", 1) for item in (proc / "environ").read_bytes().split(b"\0") if b"=" in item)
        except OSError:  # ended meanwhile
            continue
        if module.encode() in argv and cwd.startswith(str(repo)) and b"SLURM_JOB_ID" in env:
            array = env.get(b"SLURM_ARRAY_JOB_ID", b"").decode()
            job = f"{array}_{env[b'SLURM_ARRAY_TASK_ID'].decode()}" if array else env[b"SLURM_JOB_ID"].decode()
            yield job, int(proc.name)


class Faults(threading.Thread):
    """Breaks two jobs while the run goes on: cuts the time limit of the first `prepare` job (asleep in its
    setup line, see `setup`) to one second, and cancels the first `distill` job while its stage runs."""

    def __init__(self, repo: Path, marks: Path):
        super().__init__(daemon=True)
        self.repo, self.marks, self.stop = repo, marks, threading.Event()
        self.timed_out = self.cancelled = None

    def run(self):
        while not self.stop.is_set() and not (self.timed_out and self.cancelled):
            sleeper = self.marks / "timeout" / "job"
            if not self.timed_out and sleeper.exists() and (job := sleeper.read_text().strip()):
                subprocess.run(["scontrol", "update", f"jobid={job}", "timelimit=0:00:01"], check=True)
                self.timed_out = job
            if not self.cancelled:
                for job, _ in slurm_stage_processes(self.repo, "pipeline.distill"):
                    subprocess.run(["scancel", job], check=True)
                    self.cancelled = job
                    break
            time.sleep(0.2)


def setup(marks: Path) -> list[str]:
    """The jobs' setup lines: each prints the resources SLURM gave it; the first `prepare` job then sleeps,
    so that it is still in its setup when its time limit is cut (no stage of it has started)."""
    return [
        'job=$SLURM_JOB_ID; [ -z "${SLURM_ARRAY_JOB_ID:-}" ] || job=${SLURM_ARRAY_JOB_ID}_$SLURM_ARRAY_TASK_ID',
        'echo "rlkd-setup job=$job cpus=$SLURM_CPUS_PER_TASK mem=$SLURM_MEM_PER_NODE"',
        f'if [ "$SLURM_JOB_NAME" = rlkd-prepare ] && mkdir {marks}/timeout 2>/dev/null; then '
        f'echo "$job" > {marks}/timeout/job; sleep 600; fi',
    ]


def sacct(jobs: list[str]) -> dict[str, dict]:
    """SLURM's accounting of these jobs: id -> name, state, allocated resources."""
    done = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-o", "JobID,JobName,State,AllocTRES", "-j", ",".join(jobs)],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split("|") for line in done.stdout.splitlines() if line]
    return {r[0]: {"name": r[1], "state": r[2], "tres": r[3]} for r in rows}


def test_the_tiny_profile_on_slurm_survives_a_timeout_and_a_cancel(tmp_path, slurm):
    reference = tiny_cluster_repo(tmp_path / "reference")
    dvc(reference, "repro", check=True)

    repo = tiny_cluster_repo(tmp_path / "repo")
    marks = tmp_path / "marks"
    marks.mkdir()
    jobs = {kind: {"cpus": 1, "mem_gb": 2, "timeout_min": 30} for kind in CLUSTER_KINDS}
    edit_params(repo, lambda p: p["cluster"].update(partition="local", retries=1, setup=setup(marks), jobs=jobs))
    faults = Faults(repo, marks)
    faults.start()
    try:
        done = cluster(repo)
    finally:
        faults.stop.set()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert faults.timed_out and faults.cancelled, "the faults never met their jobs"

    summary = json.loads((repo / ".dvc/tmp/cluster/summary.json").read_text())
    records = [r for wave in summary["waves"] for r in wave["jobs"]]
    failed = {r["slurm_job"]: r["job"] for r in records if "failed" in r}  # each resubmitted once, then done
    assert failed.keys() == {faults.timed_out, faults.cancelled}, failed
    assert failed[faults.timed_out].startswith("w1-prepare") and failed[faults.cancelled].startswith("w4-")
    states = sacct(list(failed))
    assert states[faults.timed_out]["state"] == "TIMEOUT", states
    assert states[faults.cancelled]["state"].startswith("CANCELLED"), states

    # every stage ran once, in a SLURM job; the broken ones again in their second attempt, the rest restored
    ok = [r for r in records if "failed" not in r]
    ran = sorted(s for r in ok for s in r["ran"])
    stages = sorted(s for wave in summary["waves"] for group in wave["stages"].values() for s in group)
    assert ran == stages
    assert summary["final_repro"] == {"ran": [], "restored": summary["final_repro"]["restored"]}
    assert sorted(summary["final_repro"]["restored"]) == stages
    accounting = sacct([r["slurm_job"] for r in ok])
    for r in ok:
        job = accounting[r["slurm_job"]]
        assert job["state"] == "COMPLETED" and job["name"] == "rlkd-" + r["job"].split("-")[1], job
        assert "cpu=1," in job["tres"] and "mem=2G" in job["tres"], job  # the configured resources
    logs = "".join(p.read_text() for p in (repo / ".dvc/tmp/cluster/logs").rglob("*_log.out"))
    for r in ok:
        assert f"rlkd-setup job={r['slurm_job']} cpus=1 mem=2048" in logs  # the setup lines ran in the job

    # nothing half-written kept: no attempt's workspace is left, only the logs
    assert [p for p in (repo / ".dvc/tmp/cluster/jobs").rglob("attempt-*") if p.is_dir()] == []
    status = dvc(repo, "status", check=True)
    assert "up to date" in status.stdout, status.stdout
    mine, theirs = outputs(repo), outputs(reference)
    assert sorted(mine) == sorted(theirs)
    assert [k for k in mine if mine[k] != theirs[k]] == []


FITS = {"cpus": 1, "mem_gb": 2, "timeout_min": 30}  # a job this machine's one-node SLURM takes


@pytest.mark.parametrize(
    ("partition", "kind", "change", "reason"),
    [
        ("nowhere", None, {}, "Invalid partition name specified"),
        ("local", "agent", {"timeout_min": 600}, "Requested time limit is invalid"),  # the partition's MaxTime: 4 h
        ("local", "finetune", {"cpus": 64}, "More processors requested than permitted"),
    ],
)
def test_a_job_slurm_refuses_stops_the_run_before_any_stage(tmp_path, slurm, partition, kind, change, reason):
    repo = tiny_cluster_repo(tmp_path / "repo")
    jobs = {k: FITS | (change if k == kind else {}) for k in CLUSTER_KINDS}
    edit_params(repo, lambda p: p["cluster"].update(partition=partition, jobs=jobs))
    done = cluster(repo)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: SLURM refuses these jobs"), lines
    named = {k for k in CLUSTER_KINDS if f"cluster.jobs.{k} (" in lines[0]}
    assert reason in lines[0] and (named == {kind} if kind else {"prepare", "distill", "analyze"} <= named), lines
    assert not (repo / "data").exists() and not (repo / "dvc.lock").exists()  # nothing ran, not even assets
    assert not (repo / ".dvc/tmp/cluster").exists()  # nothing submitted


def test_slurm_local_refuses_without_root_and_names_what_it_needs():
    script = TOOL.read_text()  # on stdin: a user without root may not be able to read the clone's folder
    as_user = [] if os.geteuid() != 0 else ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    done = subprocess.run([*as_user, "bash", "-s", "start"], input=script, capture_output=True, text=True, cwd="/")
    assert done.returncode == 1 and done.stderr.startswith("slurm-local: error: run it as root"), done.stderr
