"""Read what the earlier stages wrote into tables: runs, predictions, curves, teachers, selections, latencies.

Nothing here trains or runs a model; the analyze stage (analysis/analyze.py) turns these into tables. Every file
is read through a check (analysis/run_files.py for a run's own files; pipeline/io.py's read_json and
read_parquet): a missing, truncated or malformed file is an InputError naming the file and the DVC stage that
writes it, never a traceback or a wrong number in a table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.io import read_json, read_parquet
from pipeline.params_file import InputError

from .run_files import Runs, check_by_set, check_numbers, epochs, is_number, rows_by_eval_set


def histories(tree: Runs) -> pd.DataFrame:
    """One row per (task, method, seed, epoch): dev accuracy, and for RL-KD the selection rates and mean reward."""
    rows = []
    for key in tree.keys:
        task, method, seed = key
        for h in epochs(tree, key):
            rows.append(
                {
                    "task": task,
                    "method": method,
                    "seed": int(seed),
                    "epoch": h["epoch"],
                    "dev_accuracy": h["dev_accuracy"],
                    "selection_rate": h.get("selection_rate"),
                    "reward_mean": h.get("reward_mean"),
                }
            )
    columns = ["task", "method", "seed", "epoch", "dev_accuracy", "selection_rate", "reward_mean"]
    return pd.DataFrame(rows, columns=columns)


def rewards(tree: Runs, method: str) -> pd.DataFrame:
    """The agent's reward at every joint-training step: task, seed, epoch, step (counted over epochs), reward."""
    frames = []
    for key in tree.of_method(method):
        task, _, seed = key
        path, rerun = tree.path(key, "rewards.json"), tree.stage(key)
        steps = read_json(path, rerun, keys=("epoch", "step", "reward"), kind=list)
        for s in steps:
            check_numbers(path, rerun, s, ("epoch", "step"))
            check_numbers(path, rerun, s, ("reward",), finite=False)  # a diverged run's NaN is its curve's gap
        if steps:
            frames.append(pd.DataFrame(steps).assign(task=task, seed=int(seed)))
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["epoch", "step", "reward", "task", "seed"])
    )


def check_rates(path, rerun: str, rate, teachers: list[str]) -> None:
    """A selection rate: one fraction per teacher of run.teachers."""
    if not isinstance(rate, list) or len(rate) != len(teachers) or not all(is_number(v) and 0 <= v <= 1 for v in rate):
        raise InputError(
            f"{path}: selection_rate {rate!r} is not one fraction per teacher of {teachers}; rerun `{rerun}`"
        )


def policy_curve(tree: Runs, teachers: list[str], method: str) -> pd.DataFrame:
    """The agent's selection rate per teacher per policy epoch: pre-training epochs (P1, P2, ...) then
    the joint-training epochs, one row per (task, seed, epoch)."""
    rows = []
    for key in tree.of_method(method):
        task, _, seed = key
        path, rerun = tree.path(key, "metrics.json"), tree.stage(key)
        pre = read_json(path, rerun).get("policy_pretraining") or []
        if not isinstance(pre, list) or not all(isinstance(p, dict) and "selection_rate" in p for p in pre):
            raise InputError(
                f"{path}: policy_pretraining is not a list of epochs, each with a selection_rate; rerun `{rerun}`"
            )
        joint = [h for h in epochs(tree, key) if h.get("selection_rate") is not None]
        for i, h in enumerate(pre, 1):
            check_rates(path, rerun, h["selection_rate"], teachers)
            rows.append({"task": task, "seed": int(seed), "label": f"P{i}", "selection_rate": h["selection_rate"]})
        for h in joint:
            check_rates(tree.path(key, "history.json"), rerun, h["selection_rate"], teachers)
            rows.append(
                {"task": task, "seed": int(seed), "label": str(h["epoch"]), "selection_rate": h["selection_rate"]}
            )
    return pd.DataFrame(rows, columns=["task", "seed", "label", "selection_rate"])


def teachers(root: str | Path, tasks: list[str], names: list[str]) -> pd.DataFrame:
    """Each teacher's models/TASK/TEACHER/metrics.json (the stage finetune's), one row per evaluation set."""
    rows = []
    for task in tasks:
        for name in names:
            path, rerun = Path(root) / task / name / "metrics.json", f"dvc repro finetune@{task}-{name}"
            m = read_json(path, rerun, keys=("dev_accuracy", "test_accuracy", "parameters"))
            said = {k: m[k] for k in ("task", "teacher") if k in m}
            if said.get("task", task) != task or said.get("teacher", name) != name:
                raise InputError(
                    f"{path}: the record of task {said.get('task', task)!r}, teacher {said.get('teacher', name)!r}, "
                    f"in the folder of task {task!r}, teacher {name!r}; rerun `{rerun}`"
                )
            check_numbers(path, rerun, m, ("dev_accuracy", "test_accuracy"), fraction=True)
            check_numbers(path, rerun, m, ("parameters",))
            if m.get("test_examples") is not None:
                check_numbers(path, rerun, m, ("test_examples",))
            check_by_set(path, rerun, m)
            rows += [
                {
                    "task": r["task"],
                    "teacher": name,
                    "dev_accuracy": r["dev_accuracy"],
                    "test_accuracy": r["test_accuracy"],
                    "test_examples": r.get("test_examples"),
                    "parameters": r["parameters"],
                }
                for r in rows_by_eval_set({**m, "task": task})
            ]
    return pd.DataFrame(rows)


