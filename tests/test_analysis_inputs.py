"""The analyze stage's inputs and outputs: every file it reads goes through a check, so a damaged, missing or
edited file of a run, a teacher or a latency measurement is one InputError naming the file and the DVC stage
to rerun; its figures are made of the very runs of its tables; it writes results/ as one set or not at all.
The runs are planted as in tests/test_analyze.py: no training."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import analyze, figures
from pipeline.params_file import InputError
from pipeline.schema import load
from tests import test_analyze as planted
from tests.conftest import ROOT, edit_json, edit_params
from tests.test_analyze import ACCURACY, SEEDS, TASK, write_run

tree = planted.tree  # the fixture of the planted runs: runs/, models/, data/, logits/, results/latency/ of one task

BASELINE, RL = f"runs/{TASK}/ce/2", f"runs/{TASK}/rl_kd/2"  # a run of the stage distill, one of the stage rl_kd
DISTILL, RL_KD = f"dvc repro distill@{TASK}-ce-2", f"dvc repro agent@{TASK}-rl_kd-2"
TEACHER, LATENCY = f"models/{TASK}/big/metrics.json", f"results/latency/{TASK}.json"


def names(path: str, *what: str, stage: str) -> str:
    """A pattern: the file, then `what` (regexes), then the stage to rerun."""
    return ".*".join([re.escape(path), *what, re.escape(f"`{stage}`")])


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def split_sets(root: Path) -> None:
    """Every run's test split as two evaluation sets (as MNLI's m and mm), the records scored per set."""
    for path in sorted((root / "runs").glob("*/*/*/predictions.parquet")):
        df = pd.read_parquet(path)
        df["eval_set"] = np.where(np.arange(len(df)) < 250, f"{TASK}_m", f"{TASK}_mm")
        df.to_parquet(path)
        scores = {k: float((g.pred == g.label).mean()) for k, g in df.groupby("eval_set", sort=False)}
        edit_json(path.with_name("metrics.json"), lambda m: m.update(test_accuracy_by_set=scores))


def single_stage(root: Path) -> None:
    """The single-teacher students made by the stage `single` (run.single) rather than by distill."""

    def change(p):
        p["run"]["methods"] = ["ce", "u_ensemble"]
        p["run"]["single"] = ["big", "small"]

    edit_params(root, change)
    (root / f"runs/{TASK}/single_big/2/predictions.parquet").unlink()


def misplaced(root: Path) -> None:
    """Seed 3's run, whole and consistent, copied into seed 2's folder."""
    for name in ("metrics.json", "history.json", "predictions.parquet", "weights.parquet"):
        (root / BASELINE / name).write_bytes((root / f"runs/{TASK}/ce/3" / name).read_bytes())


def other_examples(root: Path) -> None:
    """Predictions of other test examples (another split), scored right: the pairing by id would be wrong."""
    path = root / BASELINE / "predictions.parquet"
    df = pd.read_parquet(path)
    df["id"] = "x" + df.id.str[1:]
    df.to_parquet(path)


ERRORS = [
    # each run file of a baseline run (the stage distill) and of RL-KD's (the stage rl_kd), truncated or gone
    pytest.param(
        lambda r: truncate(r / BASELINE / "metrics.json"),
        names(f"{BASELINE}/metrics.json", "not valid JSON", stage=DISTILL),
        id="metrics-truncated",
    ),
    pytest.param(
        lambda r: (r / BASELINE / "metrics.json").unlink(),
        names(f"{BASELINE}/metrics.json", stage=DISTILL),
        id="metrics-deleted",
    ),
    pytest.param(
        lambda r: truncate(r / BASELINE / "history.json"),
        names(f"{BASELINE}/history.json", "not valid JSON", stage=DISTILL),
        id="history-truncated",
    ),
    pytest.param(
        lambda r: (r / BASELINE / "history.json").unlink(),
        names(f"{BASELINE}/history.json", "not found", stage=DISTILL),
        id="history-deleted",
    ),
    pytest.param(
        lambda r: truncate(r / BASELINE / "predictions.parquet"),
        names(f"{BASELINE}/predictions.parquet", "unreadable Parquet", stage=DISTILL),
        id="predictions-truncated",
    ),
    pytest.param(
        lambda r: (r / BASELINE / "predictions.parquet").unlink(),
        names(f"{BASELINE}/predictions.parquet", "not found", stage=DISTILL),
        id="predictions-deleted",
    ),
    pytest.param(
        lambda r: truncate(r / RL / "metrics.json"),
        names(f"{RL}/metrics.json", "not valid JSON", stage=RL_KD),
        id="rl-metrics-truncated",
    ),
    pytest.param(
        lambda r: truncate(r / RL / "history.json"),
        names(f"{RL}/history.json", "not valid JSON", stage=RL_KD),
        id="rl-history-truncated",
    ),
    pytest.param(
        lambda r: truncate(r / RL / "rewards.json"),
        names(f"{RL}/rewards.json", "not valid JSON", stage=RL_KD),
        id="rewards-truncated",
    ),
    pytest.param(
        lambda r: (r / RL / "rewards.json").unlink(),
        names(f"{RL}/rewards.json", "not found", stage=RL_KD),
        id="rewards-deleted",
    ),
    pytest.param(
        lambda r: truncate(r / RL / "weights.parquet"),
        names(f"{RL}/weights.parquet", "unreadable Parquet", stage=RL_KD),
        id="weights-truncated",
    ),
    pytest.param(
        lambda r: (r / RL / "weights.parquet").unlink(),
        names(f"{RL}/weights.parquet", "not found", stage=RL_KD),
        id="weights-deleted",
    ),
    pytest.param(
        lambda r: (r / RL / "predictions.parquet").unlink(),
        names(f"{RL}/predictions.parquet", "not found", stage=RL_KD),
        id="rl-predictions-deleted",
    ),
    pytest.param(
        single_stage,
        names(f"runs/{TASK}/single_big/2/predictions.parquet", "not found", stage=f"dvc repro single@{TASK}-big-2"),
        id="single-predictions-deleted",
    ),
    # malformed: a field missing, a value of the wrong kind
    pytest.param(
        lambda r: edit_json(r / BASELINE / "metrics.json", lambda m: m.pop("train_seconds")),
        names(f"{BASELINE}/metrics.json", r"fields \['train_seconds'\] missing", stage=DISTILL),
        id="metrics-field-missing",
    ),
    pytest.param(
        lambda r: edit_json(r / BASELINE / "history.json", lambda h: h[0].update(dev_accuracy="0.6")),
        names(f"{BASELINE}/history.json", "dev_accuracy is '0.6', not a fraction", stage=DISTILL),
        id="history-not-a-number",
    ),
    pytest.param(
        lambda r: edit_json(r / RL / "history.json", lambda h: h[1].update(selection_rate=[0.6])),
        names(f"{RL}/history.json", r"selection_rate \[0.6\] is not one fraction per teacher", stage=RL_KD),
        id="rl-selection-of-one-teacher",
    ),
    pytest.param(
        lambda r: (
            pd.read_parquet(r / BASELINE / "predictions.parquet")
            .drop(columns="pred")
            .to_parquet(r / BASELINE / "predictions.parquet")
        ),
        names(f"{BASELINE}/predictions.parquet", r"columns \['pred'\] missing", stage=DISTILL),
        id="predictions-column-missing",
    ),
    # the metrics disagree with the predictions, or with the folder they lie in
    pytest.param(
        lambda r: edit_json(r / BASELINE / "metrics.json", lambda m: m.update(test_accuracy=m["test_accuracy"] + 0.05)),
        names(
            f"{BASELINE}/metrics.json",
            "test_accuracy is",
            re.escape(f"predictions in {BASELINE}/predictions.parquet score"),
            stage=DISTILL,
        ),
        id="test-accuracy-edited",
    ),
    pytest.param(
        lambda r: (
            split_sets(r)
            or edit_json(
                r / BASELINE / "metrics.json", lambda m: m["test_accuracy_by_set"].update({f"{TASK}_mm": 0.99})
            )
        ),
        names(
            f"{BASELINE}/metrics.json",
            f"test_accuracy_by_set.{TASK}_mm is 0.99",
            re.escape(f"{BASELINE}/predictions.parquet"),
            stage=DISTILL,
        ),
        id="set-accuracy-edited",
    ),
    pytest.param(
        misplaced,
        names(f"{BASELINE}/metrics.json", "seed 3, in the folder of", "seed 2", stage=DISTILL),
        id="record-of-another-seed",
    ),
    pytest.param(
        other_examples,
        names(f"{BASELINE}/predictions.parquet", "test examples", f"runs/{TASK}/ce/1/", stage=DISTILL),
        id="predictions-of-other-examples",
    ),
    # a teacher's record (the stage finetune), a latency file (the stage latency)
    pytest.param(
        lambda r: truncate(r / TEACHER),
        names(TEACHER, "not valid JSON", stage=f"dvc repro finetune@{TASK}-big"),
        id="teacher-metrics-truncated",
    ),
    pytest.param(
        lambda r: edit_json(r / TEACHER, lambda m: m.pop("parameters")),
        names(TEACHER, r"fields \['parameters'\] missing", stage=f"dvc repro finetune@{TASK}-big"),
        id="teacher-metrics-field-missing",
    ),
    pytest.param(
        lambda r: (r / LATENCY).unlink(),
        names(LATENCY, "not found", stage=f"dvc repro latency@{TASK}"),
        id="latency-missing",
    ),
    pytest.param(
        lambda r: truncate(r / LATENCY),
        names(LATENCY, "not valid JSON", stage=f"dvc repro latency@{TASK}"),
        id="latency-truncated",
    ),
    pytest.param(
        lambda r: edit_json(r / LATENCY, lambda e: e.update(models=e["models"][:2])),
        names(LATENCY, "not run.teachers and the student", stage=f"dvc repro latency@{TASK}"),
        id="latency-without-the-student",
    ),
]


@pytest.mark.parametrize("corrupt, pattern", ERRORS)
def test_a_bad_input_is_named_with_the_stage_that_writes_it(tree, corrupt, pattern):
    corrupt(tree)
    with pytest.raises(InputError, match=pattern):
        analyze.main()
    assert not (tree / "results/tables").exists() and not (tree / "results/report.md").exists()
    assert not (tree / "results" / analyze.STAGING).exists()


def leftovers(root: Path) -> None:
    """Runs that params.yaml no longer asks for: a seed that run.seeds dropped (one of them damaged: it is not
    even read), a method that run.methods dropped."""
    rng = np.random.default_rng(1)
    for method in ("ce", "u_ensemble", "rl_kd"):
        write_run(root, method, 9, 0.99, rng)
    write_run(root, "w_ensemble", 1, 0.99, rng)
    truncate(root / f"runs/{TASK}/ce/9/predictions.parquet")


def float32_accuracy(root: Path) -> None:
    """pipeline/training.py scores in float32: the record agrees with its predictions up to that rounding."""
    edit_json(root / BASELINE / "metrics.json", lambda m: m.update(test_accuracy=float(np.float32(m["test_accuracy"]))))


DRAWN = ("main_results", "rl_selection", "selection_vs_correctness", "teacher_vs_student", "learning_curves")


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param(leftovers, id="leftover-runs-drawn-nowhere"),
        pytest.param(float32_accuracy, id="float32-accuracy-agrees"),
    ],
)
def test_every_table_and_figure_is_made_of_the_runs_params_asks_for(tree, monkeypatch, setup):
    setup(tree)
    drawn = {}
    for name in DRAWN:  # what each figure is drawn from

        def spy(*args, _name=name, _draw=getattr(figures, name), **kwargs):
            drawn[_name] = args
            return _draw(*args, **kwargs)

        monkeypatch.setattr(figures, name, spy)
    result = analyze.analyze(load("params.yaml"))
    figures.close(result.figures.values())

    main = result.tables["table2_main"][1][0]
    assert list(main.index) == list(ACCURACY) and (main.seeds == len(SEEDS)).all()
    runs = {(m, s) for m, accs in ACCURACY.items() for s in SEEDS}
    policy, rewards = drawn["rl_selection"][:2]
    for frame, methods in (
        (drawn["main_results"][0], runs),
        (drawn["learning_curves"][0], runs),
        (policy.assign(method="rl_kd"), {r for r in runs if r[0] == "rl_kd"}),
        (rewards.assign(method="rl_kd"), {r for r in runs if r[0] == "rl_kd"}),
        (drawn["selection_vs_correctness"][0].assign(method="rl_kd"), {r for r in runs if r[0] == "rl_kd"}),
    ):
        assert set(zip(frame.method, frame.seed)) == methods
    student = drawn["teacher_vs_student"][0].set_index("teacher").student_test
    assert student["big"] == pytest.approx(np.mean(main_scores(tree, "single_big")))


def main_scores(root: Path, method: str) -> list[float]:
    return [json.loads((root / f"runs/{TASK}/{method}/{s}/metrics.json").read_text())["test_accuracy"] for s in SEEDS]


OLD = {  # a set from an earlier analyze, with a figure that the new one does not draw, and other stages' outputs
    "tables/table2_main.md": "old table",
    "figures/main_results.png": "old figure",
    "figures/dropped.png": "a figure of an older set",
    "metrics.json": "{}",
    "report.md": "old report",
    "provenance.json": "{}",
    "benchmarks.json": '{"other": "stage"}',
}


def sketch(monkeypatch, fail: str = "") -> None:
    """Figures saved as a few bytes each (matplotlib's drawing takes seconds; tests/test_analyze.py draws them),
    and figure `fail` not at all: a full disk, after the tables were written."""

    def save(fig, folder, stem):
        if stem == fail:
            raise OSError(28, "No space left on device")
        folder.mkdir(parents=True, exist_ok=True)
        for ext in ("png", "pdf"):
            (folder / f"{stem}.{ext}").write_bytes(b"figure")
        figures.close([fig])

    monkeypatch.setattr(figures, "save", save)


def fail_rendering(monkeypatch) -> None:
    sketch(monkeypatch, fail="learning_curves")


def fail_moving(monkeypatch) -> None:
    """Moving the rendered set into place fails at report.md, after tables, figures and metrics.json went in."""
    sketch(monkeypatch)
    replace = os.replace

    def failing(src, dst):
        if Path(src).name == "report.md" and Path(src).parent.name == "new":
            raise OSError(13, "Permission denied")
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)


@pytest.mark.parametrize(
    "setup, fails",
    [
        pytest.param(fail_rendering, True, id="render-fails-old-set-stays"),
        pytest.param(fail_moving, True, id="move-fails-old-set-restored"),
        pytest.param(sketch, False, id="new-set-replaces-old-whole"),
    ],
)
def test_results_are_written_as_one_set(tree, monkeypatch, setup, fails):
    results = tree / "results"
    for name, text in OLD.items():
        (results / name).parent.mkdir(parents=True, exist_ok=True)
        (results / name).write_text(text)
    (results / analyze.STAGING / "new").mkdir(parents=True)  # left by a killed run
    before = snapshot(results)
    setup(monkeypatch)
    if fails:
        with pytest.raises(OSError):
            analyze.main()
        assert snapshot(results) == before
    else:
        analyze.main()
        after = snapshot(results)
        assert "figures/dropped.png" not in after and after["tables/table2_main.md"].startswith(b"Table 2")
        assert {k: after[k] for k in ("benchmarks.json", LATENCY.removeprefix("results/"))} == {
            k: before[k] for k in ("benchmarks.json", LATENCY.removeprefix("results/"))
        }
        assert {name.split("/")[0] for name in after} == {*analyze.OUTS, "benchmarks.json", "latency"}
    assert not (results / analyze.STAGING).exists()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # the whole stage in a process of its own, its figures drawn: seconds
def test_the_stage_runs_from_its_command_line_in_a_c_locale(tree):
    """`python -m analysis.analyze --params PATH`: its tables' ± written as UTF-8 whatever the locale; a bad
    input is one line and exit code 2."""
    (tree / "params.yaml").rename(tree / "other.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    command = [sys.executable, "-m", "analysis.analyze", "--params", "other.yaml"]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "61.0 ± 1.0" in (tree / "results/tables/table2_main.md").read_text(encoding="utf-8")
    truncate(tree / LATENCY)
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert re.fullmatch(f"error: {names(LATENCY, 'not valid JSON', stage=f'dvc repro latency@{TASK}')}\n", done.stderr)
