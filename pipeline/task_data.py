"""What a student run reads from disk: a prepared task and its teachers' cached outputs (the stages prepare
and cache wrote them), with `distill.max_train` applied."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import logits
from .params_file import InputError
from .schema import Params
from .splits import SPLITS, load_card, load_split, students_train


def load_teachers(task: str, teachers: list[str], splits: dict, root: Path = Path(".")) -> dict:
    """Stack the cached outputs of all teachers: logits and probs [N, K, C], ce [N, K], pooled [N, H_k] per teacher."""
    out = {}
    for split in logits.CACHED_SPLITS:
        df = splits[split]
        cached = [
            logits.load(root / "logits" / task / t / f"{split}.safetensors", df, task=task, teacher=t) for t in teachers
        ]
        out[split] = {
            "logits": torch.stack([c["logits"] for c in cached], 1),
            "probs": torch.stack([c["probs"] for c in cached], 1),
            "ce": torch.stack([c["ce"] for c in cached], 1),
            "pooled": [c["pooled"] for c in cached],
        }
    return out


def student_rows(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(the rows every student trains on, the held-out rows): a seeded `fraction` of the n training rows kept out
    of every student's training (`distill.held_out_fraction`; RL-KD measures its rewards there)."""
    if fraction == 0:
        return np.arange(n), np.arange(0)
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, int(round(fraction * n)))
    if cut >= n:
        raise InputError(
            f"distill.max_train: {n} training example(s) (the capped train split) leave none for the student once "
            f"distill.held_out_fraction ({fraction}) keeps {cut} out; at least 2"
        )
    return np.sort(order[cut:]), np.sort(order[:cut])


@dataclass
class TaskData:
    """A prepared task and its teachers' cached outputs: all that a student run reads from disk."""

    task: str
    splits: dict[str, pd.DataFrame]  # train, dev, test (train capped at `distill.max_train`)
    cache: dict[str, dict]  # per split the teachers' outputs, as `load_teachers` stacks them
    gold: dict[str, torch.Tensor]  # per split the gold label ids
    labels: list[str]  # the label names, in id order


def load_task(params: Params, task: str, root: Path = Path(".")) -> TaskData:
    """Task `task` as the prepare and cache stages wrote it under `root`: the train split is the students' rows
    (`distill.max_train`), those the cache holds."""
    card = load_card(root / "data" / task, params.tasks[task])
    splits = {s: load_split(root / "data" / task, s) for s in SPLITS}
    splits["train"] = students_train(splits["train"], params.distill.max_train, params.seed)  # the cached rows
    cache = load_teachers(task, params.run.teachers, splits, root)
    gold = {s: torch.tensor(df.label.to_numpy()) for s, df in splits.items()}
    return TaskData(task, splits, cache, gold, list(card["labels"]))
