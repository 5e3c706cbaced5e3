"""Read what the earlier stages wrote into tables: runs, predictions, curves, teachers, selections.

Nothing here trains or runs a model; the analyze stage (analysis/analyze.py) turns these into tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


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


def runs(root: str | Path = "runs") -> pd.DataFrame:
    """One row per (evaluation set, method, seed); `run_task` is the task the run trained on."""
    rows = [
        row
        for p in sorted(Path(root).glob("*/*/*/metrics.json"))
        for row in rows_by_eval_set(json.loads(p.read_text()))
    ]
    if not rows:
        raise SystemExit(f"no runs found under {root}/TASK/METHOD/SEED/metrics.json")
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
    return pd.DataFrame([{k: r[k] for k in keep} for r in rows])


def correctness(root: str | Path, task: str, method: str, seeds: list[int], eval_set: str | None = None) -> np.ndarray:
    """[seeds, test examples] of 0/1, examples ordered by id so that two methods line up; `eval_set` keeps
    one evaluation set of a test split that has several."""
    out = []
    for seed in seeds:
        df = pd.read_parquet(Path(root) / task / method / str(seed) / "predictions.parquet").sort_values("id")
        if eval_set is not None:
            df = df[df.eval_set == eval_set]
        out.append((df.pred == df.label).to_numpy(int))
    return np.stack(out)


def histories(root: str | Path = "runs") -> pd.DataFrame:
    """One row per (task, method, seed, epoch): dev accuracy, and for RL-KD the selection rates and mean reward."""
    rows = []
    for path in sorted(Path(root).glob("*/*/*/history.json")):
        task, method, seed = path.parts[-4:-1]
        for h in json.loads(path.read_text()):
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
    return pd.DataFrame(rows)


def rewards(root: str | Path = "runs", method: str = "rl_kd") -> pd.DataFrame:
    """The agent's reward at every joint-training step: task, seed, epoch, step (counted over epochs), reward."""
    frames = []
    for path in sorted(Path(root).glob(f"*/{method}/*/rewards.json")):
        task, _, seed = path.parts[-4:-1]
        frames.append(pd.DataFrame(json.loads(path.read_text())).assign(task=task, seed=int(seed)))
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["epoch", "step", "reward", "task", "seed"])
    )


def policy_curve(root: str | Path = "runs", method: str = "rl_kd") -> pd.DataFrame:
    """The agent's selection rate per teacher per policy epoch: pre-training epochs (P1, P2, ...) then
    the joint-training epochs, one row per (task, seed, epoch)."""
    rows = []
    for path in sorted(Path(root).glob(f"*/{method}/*/metrics.json")):
        task, _, seed = path.parts[-4:-1]
        pre = json.loads(path.read_text()).get("policy_pretraining", [])
        history = json.loads(path.with_name("history.json").read_text())
        joint = [h for h in history if h.get("selection_rate") is not None]
        for i, h in enumerate(pre, 1):
            rows.append({"task": task, "seed": int(seed), "label": f"P{i}", "selection_rate": h["selection_rate"]})
        for h in joint:
            rows.append(
                {"task": task, "seed": int(seed), "label": str(h["epoch"]), "selection_rate": h["selection_rate"]}
            )
    return pd.DataFrame(rows, columns=["task", "seed", "label", "selection_rate"])


def teachers(root: str | Path, tasks: list[str], names: list[str]) -> pd.DataFrame:
    rows = []
    for task in tasks:
        for name in names:
            m = json.loads((Path(root) / task / name / "metrics.json").read_text())
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


def selection_vs_correctness(
    task: str,
    names: list[str],
    seeds: list[int],
    runs_root="runs",
    data_root="data",
    logits_root="logits",
    method: str = "rl_kd",
) -> pd.DataFrame:
    """Per teacher and seed: the agent's mean final selection probability on the training instances
    where that teacher's cached prediction is right, and where it is wrong."""
    from pipeline import logits, splits

    train = splits.load_split(Path(data_root) / task, "train")
    rows = []
    for name in names:
        cached = logits.load(Path(logits_root) / task / name / "train.safetensors", train)
        right = pd.Series(cached["logits"].argmax(-1).numpy() == train.label.to_numpy(), index=train.id)
        for seed in seeds:
            sel = pd.read_parquet(Path(runs_root) / task / method / str(seed) / "weights.parquet").set_index("id")
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
