"""Stage `cache`: run one fine-tuned teacher once over the students' train rows and dev and store its outputs.

Usage: python -m pipeline.cache TASK TEACHER   (writes logits/TASK/TEACHER/)
Distillation then reads these files and never runs a teacher forward pass.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from . import compute, logits, models, training
from .io import atomic_path, provenance, write_json
from .params_file import arguments, named, reported_errors
from .schema import load
from .splits import by_eval_set, load_split, students_train


def teacher_outputs(model, tokenizer, max_length: int, splits: dict, batch_size: int, name: str, acc=None, workers=0):
    """Per split, a fine-tuned teacher's logits and pooled vectors (in the split's order), the gold labels,
    its accuracy record (overall and, for MNLI's test split, per evaluation set) and its speed."""
    out = {}
    for split, df in splits.items():
        start = time.perf_counter()
        enc = training.encode(tokenizer, df, max_length, models.uses_token_types(model.encoder))
        pad = tokenizer.pad_token_id
        out_logits, pooled = training.predict(model, enc, batch_size, pad, f"{name} {split}", acc, workers)
        labels = torch.tensor(df.label.to_numpy())
        out[split] = {
            "logits": out_logits,
            "pooled": pooled,
            "labels": labels,
            "accuracy": {
                "accuracy": training.accuracy(out_logits, labels),
                **by_eval_set("accuracy", df, out_logits, labels),
            },
            "examples_per_s": len(df) / (time.perf_counter() - start),
        }
    return out


def main(task: str, teacher: str, params_path: str = "params.yaml") -> None:
    params = load(params_path).for_task(task)  # the task's own overrides, if any (tasks.TASK.overrides)
    named(params, "tasks", task)
    spec = named(params, "teachers", teacher)
    acc = compute.from_params(params.compute)
    model, tokenizer, meta = models.load(
        Path("models") / task / teacher / "model", f"dvc repro finetune@{task}-{teacher}", task=task, teacher=teacher
    )
    model.to(acc.device)
    splits = {s: load_split(Path("data") / task, s) for s in logits.CACHED_SPLITS}
    # the rows the students train on (distill.max_train); a teacher may have trained on more
    splits["train"] = students_train(splits["train"], params.distill.max_train, params.seed)
    outputs = teacher_outputs(
        model, tokenizer, meta["max_length"], splits, spec.eval_batch_size, teacher, acc, params.compute.loader_workers
    )
    summary = {"task": task, "teacher": teacher, "splits": {}}
    with atomic_path(Path("logits") / task / teacher) as out:
        out.mkdir()
        for split, df in splits.items():
            o = outputs[split]
            tensors = logits.tensors(o["logits"], o["pooled"], o["labels"])
            logits.save(out / f"{split}.safetensors", df, tensors, task=task, teacher=teacher)
            # no timings in the folder: the same model gives the same bytes, so a rerun leaves distill untouched
            summary["splits"][split] = {"examples": len(df), **o["accuracy"]}
            print(
                f"cache: {teacher} on {task}/{split}: {len(df)} examples, accuracy {o['accuracy']['accuracy']:.4f}, "
                f"{o['examples_per_s']:.0f} examples/s",
                flush=True,
            )
        summary["provenance"] = provenance(params.seed, compute=compute.describe(acc), machine=False)
        write_json(out / "summary.json", summary)


if __name__ == "__main__":
    args = arguments(
        __spec__.name,
        __doc__,
        ("task", str, "a task of params.yaml's tasks section"),
        ("teacher", str, "a teacher of params.yaml's teachers section"),
    )
    with reported_errors():
        main(args.task, args.teacher, args.params)
