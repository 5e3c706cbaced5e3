"""Each run's files, read through checks: the record (metrics.json), its predictions and its epochs.

A missing, truncated or malformed file, a run whose metrics.json disagrees with its own predictions or lies in
another run's folder, is an InputError naming the file and the DVC stage that writes it (`Runs.stage`), never a
traceback or a wrong number in a table. pipeline/io.py's read_json and read_parquet do the reading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.io import read_json, read_parquet
from pipeline.params_file import InputError
from pipeline.splits import check_ids

Key = tuple[str, str, int]  # a run: task, method, seed
RECORD = ("task", "method", "seed", "dev_accuracy", "test_accuracy", "best_epoch", "train_seconds")
PREDICTIONS = ("id", "label", "pred")
# pipeline/training.py's accuracy is a float32 mean: a record equals its predictions' score up to float32 rounding
# (within one float32 step), less than what one prediction moves the score of any test set under 8 million examples
RELATIVE = float(np.finfo(np.float32).eps)
ABSOLUTE = 1e-9


@dataclass(frozen=True)
class Runs:
    """The runs one analysis reads, runs/TASK/METHOD/SEED for each key and no other, and the DVC stage that
    writes each (`stages`: each student stage's rows, methods.listed's; a row in none: `distill`)."""

    root: Path
    # in the order of their paths, as the listing of runs/ that the tables were first made from: sums over seeds
    # in the same order, the same numbers to the last digit
    keys: tuple[Key, ...]
    stages: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (stage, its rows): distill, single_<t>, drop_<t>, agent...
    # rows chosen per seed from other runs (analysis/selection.py): (the row's key, the method whose run it reads)
    chosen: tuple[tuple[Key, str], ...] = ()

    @classmethod
    def of(cls, root: str | Path, keys, stages: dict[str, list[str]] | None = None) -> Runs:
        keys = sorted(dict.fromkeys(keys), key=lambda k: (k[0], k[1], str(k[2])))
        return cls(Path(root), tuple(keys), tuple((s, tuple(rows)) for s, rows in (stages or {}).items()))

    def with_chosen(self, chosen: list[tuple[Key, str]]) -> Runs:
        """These runs and the chosen rows, each reading the files of the run it was chosen from."""
        keys = sorted([*self.keys, *(k for k, _ in chosen)], key=lambda k: (k[0], k[1], str(k[2])))
        return replace(self, keys=tuple(keys), chosen=(*self.chosen, *chosen))

    def source(self, key: Key) -> Key:
        """The run whose files `key` reads: itself, or the run a chosen row was chosen from."""
        task, _, seed = key
        method = dict(self.chosen).get(key)
        return key if method is None else (task, method, seed)

    def path(self, key: Key, name: str) -> Path:
        task, method, seed = self.source(key)
        return self.root / task / method / str(seed) / name

    def stage(self, key: Key) -> str:
        """The command that writes the run again."""
        task, method, seed = self.source(key)
        stage = next((s for s, rows in self.stages if method in rows), "distill")
        item = method.removeprefix(f"{stage}_")  # a family's stage runs per teacher: single@TASK-TEACHER-SEED
        return f"dvc repro {stage}@{task}-{item}-{seed}"

    def of_method(self, method: str) -> list[Key]:
        return [k for k in self.keys if k[1] == method]


def is_number(value, finite: bool = True) -> bool:
    """A JSON number (not true or false), finite unless `finite` is False."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and (not finite or math.isfinite(value))


def check_numbers(path, rerun: str, record: dict, keys, fraction: bool = False, finite: bool = True, name=""):
    """record[k] of each of `keys` a number (a fraction in [0, 1] where `fraction`), else an InputError."""
    for k in keys:
        v = record[k]
        if not is_number(v, finite) or (fraction and not 0 <= v <= 1):
            what = "a fraction in [0, 1]" if fraction else "a number"
            raise InputError(f"{path}: {name}{k} is {v!r}, not {what}; rerun `{rerun}`")


def check_by_set(path, rerun: str, record: dict, key: str = "test_accuracy") -> dict | None:
    """The record's `{key}_by_set` (evaluation set -> accuracy), None where the task is one set."""
    by_set = record.get(f"{key}_by_set")
    if by_set is None:
        return None
    if not isinstance(by_set, dict) or not by_set:
        raise InputError(f"{path}: {key}_by_set is {by_set!r}, not a mapping of evaluation sets; rerun `{rerun}`")
    check_numbers(path, rerun, by_set, list(by_set), fraction=True, name=f"{key}_by_set.")
    return by_set


def rows_by_eval_set(record: dict, key: str = "test_accuracy") -> list[dict]:
    """One row per evaluation set of a run's (or teacher's) record: `task` is the set's name and `run_task` the
    task that was trained (MNLI's one run gives mnli_m and mnli_mm); a task of one set gives one row."""
    sets = record.get(f"{key}_by_set")
    if not sets:
        return [{**record, "run_task": record["task"], "eval_set": None}]
    return [
        {**record, "task": name, key: value, "run_task": record["task"], "eval_set": name}
        for name, value in sets.items()
    ]


