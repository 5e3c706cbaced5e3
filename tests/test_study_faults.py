"""The study under faults (docs/reliability.md): the tiny profile's study of 3 seeds stopped at points of its rounds
(Ctrl-C; a worker killed; the study alone killed during a run, leaving its round running; everything killed during
the closing repro, and inside its git commit), a second runner started beside it, and a disk that fills mid-round.
Each time, running the study again finishes it with exactly the runs of one uninterrupted `dvc repro` of the same
seeds, byte for byte, no run done twice, a clean git history and DVC status. About 6 minutes, the disk test another
3 (as root)."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestration.study_report import FINDINGS
from tests.conftest import ROOT, command_env, edit_params, outputs, run, tiny_cluster_repo

pytestmark = pytest.mark.slow

SEEDS = [1, 2, 3]
# the points are drawn, reproducibly: STUDY_FAULT_SEED=N reruns another draw
DRAW = random.Random(int(os.environ.get("STUDY_FAULT_SEED", "42")))
STUDENT = re.compile(r"pipeline\.(distill|agent) ")
HOOK = """#!/bin/sh
# armed by the test: the study's next commit stops here, inside `git commit` with its locks held, to be killed
if [ -e armed ]; then rm armed; touch committing; sleep 600; fi
"""


def study_repo(path: Path, seeds: list[int] = SEEDS) -> Path:
    """The tiny profile (one task, two tiny teachers; `ce`, U-Ensemble and the paper's RL-KD), as a git repository
    with a study of `seeds`."""
    repo = tiny_cluster_repo(path)
    edit_params(repo, lambda p: p["run"].update(methods=["ce", "u_ensemble"], agents=["rl_kd"]))
    (repo / "params-study.yaml").write_text(yaml.safe_dump({"run": {"seeds": seeds}}))
    (repo / "README.md").write_text(f"# tiny\n\n{FINDINGS[0]}\n{FINDINGS[1]}\n")
    for name in (".gitignore", ".dvcignore", ".dvc/.gitignore"):
        shutil.copy(ROOT / name, repo / name)
    for cmd in (["init", "-q", "-b", "main"], ["config", "user.name", "t"], ["config", "user.email", "t@t"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "tiny"], cwd=repo, check=True)
    return repo


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The runs of one uninterrupted `dvc repro` of the study's seeds."""
    repo = tiny_cluster_repo(tmp_path_factory.mktemp("reference") / "repo")
    edit_params(repo, lambda p: p["run"].update(methods=["ce", "u_ensemble"], agents=["rl_kd"], seeds=SEEDS))
    done = run([sys.executable, "-m", "dvc", "repro"], repo)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {k.removeprefix("runs/"): v for k, v in outputs(repo).items() if k.startswith("runs/")}


def start(repo: Path, log: Path, *args: str) -> subprocess.Popen:
    """`make study` in `repo` (its interpreter and code), output to `log`, in a process group of its own."""
    cmd = [sys.executable, "-m", "orchestration.study", *args]
    with open(log, "a") as out:
        return subprocess.Popen(cmd, cwd=repo, env=command_env(repo), stdout=out, stderr=out, start_new_session=True)


def processes_in(repo: Path, pattern: str | re.Pattern = "") -> list[int]:
    """The processes working in `repo` (the study, its round, the round's workers, their DVC and stages, git),
    whose command line matches `pattern`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cwd = os.readlink(entry / "cwd")
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):  # not a process, gone, or a zombie
            continue
        if (cwd == str(repo) or cwd.startswith(f"{repo}/")) and re.search(pattern, cmd):
            found.append(int(entry.name))
    return found


def worker_of(pid: int) -> int | None:
    """The pool worker (a submitit job) that runs the stage `pid`; None if it ended meanwhile."""
    try:
        while "submitit" not in Path(f"/proc/{pid}/cmdline").read_text():
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])  # its parent
        return pid
    except (OSError, ValueError):
        return None


def kill_all(repo: Path) -> None:
    """SIGKILL everything working in `repo`, as a lost machine would."""
    while pids := processes_in(repo):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def wait_for(check, what: str, log: Path, proc: subprocess.Popen | None = None, timeout: float = 400):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if found := check():
            return found
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the study ended (exit {proc.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.1)
    pytest.fail(f"no {what} within {timeout} s:\n{log.read_text()[-4000:]}")


def said(log: Path, text: str):
    return lambda: text in log.read_text()


def finish(repo: Path, log: Path) -> None:
    proc = start(repo, log)
    assert proc.wait(timeout=900) == 0, log.read_text()[-4000:]


def check_finished(repo: Path, reference: dict, logs: list[Path], seeds: list[int] = SEEDS) -> None:
    """The study as one that was never interrupted would leave it."""
    progress = yaml.safe_load((repo / "results/study/progress.json").read_text())
    assert progress["seeds_done"] == seeds  # every seed, once
    runs = {k.removeprefix("results/study/runs/"): v for k, v in outputs(repo).items() if "study/runs/" in k}
    expected = {k: v for k, v in reference.items() if int(k.split("/")[2]) in seeds}  # TASK/METHOD/SEED/FILE
    assert sorted(runs) == sorted(expected)
    assert [k for k in runs if runs[k] != expected[k]] == []  # predictions and weights byte for byte
    text = "".join(log.read_text() for log in logs)
    ran = re.findall(r"cluster: (\S+) ran in", text)
    assert sorted(s for s in set(ran) if ran.count(s) > 1) == []  # no finished run ran again
    assert f"study: {len(seeds)} of {len(seeds)} seeds in results/study" in text
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, capture_output=True, text=True, check=True).stdout  # noqa: E731
    assert git("status", "--porcelain") == ""  # nothing half written or left uncommitted
    subjects = git("log", "--format=%s").splitlines()
    assert subjects[0] == f"study: {len(seeds)} of {len(seeds)} seeds" and subjects[-1] == "tiny"
    assert len(set(subjects)) == len(subjects)  # no round committed twice
    touched = git("log", "--format=", "--name-only", "HEAD~" + str(len(subjects) - 1) + "..HEAD").split()
    assert {p for p in touched if not p.startswith("results/study/")} == {"README.md"}  # nothing stray committed
    assert not list((repo / ".git").rglob("*.lock"))
    status = run([sys.executable, "-m", "dvc", "status"], repo / ".study")
    assert "up to date" in status.stdout, status.stdout + status.stderr
    assert processes_in(repo) == []


def test_the_study_survives_kills_at_any_point_of_a_round(tmp_path, reference):
    repo = study_repo(tmp_path / "repo")
    logs = [tmp_path / f"study-{i}.log" for i in range(4)]
    delay = lambda: time.sleep(DRAW.uniform(0, 3))  # noqa: E731

    # round 1: Ctrl-C mid-run (SIGINT to the study's process group, as a terminal sends it): the round, a process
    # group of its own that the terminal does not reach, stops with the study
    study = start(repo, logs[0])
    wait_for(lambda: processes_in(repo, STUDENT), "a student run", logs[0], study)
    os.killpg(study.pid, signal.SIGINT)
    assert study.wait(timeout=60) == 1
    assert "study: stopped by SIGINT; the round's finished runs are in DVC's cache" in logs[0].read_text()
    wait_for(lambda: not processes_in(repo), "the round's end", logs[0], timeout=10)

    # round 1 again: a worker killed in the middle of a run; its stage goes back to the queue, the round goes on
    study = start(repo, logs[0])
    wait_for(lambda: processes_in(repo, STUDENT), "a student run", logs[0], study)
    delay()
    workers = lambda: [w for p in processes_in(repo, STUDENT) if (w := worker_of(p))]  # noqa: E731
    os.kill(wait_for(workers, "a worker running a student", logs[0], study)[0], signal.SIGKILL)
    wait_for(said(logs[0], "study: 1 of 3 seeds in results/study"), "round 1's end", logs[0], study)

    # round 2: the study alone killed during a run (its round, a process group of its own, runs on)
    wait_for(said(logs[0], "seeds [1, 2] of"), "round 2", logs[0], study)
    delay()
    wait_for(lambda: processes_in(repo, STUDENT), "a student run of round 2", logs[0], study)
    os.kill(study.pid, signal.SIGKILL)
    assert study.wait() == -signal.SIGKILL
    assert processes_in(repo, "orchestration.cluster"), "the round did not run on: nothing left to stop"

    # the study again: it stops the orphaned round; meanwhile a second runner of either kind is refused
    study = start(repo, logs[1])
    wait_for(said(logs[1], "study: stopping the round a killed study left running"), "the orphan's stop", logs[1])
    for module in (["orchestration.study"], ["orchestration.cluster", "--executor", "local"]):
        second = run([sys.executable, "-m", *module], repo)
        assert second.returncode == 2 and "this workspace is busy: python -m orchestration.study" in second.stderr
    # everything killed during a closing repro (as a lost machine would)
    wait_for(said(logs[1], "cluster: the closing `dvc repro`"), "a closing repro", logs[1], study)
    delay()
    kill_all(repo)

    # and everything killed inside the next git commit, its locks held
    (repo / ".git/hooks/pre-commit").write_text(HOOK)
    (repo / ".git/hooks/pre-commit").chmod(0o755)
    (repo / "armed").touch()
    study = start(repo, logs[2])
    wait_for(lambda: (repo / "committing").exists(), "a commit", logs[2], study)
    assert (repo / ".git/index.lock").exists()
    kill_all(repo)
    (repo / "committing").unlink()

    finish(repo, logs[3])
    assert re.search(r"study: removed \S+index\.lock, left by the study's git commit", logs[3].read_text())
    check_finished(repo, reference, logs)


def fill(disk: Path) -> Path:
    """Write zeros to a file on `disk` until it is full."""
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(bytes(2**20))
                f.flush()
        except OSError:
            pass
    return disk / "filler"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small file system (tmpfs): needs root")
def test_a_disk_full_mid_round_stops_it_with_one_error_and_a_rerun_finishes(tmp_path, reference):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], check=True)
    try:
        repo = study_repo(disk / "repo", seeds=[1, 2])
        log = tmp_path / "study.log"  # off the full disk, as a terminal is
        study = start(repo, log)
        wait_for(said(log, "seeds [1, 2] of"), "round 2", log, study)
        wait_for(lambda: processes_in(repo, STUDENT), "a student run of round 2", log, study)
        filler = fill(disk)
        assert study.wait(timeout=600) == 1
        said_ = log.read_text()
        assert "No space left on device" in said_ and "Traceback" not in said_
        verdict = said_.strip().splitlines()[-1]  # the last word: what failed, why, what is kept, what to do
        assert verdict.startswith("study: the round of seeds [1, 2] failed (its error above")
        assert re.search(r"; \d+ of 64 MB free on \.study's disk; nothing of the round is committed", verdict)
        assert verdict.endswith("results/study holds seeds [1]; rerun to continue")
        assert processes_in(repo) == []  # the round stopped with the study
        filler.unlink()
        git = lambda *a: subprocess.run(["git", *a], cwd=repo, capture_output=True, text=True, check=True).stdout  # noqa: E731
        assert git("log", "--format=%s").splitlines() == ["study: 1 of 2 seeds", "tiny"]
        assert git("status", "--porcelain") == ""  # nothing of the failed round in results/ or README
        finish(repo, tmp_path / "again.log")
        check_finished(repo, reference, [log, tmp_path / "again.log"], seeds=[1, 2])
    finally:
        kill_all(disk)
        subprocess.run(["umount", str(disk)], check=True)