LATENCY = ("model", "parameters", "weight_bytes", "batch1_ms", "batch32_ms")


def latencies(root: str | Path, tasks: list[str], teachers: list[str]) -> list[dict]:
    """results/latency/TASK.json of each task (the stage latency's): each teacher of run.teachers and the
    student, with its size and its time per forward pass."""
    out = []
    for task in tasks:
        path, rerun = Path(root) / "results" / "latency" / f"{task}.json", f"dvc repro latency@{task}"
        entry = read_json(path, rerun, keys=("task", "models"))
        if entry["task"] != task:
            raise InputError(f"{path}: the latency of task {entry['task']!r}, not of {task!r}; rerun `{rerun}`")
        models = entry["models"]
        if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
            raise InputError(f"{path}: models is not a list of objects; rerun `{rerun}`")
        for m in models:
            missing = [k for k in LATENCY if k not in m]
            if missing:
                raise InputError(f"{path}: fields {missing} missing in a model's entry; rerun `{rerun}`")
            check_numbers(path, rerun, m, LATENCY[1:], name=f"{m['model']}: ")
            if min(m[k] for k in LATENCY[1:]) <= 0:
                raise InputError(f"{path}: {m['model']}: a size or time that is not positive; rerun `{rerun}`")
        names, expected = [m["model"] for m in models], [*teachers, "student"]
        if sorted(map(str, names)) != sorted(expected):
            raise InputError(f"{path}: models {names}, not run.teachers and the student ({expected}); rerun `{rerun}`")
        out.append(entry)
    return out


def test_groups(data_root: str | Path, task: str, eval_set: str | None = None) -> np.ndarray:
    """The groups of a task's test examples (rt: the movie of each snippet; one per example where the task has
    none), in id order, as the runs' predictions are compared: the unit that test sampling draws."""
    from pipeline import splits

    test = splits.load_split(Path(data_root) / task, "test").sort_values("id")
    if eval_set is not None:
        test = test[test.eval_set == eval_set]
    return test.group.to_numpy()


def selection_vs_correctness(
    task: str,
    names: list[str],
    seeds: list[int],
    tree: Runs,
    method: str,
    data_root="data",
    logits_root="logits",
    max_train: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Per teacher and seed: the agent's mean final selection probability on the training instances
    where that teacher's cached prediction is right, and where it is wrong. `max_train`, `seed`: distill.max_train
    and the data seed, which choose the students' rows (those cached)."""
    from pipeline import logits, splits

    train = splits.students_train(splits.load_split(Path(data_root) / task, "train"), max_train, seed)
    columns = ("id", *(f"select_{name}" for name in names))
    selections = {}
    for seed in seeds:
        key = (task, method, seed)
        path, rerun = tree.path(key, "weights.parquet"), tree.stage(key)
        sel = read_parquet(path, rerun, columns=columns)
        if not all(pd.api.types.is_numeric_dtype(sel[c]) for c in columns[1:]):
            raise InputError(f"{path}: a select_TEACHER column that is not numbers; rerun `{rerun}`")
        # distill.max_train trains on a sample of the split: its instances, each once
        if sel.empty or sel.id.duplicated().any() or not sel.id.isin(train.id).all():
            raise InputError(
                f"{path}: its training instances are not those of {Path(data_root) / task / 'train.parquet'} "
                f"(or a sample of them); rerun `{rerun}`"
            )
        selections[seed] = sel.set_index("id")
    rows = []
    for name in names:
        cached = logits.load(Path(logits_root) / task / name / "train.safetensors", train, task=task, teacher=name)
        right = pd.Series(cached["logits"].argmax(-1).numpy() == train.label.to_numpy(), index=train.id)
        for seed in seeds:
            sel = selections[seed]
            prob, ok = sel[f"select_{name}"], right.loc[sel.index]
            rows.append(
                {
                    "task": task,
                    "teacher": name,
                    "seed": seed,
                    "right": float(prob[ok].mean()),
                    "wrong": float(prob[~ok].mean()) if (~ok).any() else np.nan,
                    "wrong_share": float((~ok).mean()),
                }
            )
    return pd.DataFrame(rows)


def majority(data_root: str | Path, task: str, eval_set: str | None = None) -> float:
    """The share of a task's test examples in its most frequent class: what predicting one class scores."""
    from pipeline import splits

    test = splits.load_split(Path(data_root) / task, "test")
    if eval_set is not None:
        test = test[test.eval_set == eval_set]
    return float(test.label.value_counts(normalize=True).max())


def degenerate(teachers: pd.DataFrame, majority: dict[str, float]) -> dict[str, str]:
    """Per evaluation set whose teachers are not all above the majority class on test: why its comparisons cannot
    say anything (a teacher that predicts no better than one class teaches the student nothing to compare)."""
    out = {}
    for task, t in teachers.groupby("task"):
        weak = t[t.test_accuracy <= majority.get(task, 0.0) + 1e-9]
        if len(weak):
            names = ", ".join(f"`{r.teacher}` {100 * r.test_accuracy:.1f}%" for r in weak.itertuples())
            out[task] = f"teachers no better than the majority class ({100 * majority[task]:.1f}%): {names}"
    return out