def record(tree: Runs, key: Key) -> dict:
    """A run's metrics.json, checked: its fields, and that it is the record of the run whose folder holds it."""
    path, rerun = tree.path(key, "metrics.json"), tree.stage(key)
    r = read_json(path, rerun, keys=RECORD)
    task, method, seed = tree.source(key)
    said = (r["task"], r["method"], r["seed"])
    if said != (task, method, seed) or not isinstance(r["seed"], int) or isinstance(r["seed"], bool):
        raise InputError(
            f"{path}: the record of task {r['task']!r}, method {r['method']!r}, seed {r['seed']!r}, in the folder of "
            f"task {task!r}, method {method!r}, seed {seed}; rerun `{rerun}`"
        )
    check_numbers(path, rerun, r, ("dev_accuracy", "test_accuracy"), fraction=True)
    check_numbers(path, rerun, r, ("best_epoch", "train_seconds"))
    check_by_set(path, rerun, r)
    if tree.source(key) != key:  # a chosen row: the run it was chosen from, under the row's name
        r = {**r, "method": key[1], "source": method}
    return r


def scored(tree: Runs, key: Key, r: dict) -> tuple[np.ndarray, ...]:
    """Check a run's record against its predictions.parquet: the test accuracy, and each evaluation set's, must
    be the accuracy of its predictions (pred == label). Returns the test examples it predicted (ids, labels and
    evaluation sets, ordered by id), which every run of the task must share."""
    metrics, path, rerun = tree.path(key, "metrics.json"), tree.path(key, "predictions.parquet"), tree.stage(key)
    by_set = r.get("test_accuracy_by_set")
    df = read_parquet(path, rerun, columns=PREDICTIONS + (("eval_set",) if by_set else ()))
    if df.empty:
        raise InputError(f"{path}: no predictions; rerun `{rerun}`")
    check_ids(df, str(path), f"; rerun `{rerun}`")
    right = (df.pred == df.label).reset_index(drop=True)
    checks = [("test_accuracy", r["test_accuracy"], float(right.mean()), len(df))]
    if by_set:
        sets = df.eval_set.astype(str).to_numpy()
        per_set, sizes = right.groupby(sets).mean(), right.groupby(sets).size()
        if set(per_set.index) != set(by_set):
            raise InputError(
                f"{metrics}: evaluation sets {sorted(by_set)}, but {path} holds {sorted(per_set.index)}; the two are "
                f"from different runs; rerun `{rerun}`"
            )
        checks += [(f"test_accuracy_by_set.{s}", v, float(per_set[s]), int(sizes[s])) for s, v in by_set.items()]
    elif "eval_set" in df.columns:
        raise InputError(
            f"{metrics}: no test_accuracy_by_set, but {path} holds evaluation sets "
            f"{sorted(df.eval_set.astype(str).unique())}; the two are from different runs; rerun `{rerun}`"
        )
    for name, said, score, n in checks:
        if not math.isclose(said, score, rel_tol=RELATIVE, abs_tol=ABSOLUTE):
            raise InputError(
                f"{metrics}: {name} is {said!r}, but the predictions in {path} score {score!r} (pred == label on "
                f"{n} examples); the two are from different runs, or one was edited; rerun `{rerun}`"
            )
    order = np.argsort(df.id.astype(str).to_numpy(), kind="stable")
    return tuple(df[c].to_numpy()[order] for c in ("id", "label", "eval_set") if c in df.columns)


def runs(tree: Runs) -> pd.DataFrame:
    """One row per (evaluation set, method, seed) of the runs of `tree`; `run_task` is the task the run trained
    on. Each run's record is checked against its predictions, and the predictions of a task's runs must be of
    the same test examples (the significance tests pair them by id)."""
    rows, examples = [], {}
    for key in tree.keys:
        r = record(tree, key)
        seen = scored(tree, key, r)
        first, shared = examples.setdefault(key[0], (key, seen))
        if len(seen) != len(shared) or not all(np.array_equal(a, b) for a, b in zip(seen, shared)):
            raise InputError(
                f"{tree.path(key, 'predictions.parquet')}: its test examples (ids, labels, evaluation sets) differ "
                f"from those of {tree.path(first, 'predictions.parquet')}; one of the two runs is of other data; "
                f"rerun it: `{tree.stage(key)}` or `{tree.stage(first)}`"
            )
        rows += rows_by_eval_set(r)
    keep = [
        "task",
        "method",
        "seed",
        "dev_accuracy",
        "test_accuracy",
        "best_epoch",
        "train_seconds",
        "run_task",
        "eval_set",
    ]
    return pd.DataFrame([{k: r[k] for k in keep} for r in rows], columns=keep)


def correctness(tree: Runs, task: str, method: str, seeds: list[int], eval_set: str | None = None) -> np.ndarray:
    """[seeds, test examples] of 0/1, examples ordered by id so that two methods line up; `eval_set` keeps
    one evaluation set of a test split that has several."""
    out = []
    for seed in seeds:
        key = (task, method, seed)
        path, rerun = tree.path(key, "predictions.parquet"), tree.stage(key)
        df = read_parquet(path, rerun, columns=PREDICTIONS).sort_values("id")
        if eval_set is not None:
            df = df[df.eval_set == eval_set]
        out.append((df.pred == df.label).to_numpy(int))
    return np.stack(out)


def epochs(tree: Runs, key: Key) -> list[dict]:
    """A run's history.json: one record per epoch, each with its epoch and dev accuracy."""
    path, rerun = tree.path(key, "history.json"), tree.stage(key)
    history = read_json(path, rerun, keys=("epoch", "dev_accuracy"), kind=list)
    if not history:
        raise InputError(f"{path}: no epochs; rerun `{rerun}`")
    for h in history:
        check_numbers(path, rerun, h, ("epoch",))
        check_numbers(path, rerun, h, ("dev_accuracy",), fraction=True)
    return history
