"""Nothing lost under faults: a run killed part way, writes that never leave a half file, damaged models."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from pipeline import io
from tests.conftest import ROOT, dvc, make_tiny_repo

STAGE = "distill@reviews-u_ensemble-1"
OUT = "runs/reviews/u_ensemble/1"


@pytest.fixture(scope="module")
def long_distill(tmp_path_factory):
    """The tiny profile with one distill run long enough (40 epochs, a few seconds) to be killed in the middle;
    its teachers fine-tuned and cached once for the module."""
    repo = make_tiny_repo(tmp_path_factory.mktemp("kill") / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["run"].update(tasks=["reviews"], methods=["u_ensemble"], seeds=[1])
    params["distill"]["epochs"] = 40
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(repo, "repro", "-q", "cache@reviews-tiny_a", "cache@reviews-tiny_b", check=True)
    return repo


def start_and_kill(repo, whole_group: bool) -> None:
    """Start `dvc repro -f -s STAGE` (this stage only); once two epochs are done, SIGKILL the training process
    (as the kernel's out-of-memory killer would) or DVC and all it started (a lost machine)."""
    env = {
        **os.environ,
        "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "-f", "-s", STAGE],
        cwd=repo,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.strip().startswith("epoch 2:"):
            break
    else:
        pytest.fail("the run ended before its second epoch:\n" + "".join(lines))
    if whole_group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        # the Python process itself: where DVC runs the command through dash (SHELL unset, as in CI), a
        # `sh -c "python -m pipeline.distill ..."` parent matches too, and killing it leaves the run going
        trainer = [
            c
            for c in psutil.Process(proc.pid).children(recursive=True)
            if c.cmdline()[1:3] == ["-m", "pipeline.distill"]
        ]
        assert trainer, "the distill process was not found"
        trainer[0].kill()
    proc.communicate(timeout=120)
    time.sleep(0.2)


@pytest.mark.slow  # trains and runs DVC: out of the fast tier
@pytest.mark.parametrize("whole_group", [False, True], ids=["training-process", "dvc-and-all"])
def test_a_killed_distill_run_is_completed_by_repro_with_the_same_numbers(long_distill, whole_group):
    repo = long_distill
    start_and_kill(repo, whole_group)
    out = repo / OUT
    # nothing that a later stage would take as a result: no run folder, at most a hidden partial one
    assert not (out / "predictions.parquet").exists() and not (out / "metrics.json").exists()
    assert STAGE in dvc(repo, "status", STAGE, check=True).stdout

    dvc(repo, "repro", STAGE, check=True)  # picks up cleanly: no stale lock, no partial file in the way
    assert not list(out.parent.glob(".*partial"))
    resumed = {f: (out / f).read_bytes() for f in ("predictions.parquet", "weights.parquet")}
    dvc(repo, "repro", "-f", "-s", STAGE, check=True)  # the same run, uninterrupted
    for name, content in resumed.items():
        assert (out / name).read_bytes() == content, name
    assert json.loads((out / "metrics.json").read_text())["best_epoch"] >= 1


def test_atomic_path_leaves_the_old_file_or_nothing(tmp_path):
    target = tmp_path / "metrics.json"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text('{"half": ')
            raise RuntimeError("crash mid-write")
    assert not target.exists() and not list(tmp_path.iterdir())
    io.write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        io.write_json(target, {"not json": object()})
    assert json.loads(target.read_text()) == {"ok": 1}  # the old file, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


DEAD = 4_194_305  # above Linux's largest process id: no process has it


def test_a_stale_partial_folder_is_cleared_by_the_next_write(tmp_path):
    for kind in ("partial", "old"):  # a kill while writing, and one between the two renames
        stale = tmp_path / f".run.{kind}-{DEAD}"
        stale.mkdir()
        (stale / "predictions.parquet").write_text("half")
    with io.atomic_path(tmp_path / "run") as tmp:
        tmp.mkdir()
        (tmp / "metrics.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["metrics.json"]


@pytest.mark.slow  # runs DVC
def test_dvc_never_hashes_what_a_killed_stage_left_in_a_folder_it_tracks(tmp_path):
    """A SIGKILLed `cache` stage leaves `logits/TASK/.TEACHER.partial-PID` inside `logits/TASK`, which the students
    depend on: the project's .dvcignore keeps it (and an `.old-PID`) out of the folder's hash, so nothing reruns."""
    shutil.copy(ROOT / ".dvcignore", tmp_path)
    (tmp_path / "logits/t/a").mkdir(parents=True)
    (tmp_path / "logits/t/a/train.safetensors").write_text("cached")
    stage = {"cmd": "ls -R logits > out.txt", "deps": ["logits/t"], "outs": ["out.txt"]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"student": stage}}))
    dvc(tmp_path, "init", "--no-scm", "-q", check=True)
    dvc(tmp_path, "repro", check=True)
    for kind in ("partial", "old"):
        (tmp_path / f"logits/t/.b.{kind}-{DEAD}").mkdir()
        (tmp_path / f"logits/t/.b.{kind}-{DEAD}/train.safetensors").write_text("half")
    assert "up to date" in dvc(tmp_path, "status", check=True).stdout
    (tmp_path / "logits/t/b").mkdir()  # a finished output does count
    (tmp_path / "logits/t/b/train.safetensors").write_text("cached")
    assert "modified:           logits/t" in dvc(tmp_path, "status", check=True).stdout


def test_only_the_partials_of_ended_processes_are_removed(tmp_path):
    ended, running = tmp_path / f".data.partial-{DEAD}", tmp_path / f".data.partial-{os.getppid()}"
    for p in (ended, running, tmp_path / "data"):
        p.mkdir()
    assert io.remove_stale(tmp_path) == [ended]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, "data"])


def test_a_replaced_folder_is_never_missing_between_old_and_new(tmp_path, monkeypatch):
    """The old folder is renamed away, not deleted, before the new one moves in: a kill at any point leaves
    either folder in place under its name, or the old one under `.NAME.old-PID` for the next write to clear."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "v").write_text("1")
    moves = []
    real = os.replace
    monkeypatch.setattr(io.os, "replace", lambda a, b: (moves.append((Path(a).name, Path(b).name)), real(a, b)))
    with io.atomic_path(tmp_path / "data") as tmp:
        tmp.mkdir()
        (tmp / "v").write_text("2")
    pid = os.getpid()
    assert moves == [("data", f".data.old-{pid}"), (f".data.partial-{pid}", "data")]
    assert (tmp_path / "data" / "v").read_text() == "2" and sorted(p.name for p in tmp_path.iterdir()) == ["data"]
