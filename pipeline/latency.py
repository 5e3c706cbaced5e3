"""Stage `latency`: what the student saves at inference, measured on this machine's CPU.

Usage: python -m pipeline.latency TASK   (writes results/latency/TASK.json)
For every teacher of run.teachers and for the student: parameters, weight file size, and the time
of a forward pass at batch 1 and batch 32 on the task's test inputs. The student's timing does not
depend on its weights, so a freshly built student of the configured architecture stands in for the
trained ones (the distill runs keep predictions, not weights).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file

from . import compute, models, training
from .io import provenance, write_json
from .params_file import arguments, named, reported_errors
from .schema import load
from .splits import load_card, load_split


@torch.inference_mode()
def time_forward(model, enc, pad: int, batch: int, repeats: int) -> float:
    """Median seconds of one forward pass over `batch` test examples (the same examples for every model)."""
    model.eval()
    idx = np.arange(min(batch, len(enc["input_ids"])))
    inputs = training.collate(enc, idx, pad)
    model(**inputs)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(**inputs)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def weight_bytes(model) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        return path.stat().st_size


def measure(name: str, model, tokenizer, test: pd.DataFrame, max_length: int, repeats: int) -> dict:
    enc = training.encode(tokenizer, test, max_length, models.uses_token_types(model.encoder))
    pad = tokenizer.pad_token_id
    one, many = time_forward(model, enc, pad, 1, repeats), time_forward(model, enc, pad, 32, repeats)
    row = {
        "model": name,
        "parameters": models.count_parameters(model),
        "weight_bytes": weight_bytes(model),
        "batch1_ms": 1e3 * one,
        "batch32_ms": 1e3 * many,
        "batch32_examples_per_s": 32 / many,
    }
    print(
        f"latency: {name}: {row['parameters'] / 1e6:.1f} M parameters, batch 1 {row['batch1_ms']:.1f} ms, "
        f"batch 32 {row['batch32_ms']:.0f} ms",
        flush=True,
    )
    return row


def main(task: str, params_path: str = "params.yaml", repeats: int = 5) -> None:
    params = load(params_path).for_task(task)  # the task's own overrides, if any (tasks.TASK.overrides)
    named(params, "tasks", task)
    compute.pin_threads(params.compute)
    torch.manual_seed(params.seed)
    splits = {s: load_split(Path("data") / task, s) for s in ("train", "test")}
    labels = load_card(Path("data") / task, params.tasks[task])["labels"]
    rows = []
    for teacher in params.run.teachers:
        model, tokenizer, meta = models.load(
            Path("models") / task / teacher / "model",
            f"dvc repro finetune@{task}-{teacher}",
            task=task,
            teacher=teacher,
        )
        rows.append(measure(teacher, model, tokenizer, splits["test"], meta["max_length"], repeats))
    train = splits["train"]
    student, tokenizer = models.build_student(params, list(train.text_a) + list(train.text_b.dropna()), len(labels))
    rows.append(measure("student", student, tokenizer, splits["test"], params.student.max_length, repeats))
    write_json(
        Path("results/latency") / f"{task}.json",
        {"task": task, "threads": torch.get_num_threads(), "models": rows, "provenance": provenance(params.seed)},
    )


if __name__ == "__main__":
    args = arguments(__spec__.name, __doc__, ("task", str, "a task of params.yaml's tasks section"))
    with reported_errors():
        main(args.task, args.params)
