"""`dvc repro` end to end on the tiny profile, in a temporary copy of the repository."""

import json
import sys

import pytest
import yaml

from pipeline import data, logits
from tests.conftest import run

pytestmark = pytest.mark.slow  # trains models or runs DVC: out of the fast tier

TASKS, TEACHERS, METHODS = ("reviews", "pairs"), ("tiny_a", "tiny_b"), ("ce", "u_ensemble", "ca_mkd")


def dvc(repo, *args):
    return run([sys.executable, "-m", "dvc", *args], repo)


def test_repro_runs_every_stage_then_only_what_changed(tiny_repo):
    done = dvc(tiny_repo, "repro")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads((tiny_repo / "assets/manifest.json").read_text())["assets"] == {}
    for task in TASKS:
        for split in logits.SPLITS:  # the teachers' cache: train and dev
            df = data.load_split(tiny_repo / "data" / task, split)
            for teacher in TEACHERS:
                values = logits.load(tiny_repo / f"logits/{task}/{teacher}/{split}.safetensors", df)
                assert values["logits"].shape == (len(df), 2)
        for teacher in TEACHERS:
            metrics = json.loads((tiny_repo / f"models/{task}/{teacher}/metrics.json").read_text())
            assert 0 <= metrics["test_accuracy"] <= 1
    lock = yaml.safe_load((tiny_repo / "dvc.lock").read_text())["stages"]
    assert {f"finetune@{t}-{m}" for t in TASKS for m in TEACHERS} <= set(lock)
    for task in TASKS:
        for method in METHODS:
            metrics = json.loads((tiny_repo / f"runs/{task}/{method}/1/metrics.json").read_text())
            assert metrics["method"] == method and 0 <= metrics["test_accuracy"] <= 1
        rl = json.loads((tiny_repo / f"runs/{task}/rl_kd/1/metrics.json").read_text())
        assert rl["method"] == "rl_kd" and len(rl["policy_pretraining"]) == 3
    main = (tiny_repo / "results/tables/table2_main.csv").read_text()
    assert all(m in main for m in (*METHODS, "rl_kd"))
    assert "## Table 3" in (tiny_repo / "results/report.md").read_text()

    again = dvc(tiny_repo, "repro")
    assert again.returncode == 0
    assert "Running stage" not in again.stdout
    assert "up to date" in again.stdout

    shown = dvc(tiny_repo, "metrics", "show", "--json")
    assert shown.returncode == 0
    assert "models/pairs/tiny_b/metrics.json" in shown.stdout

    # changing one teacher's setting reruns only that teacher's stages and the students that learn from it
    params = yaml.safe_load((tiny_repo / "params.yaml").read_text())
    params["teachers"]["tiny_b"]["lr"] = 1e-3
    (tiny_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = dvc(tiny_repo, "repro")
    assert done.returncode == 0, done.stderr[-3000:]
    ran = {line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("Running stage")}
    students = {f"distill@{task}-{method}-1" for task in TASKS for method in METHODS}
    rl_kd = {f"rl_kd@{task}-1" for task in TASKS}
    latency = {f"latency@{task}" for task in TASKS}
    assert ran == (
        {f"{stage}@{task}-tiny_b" for stage in ("finetune", "cache") for task in TASKS}
        | students
        | rl_kd
        | latency
        | {"analyze"}
    )

    # changing an RL-KD setting reruns the RL-KD runs only
    params["rl"] = {"policy_lr": 0.02}
    (tiny_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = dvc(tiny_repo, "repro")
    assert done.returncode == 0, done.stderr[-3000:]
    ran = {line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == rl_kd | {"analyze"}


def test_bad_parameter_stops_repro_before_any_output(tiny_repo):
    params = yaml.safe_load((tiny_repo / "params.yaml").read_text())
    params["teachers"]["tiny_a"]["max_train"] = 0
    (tiny_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = dvc(tiny_repo, "repro")
    assert done.returncode != 0
    assert "teachers.tiny_a.max_train: Input should be greater than 0" in done.stdout + done.stderr
    for folder in ("data", "models", "logits", "runs"):
        assert not (tiny_repo / folder).exists()
