"""Shared fixtures: tiny synthetic tasks and tiny random teachers, so tests need no download."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmarks.planted.designs import (  # the planted benchmark's synthetic reviews
    NEGATIVE,
    POSITIVE,
    REVIEWS_TASK,
    TINY_STUDENT,
    sentiment_frame,
    tiny_teacher,
)
from pipeline import methods

ROOT = Path(__file__).resolve().parents[1]
# the tests' DVC commands (hundreds) would each start DVC's usage-report daemon: not for test runs
os.environ["DVC_NO_ANALYTICS"] = "1"
# every method of the registry (pipeline/methods/) but the per-teacher families, which have no section
METHODS = methods.files()


def pytest_collection_modifyitems(items):
    """Tests that fetch the real assets, run the cluster driver or start SLURM are slow too: `-m "not slow"`
    leaves them out."""
    for item in items:
        if any(item.get_closest_marker(m) for m in ("assets", "cluster", "slurm")):
            item.add_marker(pytest.mark.slow)


def pair_frame(n: int, seed: int = 1) -> pd.DataFrame:
    """Question/answer pairs: label 1 when the answer repeats the question's topic word."""
    rng = np.random.default_rng(seed)
    topics = POSITIVE + NEGATIVE
    rows = []
    for i in range(n):
        topic = rng.choice(topics)
        label = int(rng.integers(2))
        other = rng.choice([t for t in topics if t != topic])
        rows.append(
            {
                "question": f"what about {topic} number {i}",
                "answer": f"it is {topic if label else other}",
                "label": ["no", "yes"][label],
            }
        )
    return pd.DataFrame(rows)


def tiny_params(root: Path) -> dict:
    """A profile of two user-file tasks (one single-sentence, one pair) and two tiny teachers."""
    data = root / "user_data"
    data.mkdir(parents=True, exist_ok=True)
    sentiment_frame(300).to_csv(data / "reviews.csv", index=False)
    pair_frame(240).to_json(data / "pairs.jsonl", orient="records", lines=True)
    return {
        "seed": 0,
        "run": {
            "tasks": ["reviews", "pairs"],
            "teachers": ["tiny_a", "tiny_b"],
            "methods": ["ce", "u_ensemble", "ca_mkd"],
            "single": [],
            "drop": [],
            "agents": ["rl_kd"],
            "seeds": [1],
        },
        "assets": {"dir": "assets", "encoders": [], "corpora": []},
        "tasks": {
            "reviews": dict(REVIEWS_TASK),
            "pairs": {
                "source": "file",
                "path": "user_data/pairs.jsonl",
                "text_a": "question",
                "text_b": "answer",
                "label": "label",
                "labels": ["no", "yes"],
                "dev_fraction": 0.2,
                "test_fraction": 0.2,
            },
        },
        "teachers": {"tiny_a": tiny_teacher(32, 2), "tiny_b": tiny_teacher(48, 1, max_train=150)},
        "student": copy.deepcopy(TINY_STUDENT),
        "distill": {"epochs": 2, "max_train": None, "batch_size": 16, "lr": 2e-3, "alpha": 0.5, "temperature": 2.0},
        # each method's own section, its defaults; dvc.yaml tracks each run's method's section, so it must be there
        "methods": {m: {} for m in METHODS},
        "analysis": {},
        "compute": {"launch": "python -m", "device": "cpu", "precision": "auto", "threads": 1},
    }


def write_params(root: Path, params: dict) -> Path:
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A working folder with the tiny profile's params.yaml and data, as the current directory."""
    write_params(tmp_path, tiny_params(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def command_env(cwd: Path) -> dict:
    """The environment of a command run in `cwd`: this interpreter's folder first on PATH (DVC calls `python`),
    and `cwd`'s code (or this repository's) on PYTHONPATH."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT) if not (cwd / "pipeline").is_dir() else str(cwd),
    }


def run(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a command with command_env (this interpreter first on PATH)."""
    return subprocess.run(cmd, cwd=cwd, env=command_env(cwd), capture_output=True, text=True, timeout=timeout)


def dvc(repo: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    """`dvc ARGS` in `repo`; `check`: fail the test, with DVC's output, if it exits with an error."""
    done = run([sys.executable, "-m", "dvc", *args], repo)
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def edit_json(path: Path, change) -> None:
    """Load a JSON file, let `change` edit the object in place, write it back."""
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def edit_params(root: Path, change) -> None:
    """Load `root`/params.yaml, let `change` edit the dict in place, write it back (write_params)."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    change(params)
    write_params(root, params)


@pytest.fixture
def tiny_repo(tmp_path) -> Path:
    """A copy of the pipeline with the tiny profile, initialised as a DVC project without git."""
    return make_tiny_repo(tmp_path / "repo")


def make_tiny_repo(repo: Path) -> Path:
    repo.mkdir()
    shutil.copy(ROOT / "dvc.yaml", repo)
    for package in ("pipeline", "analysis", "orchestration"):
        shutil.copytree(ROOT / package, repo / package, ignore=shutil.ignore_patterns("__pycache__"))
    write_params(repo, tiny_params(repo))
    done = run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], repo)
    assert done.returncode == 0, done.stderr
    return repo


def tiny_cluster_repo(path: Path) -> Path:
    """The tiny profile cut to one task and three methods, for the cluster driver (tests/test_cluster.py,
    tests/test_slurm.py)."""
    repo = make_tiny_repo(path)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["run"].update(tasks=["reviews"], methods=["ce", "u_ensemble", "best_single"])
    params["cluster"] = {"local_workers": 2, "retries": 1}
    write_params(repo, params)
    return repo


# what carries the time or the machine of its run: outputs() compares JSON without these keys
TIMED = re.compile(r"seconds|per_s|_ms$|provenance|started|finished|host")


def untimed(value):
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if not TIMED.search(k)}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def outputs(repo) -> dict:
    """Every output file of every stage, as bytes, or as JSON without its timings; left out: the figures
    (their PDFs hold a creation date), the report (it quotes run times) and Table 4 (latencies)."""
    out = {}
    for path in sorted(p for top in ("data", "models", "logits", "runs", "results") for p in (repo / top).rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if path.is_dir() or rel.startswith(("results/figures", "results/report.md", "results/tables/table4")):
            continue
        out[rel] = untimed(json.loads(path.read_text())) if path.suffix == ".json" else path.read_bytes()
    return out
