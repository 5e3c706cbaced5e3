"""Stage `finetune`: fine-tune one teacher on one task, keep the best epoch on dev.

Usage: python -m pipeline.finetune TASK TEACHER
Writes models/TASK/TEACHER/model/ (encoder, tokenizer, head) and models/TASK/TEACHER/metrics.json.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import compute, models, training
from .assets import load_manifest
from .io import atomic_path, provenance, write_json
from .params_file import arguments, named, reported_errors
from .schema import Params, Teacher, load
from .splits import SPLITS, by_eval_set, cap, load_card, load_split


def resolve(params: Params, task: str, teacher: str):
    """Check the names and the inputs a run needs, before any model is built."""
    named(params, "tasks", task)
    spec = named(params, "teachers", teacher)
    manifest = load_manifest(params.assets.dir) if spec.source == "asset" else None
    return spec, manifest, load_card(Path("data") / task, params.tasks[task])


@dataclass
class FineTuned:
    """A fine-tuned teacher at its best epoch on dev, its tokenizer, and the record of its training."""

    model: torch.nn.Module
    tokenizer: object
    enc: dict  # the tokenised splits
    gold: dict  # per split the gold label ids
    history: list[dict]
    dev_accuracy: float
    seconds: float
    setting: Teacher  # the setting it trained with (a grid's best point on dev)
    test_logits: torch.Tensor | None = None
    grid: list[dict] = field(default_factory=list)


def fit(teacher: str, spec: Teacher, manifest, card: dict, parts: dict, seed: int, acc, workers: int) -> FineTuned:
    """Fine-tune one setting from the pretrained encoder; return the best epoch's model and its record."""
    acc.free_memory()  # the previous grid point's prepared model and optimizer
    training.seed_everything(seed)
    train = parts["train"]
    texts = list(train.text_a) + list(train.text_b.dropna())
    encoder, tokenizer = models.pretrained_encoder(f"teachers.{teacher}", spec, manifest, texts)
    model = models.Classifier(encoder, len(card["labels"]), spec.pooling)
    pad = tokenizer.pad_token_id
    segments = models.uses_token_types(encoder)
    enc = {s: training.encode(tokenizer, df, spec.max_length, segments) for s, df in parts.items()}
    gold = {s: torch.tensor(df.label.to_numpy()) for s, df in parts.items()}
    model, optimizer, scheduler = acc.prepare(model, *training.optimiser(model, spec, len(train)))
    unwrapped, rng, rows = acc.unwrap_model(model), np.random.default_rng(seed), np.arange(len(train))
    acc.print(
        f"finetune: {teacher}: {len(train)} training examples, {spec.epochs} epoch(s), lr {spec.lr:g}, "
        f"{models.count_parameters(model) / 1e6:.1f} M parameters",
        flush=True,
    )
    history, best, best_state, start = [], -1.0, None, time.perf_counter()
    for epoch in range(1, spec.epochs + 1):
        model.train()
        total, seen, tic, desc = 0.0, 0, time.perf_counter(), f"{teacher} epoch {epoch}"
        whole = training.training_batches(rows, enc["train"], spec.batch_size, rng, spec.group_by_length)
        parts = [compute.shard(acc, c) for c in whole]  # data parallel: each process its share of every batch
        loaded = training.batches(compute.device(acc), enc["train"], parts, pad, workers, spec.forward_pieces)
        for step, ((idx, batch), size) in enumerate(zip(training.progress(loaded, desc, len(parts)), map(len, whole))):
            with compute.autocast(acc):
                logits, _ = training.forward(model, batch)
            loss = F.cross_entropy(logits.float(), gold["train"][idx].to(logits.device))
            if len(idx) < size:  # data parallel averages the processes' means: weigh each by its share of the batch
                loss = loss * (len(idx) * acc.num_processes / size)
            total, seen = total + training.finite(loss, desc, step + 1) * len(idx), seen + len(idx)
            optimizer.zero_grad(set_to_none=True)
            compute.backward(acc, loss)
            compute.clip_grad_norm(acc, model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
        seconds = time.perf_counter() - tic
        dev = training.predict(unwrapped, enc["dev"], spec.eval_batch_size, pad, "dev", acc, workers)[0]
        history.append(
            {"train_loss": total / seen, "seconds": seconds, "examples_per_s": seen * acc.num_processes / seconds}
            | {"epoch": epoch, "dev_accuracy": training.accuracy(dev, gold["dev"])}
        )
        acc.print(
            f"  epoch {epoch}: loss {total / seen:.4f}, dev accuracy {history[-1]['dev_accuracy']:.4f}, "
            f"{history[-1]['examples_per_s']:.1f} examples/s",
            flush=True,
        )
        if history[-1]["dev_accuracy"] > best:
            best, best_state = history[-1]["dev_accuracy"], copy.deepcopy(unwrapped.state_dict())
    unwrapped.load_state_dict(best_state)
    return FineTuned(unwrapped, tokenizer, enc, gold, history, best, time.perf_counter() - start, spec)


def finetune(params: Params, teacher: str, parts: dict, card: dict, manifest=None, acc=None) -> FineTuned:
    """Fine-tune `teacher` on a task's splits `parts` (train, dev and test as prepared, capped as the
    teacher's setting says), with `card` its task card: with a grid, one model per grid point from the same
    seed, the best on dev kept. Its test predictions come with it."""
    spec = named(params, "teachers", teacher)
    acc, workers = acc or compute.from_params(params.compute), params.compute.loader_workers
    best, grid = None, []
    for point in spec.points():  # each from the same seed; the first of ties kept
        model = fit(teacher, point, manifest, card, parts, params.seed, acc, workers)
        grid.append({**point.point_label(spec), "dev_accuracy": model.dev_accuracy})
        if best is None or model.dev_accuracy > best.dev_accuracy:
            best = model
    best.grid = grid if spec.grid else []
    pad, test = best.tokenizer.pad_token_id, best.enc["test"]
    best.test_logits, _ = training.predict(best.model, test, spec.eval_batch_size, pad, "test", acc, workers)
    return best


def main(task: str, teacher: str, params_path: str = "params.yaml") -> None:
    params = load(params_path).for_task(task)  # the task's own overrides, if any (tasks.TASK.overrides)
    spec, manifest, card = resolve(params, task, teacher)
    splits = {s: load_split(Path("data") / task, s) for s in SPLITS}
    parts = {
        **splits,
        "train": cap(splits["train"], spec.max_train, params.seed),
        "test": cap(splits["test"], spec.max_test, params.seed),
    }
    acc = compute.from_params(params.compute)
    best = finetune(params, teacher, parts, card, manifest, acc)
    if not acc.is_main_process:  # data parallel: the first process writes
        return

    out = Path("models") / task / teacher
    with atomic_path(out / "model") as tmp:
        models.save(best.model.cpu(), best.tokenizer, tmp, card["labels"], spec.max_length, task=task, teacher=teacher)
    history, test_logits, gold = best.history, best.test_logits, best.gold
    best_epoch = max(history, key=lambda h: h["dev_accuracy"])["epoch"]
    write_json(
        out / "metrics.json",
        {
            "task": task,
            "teacher": teacher,
            "dev_accuracy": best.dev_accuracy,
            "test_accuracy": training.accuracy(test_logits, gold["test"]),
            **by_eval_set("test_accuracy", parts["test"], test_logits, gold["test"]),
            "best_epoch": best_epoch,
            "train_examples": len(parts["train"]),
            "test_examples": len(parts["test"]),
            "train_seconds": best.seconds,
            "train_examples_per_s": sum(h["examples_per_s"] for h in history) / len(history),
            "parameters": models.count_parameters(best.model),
            "truncated_train_examples": best.enc["train"]["truncated"],
            "history": history,
            **({"grid": best.grid, "selected": best.setting.point_label(spec)} if spec.grid else {}),
            "provenance": provenance(params.seed, spec.model_dump(), compute.describe(acc)),
        },
    )
    print(
        f"finetune: {teacher} on {task}: best epoch {best_epoch}, dev {best.dev_accuracy:.4f}, "
        f"test {training.accuracy(test_logits, gold['test']):.4f}, {best.seconds:.0f} s",
        flush=True,
    )


if __name__ == "__main__":
    args = arguments(
        __spec__.name,
        __doc__,
        ("task", str, "a task of params.yaml's tasks section"),
        ("teacher", str, "a teacher of params.yaml's teachers section"),
    )
    with reported_errors():
        main(args.task, args.teacher, args.params)
