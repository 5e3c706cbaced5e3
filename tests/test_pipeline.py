"""`dvc repro` end to end on the tiny profile, in a temporary copy of the repository."""

import json

import pytest
import yaml

from pipeline import logits, splits
from tests.conftest import dvc, edit_params
from tests.new_method import METHOD_FILE, PACKAGE_FILES, stage_block

pytestmark = pytest.mark.slow  # trains models or runs DVC: out of the fast tier

TASKS, TEACHERS, METHODS = ("reviews", "pairs"), ("tiny_a", "tiny_b"), ("ce", "u_ensemble", "ca_mkd")


def stale(repo) -> set[str]:
    """The stages `dvc status` names as changed."""
    out = dvc(repo, "status")
    assert out.returncode == 0, out.stderr
    return {line[:-1] for line in out.stdout.splitlines() if line.endswith(":") and not line[0].isspace()}


def repro(repo) -> set[str]:
    """`dvc repro`, which must succeed; the stages it ran."""
    done = dvc(repo, "repro", check=True)
    return {line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("Running stage")}


def test_repro_runs_every_stage_then_only_what_changed(tiny_repo):
    done = dvc(tiny_repo, "repro")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads((tiny_repo / "assets/manifest.json").read_text())["assets"] == {}
    for task in TASKS:
        for split in logits.CACHED_SPLITS:  # the teachers' cache: train and dev
            df = splits.load_split(tiny_repo / "data" / task, split)
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
    edit_params(tiny_repo, lambda p: p["teachers"]["tiny_b"].update(lr=1e-3))
    ran = repro(tiny_repo)
    students = {f"distill@{task}-{method}-1" for task in TASKS for method in METHODS}
    rl_kd = {f"agent@{task}-rl_kd-1" for task in TASKS}
    latency = {f"latency@{task}" for task in TASKS}
    assert ran == (
        {f"{stage}@{task}-tiny_b" for stage in ("finetune", "cache") for task in TASKS}
        | students
        | rl_kd
        | latency
        | {"analyze"}
    )

    # changing an RL-KD setting reruns the RL-KD runs only
    edit_params(tiny_repo, lambda p: p["methods"].update(rl_kd={"policy_lr": 0.02}))
    ran = repro(tiny_repo)
    assert ran == rl_kd | {"analyze"}

    # a new method is one file and its lines in params.yaml: its runs and analyze are all that change
    (tiny_repo / "pipeline/methods/confident.py").write_text(METHOD_FILE)
    edit_params(
        tiny_repo,
        lambda p: (p["run"]["methods"].append("confident"), p["methods"].update(confident={"sharpness": 2.0})),
    )
    new = {f"distill@{task}-confident-1" for task in TASKS}
    assert stale(tiny_repo) == new | {"analyze"}
    ran = repro(tiny_repo)
    assert ran == new | {"analyze"}
    assert "confident" in (tiny_repo / "results/tables/table2_main.csv").read_text()

    # one method's setting makes that method's runs stale, no other
    edit_params(tiny_repo, lambda p: p["methods"]["confident"].update(sharpness=3.0))
    assert stale(tiny_repo) == new
    edit_params(tiny_repo, lambda p: p["methods"]["confident"].update(sharpness=2.0))
    assert stale(tiny_repo) == set()

    # a learned method of two files, a package with a stage of its own: the package, its params.yaml lines and its
    # block in dvc.yaml are all that is added, and its runs and analyze all that is stale
    package = tiny_repo / "pipeline/methods/hedge"
    package.mkdir()
    for name, text in PACKAGE_FILES.items():
        (package / name).write_text(text)
    edit_params(tiny_repo, lambda p: (p["run"].update(hedge=["hedge"]), p["methods"].update(hedge={})))
    pipeline = yaml.safe_load((tiny_repo / "dvc.yaml").read_text())
    pipeline["stages"]["hedge"] = stage_block(pipeline, "hedge", "pipeline/methods/hedge")
    (tiny_repo / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    hedged = {f"hedge@{task}-hedge-1" for task in TASKS}
    assert stale(tiny_repo) == hedged | {"analyze"}
    ran = repro(tiny_repo)
    assert ran == hedged | {"analyze"}
    assert "hedge" in (tiny_repo / "results/tables/table2_main.csv").read_text()
    (package / "weights.py").write_text(PACKAGE_FILES["weights.py"] + "\n# an edit\n")
    assert stale(tiny_repo) == hedged | {"analyze"}  # its code: its runs, and analyze, which reads the registry
    (package / "weights.py").write_text(PACKAGE_FILES["weights.py"])
    assert stale(tiny_repo) == set()

    # the GLUE loader: only prepare lists it (DVC cannot give one task's prepare its own loader); nothing
    # after prepare runs GLUE's code, and a prepare that reruns writes the same splits, so nothing else reruns
    glue = tiny_repo / "pipeline/glue.py"
    code = glue.read_text()
    glue.write_text(code + "\n# an edit\n")
    assert stale(tiny_repo) == {f"prepare@{task}" for task in TASKS}
    glue.write_text(code)

    # a task's own value of a teacher's key (tasks.TASK.overrides) reaches that task's stages, and reruns them alone
    edit_params(tiny_repo, lambda p: p["tasks"]["pairs"].update(overrides={"teachers": {"tiny_b": {"max_train": 100}}}))
    ran = repro(tiny_repo)
    every = set(yaml.safe_load((tiny_repo / "dvc.lock").read_text())["stages"])
    assert ran == {s for s in every if "@pairs" in s} | {"analyze"}
    examples = {
        t: json.loads((tiny_repo / f"models/{t}/tiny_b/metrics.json").read_text())["train_examples"] for t in TASKS
    }
    assert examples == {"reviews": 150, "pairs": 100}  # teachers.tiny_b.max_train, and the override on pairs


def test_bad_parameter_stops_repro_before_any_output(tiny_repo):
    edit_params(tiny_repo, lambda p: p["teachers"]["tiny_a"].update(max_train=0))
    done = dvc(tiny_repo, "repro")
    assert done.returncode != 0
    assert "teachers.tiny_a.max_train: Input should be greater than 0" in done.stdout + done.stderr
    for folder in ("data", "models", "logits", "runs"):
        assert not (tiny_repo / folder).exists()
