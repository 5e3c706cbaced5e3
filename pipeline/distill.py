"""Stage `distill`: train the student on one task with one teacher-weighting method and one seed.

Usage: python -m pipeline.distill TASK METHOD SEED   (writes runs/TASK/METHOD/SEED/)
The stages `distill`, `single`, `drop` and `agent` all run this module; the method comes from pipeline/methods/
by name, and only its own file is loaded. The teachers' outputs come from the logit cache only: no
teacher forward pass runs here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel

from . import compute, methods, models, training
from .io import atomic_path, provenance, write_json
from .losses import fill_empty, student_loss
from .params_file import InputError, arguments, named, reported_errors
from .schema import Distill, Params, load
from .splits import by_eval_set
from .task_data import TaskData, load_task, student_rows


def resolve(params: Params, task: str, method: str, seed: str, path: str = "params.yaml"):
    """Check the names and settings a run needs before anything is loaded or trained: (seed, method settings)."""
    named(params, "tasks", task)
    methods.check_listed(params, path)
    settings = methods.check(params, [method], path)[method]
    if not (seed.isascii() and seed.isdigit()) or int(seed) > 2**32 - 1:  # numpy's and torch's seed range
        raise InputError(f"seed must be an integer from 0 to 2**32 - 1, got {seed!r}")
    return int(seed), settings


@dataclass
class Distilled:
    """A trained student, at its best epoch on dev, and the record of its training."""

    model: torch.nn.Module
    history: list[dict]  # per epoch: loss, dev accuracy, speed (and RL-KD's selection rates and rewards)
    dev_accuracy: float
    test_logits: torch.Tensor
    train_seconds: float
    infer_seconds: float
    weight_sum: torch.Tensor  # [N, K]: each training instance's teacher weights, summed over epochs
    rows: np.ndarray  # the training rows the student trained on (train less the held-out slice)
    static: torch.Tensor | None  # a method's one weight per teacher, where it has one
    pretraining: list[dict]  # RL-KD's policy pre-training epochs
    selection: torch.Tensor | None  # RL-KD: the final policy's selection probabilities [N, K]
    setting: Distill  # the `distill` setting it trained with (a grid's best point on dev)
    method_settings: BaseModel  # its method's own settings (`methods.NAME`)
    grid: list[dict] = field(default_factory=list)  # every grid point's dev accuracy (empty without a grid)


class Teaching:
    """Distillation's objective for one epoch (`training.train_epoch`'s hooks): per batch, the method's teacher
    weights, the KD loss (`losses.student_loss`) and the record of the weights, with the method's hooks
    around the student's update."""

    def __init__(self, labels, teacher_logits, weighting: methods.Weighting, cfg: Distill, weight_sum):
        self.labels, self.teacher_logits, self.weighting, self.cfg = labels, teacher_logits, weighting, cfg
        self.weight_sum = weight_sum

    def before(self, idx) -> None:
        self.weighting.before_update(idx)

    def loss(self, idx, logits: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        w = self.weighting.weigh(idx, logits.detach().cpu())
        self.w, self.outputs = fill_empty(w, self.weighting.fill).to(logits.device), (logits.detach(), pooled.detach())
        cfg, labels = self.cfg, self.labels[idx]
        return student_loss(
            logits, labels.to(logits.device), self.teacher_logits[idx], self.w, cfg.alpha, cfg.temperature,
            cfg.t2_scaling,
        )  # fmt: skip

    def after(self, idx) -> None:
        self.weighting.after_update(idx, *self.outputs)
        self.weight_sum[idx] += self.w.cpu()

    def stats(self) -> dict:
        return self.weighting.end_epoch()


@dataclass
class Trainer:
    """One student's training as a method's hooks see it: the student, how its epochs run, its weight record."""

    model: torch.nn.Module
    loop: training.Loop
    cfg: Distill
    weighting: methods.Weighting
    labels: torch.Tensor  # the training split's gold labels
    teacher_logits: torch.Tensor
    weight_sum: torch.Tensor  # [N, K]: each training instance's teacher weights, summed over epochs
    dev_accuracy: Callable[[], float]  # the student's accuracy on dev, as it is now

    def epoch(self, desc: str) -> dict:
        teaching = Teaching(self.labels, self.teacher_logits, self.weighting, self.cfg, self.weight_sum)
        return training.train_epoch(self.model, self.loop, teaching, desc)


def fit(params: Params, cfg: Distill, data: TaskData, method: str, settings, seed: int, acc=None) -> Distilled:
    """Train the student with one setting of `distill`; return it at its best epoch on dev."""
    teachers, splits, gold, cache = params.run.teachers, data.splits, data.gold, data.cache
    training.seed_everything(seed)
    rng = np.random.default_rng(seed)
    train = splits["train"]
    model, tokenizer = models.build_student(params, list(train.text_a) + list(train.text_b.dropna()), len(data.labels))
    model.to(compute.device(acc))
    pad = tokenizer.pad_token_id
    segments = models.uses_token_types(model.encoder)
    enc = {s: training.encode(tokenizer, df, params.student.max_length, segments) for s, df in splits.items()}
    teacher_logits = cache["train"]["logits"].to(compute.device(acc))
    # every method's student trains on the same rows; the held-out slice is RL-KD's for its rewards
    rows, held_out = student_rows(len(train), cfg.held_out_fraction, params.seed)
    context = methods.Context(
        method=method, teachers=teachers, cache=cache, gold=gold, cfg=cfg, settings=settings, rng=rng, seed=seed,
        params=params, model=model, enc=enc["train"], pad=pad, num_labels=len(data.labels),
        teacher_logits=teacher_logits, held_out=held_out, acc=acc,
    )  # fmt: skip
    weighting = methods.load(method, params.methods).weighting(context)
    optimizer, scheduler = training.optimiser(model, cfg, len(rows))
    loop = training.Loop(
        enc=enc["train"], rows=rows, batch_size=cfg.batch_size, pad_id=pad, rng=rng, optimizer=optimizer,
        scheduler=scheduler, acc=acc, workers=params.compute.loader_workers, by_length=cfg.group_by_length,
        pieces=cfg.forward_pieces,
    )  # fmt: skip
    trainer = Trainer(
        model=model, loop=loop, cfg=cfg, weighting=weighting, labels=gold["train"], teacher_logits=teacher_logits,
        weight_sum=torch.zeros(len(train), len(teachers)),
        dev_accuracy=lambda: training.accuracy(dev_logits(), gold["dev"]),
    )  # fmt: skip
    print(
        f"distill: {method} on {data.task}, seed {seed}: student {models.count_parameters(model) / 1e6:.2f} M "
        f"parameters, {len(rows)} training examples, teachers {teachers}",
        flush=True,
    )

    def one_epoch(epoch: int) -> dict:
        weighting.start_epoch(epoch, trainer)
        return trainer.epoch(f"{method} epoch {epoch}")

    def log(stats: dict) -> None:
        rates = stats.get("selection_rate")
        rate = "" if rates is None else ", selection rate " + " ".join(f"{t} {r:.2f}" for t, r in zip(teachers, rates))
        print(
            f"  epoch {stats['epoch']}: loss {stats['train_loss']:.4f}, dev accuracy {stats['dev_accuracy']:.4f}{rate}",
            flush=True,
        )

    def dev_logits():
        return training.predict(model, enc["dev"], cfg.eval_batch_size, pad, "dev", acc, loop.workers)[0]

    start = time.perf_counter()
    history, best = training.best_epoch(model, cfg.epochs, one_epoch, dev_logits, gold["dev"], log)
    train_seconds = time.perf_counter() - start
    t0 = time.perf_counter()
    test_logits, _ = training.predict(model, enc["test"], cfg.eval_batch_size, pad, "test", acc, loop.workers)
    infer_seconds = time.perf_counter() - t0
    records = weighting.records(trainer)
    return Distilled(
        model=model, history=history, dev_accuracy=best, test_logits=test_logits, train_seconds=train_seconds,
        infer_seconds=infer_seconds, weight_sum=trainer.weight_sum, rows=rows, static=weighting.static,
        pretraining=records.get("pretraining", []), selection=records.get("selection"), setting=cfg,
        method_settings=settings,
    )  # fmt: skip


def distill(params: Params, data: TaskData, method: str, seed: int, settings=None, acc=None) -> Distilled:
    """Distil the teachers of `data` into a student with `method` (its settings: `methods.check`'s, by default
    those of params.yaml): with `distill.grid`, one student per grid point from the same seed, the best on dev
    kept (and every point's dev accuracy in its `grid`)."""
    cfg = params.distill
    settings = methods.check(params, [method])[method] if settings is None else settings
    best, grid = training.best_on_dev(cfg, lambda point: fit(params, point, data, method, settings, seed, acc))
    best.grid = grid if cfg.grid else []
    return best


def record(params: Params, data: TaskData, method: str, seed: int, student: Distilled, acc=None) -> dict:
    """A run's metrics.json: accuracy, speed, the teachers' mean weights and the run's provenance."""
    teachers, test, cfg, history = params.run.teachers, data.splits["test"], params.distill, student.history
    mean_w = student.weight_sum / student.setting.epochs
    static = student.static
    return {
        "task": data.task,
        "method": method,
        "seed": seed,
        "dev_accuracy": student.dev_accuracy,
        "test_accuracy": training.accuracy(student.test_logits, data.gold["test"]),
        **by_eval_set("test_accuracy", test, student.test_logits, data.gold["test"]),
        "best_epoch": max(history, key=lambda h: h["dev_accuracy"])["epoch"],
        "train_seconds": student.train_seconds,
        "train_examples_per_s": sum(h["examples_per_s"] for h in history) / len(history),
        "student_parameters": models.count_parameters(student.model),
        "student_inference_examples_per_s": len(test) / student.infer_seconds,
        # over the rows the student trained on: the held-out slice, never trained on, has no weights
        "teacher_weights": {t: float(mean_w[student.rows, k].mean()) for k, t in enumerate(teachers)},
        "static_weights": None if static is None else {t: float(static[k]) for k, t in enumerate(teachers)},
        "policy_pretraining": [{k: v for k, v in p.items() if k != "rewards"} for p in student.pretraining],
        **({"grid": student.grid, "selected": student.setting.point_label(cfg)} if cfg.grid else {}),
        "provenance": provenance(
            seed,
            {
                "student": params.student.model_dump(),
                "distill": cfg.model_dump(),
                "method": {"name": method, "settings": student.method_settings.model_dump()},
                "teachers": teachers,
                "data_seed": params.seed,
            },
            compute.describe(acc),
        ),
    }


def write_run(out: Path, params: Params, data: TaskData, method: str, seed: int, student: Distilled, acc=None):
    """The run's folder, written whole or not at all: history, RL-KD's rewards, test predictions, the
    teachers' mean weights per training instance (RL-KD: and the policy's selections), metrics."""
    teachers, history, test = params.run.teachers, student.history, data.splits["test"]
    mean_w = student.weight_sum / student.setting.epochs
    columns = {"id": data.splits["train"].id, **{t: mean_w[:, k].numpy() for k, t in enumerate(teachers)}}
    if student.selection is not None:  # the agent's final selection probability of every teacher for every instance
        columns.update({f"select_{t}": student.selection[:, k].numpy() for k, t in enumerate(teachers)})
    metrics = record(params, data, method, seed, student, acc)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        # per-step rewards in a flat file of their own: DVC's plots cannot read lists nested in history.json
        steps = [{"epoch": h["epoch"], "reward": r} for h in history for r in h.get("rewards", [])]
        keys = [k for k in dict.fromkeys(k for h in history for k in h) if k != "rewards"]
        # DVC's plots need the same keys in every row
        write_json(tmp / "history.json", [{k: h.get(k) for k in keys} for h in history])
        if steps:  # a method that learns from per-step rewards (RL-KD): dvc.yaml plots them
            write_json(tmp / "rewards.json", [{"step": i, **s} for i, s in enumerate(steps, 1)])
        probs = student.test_logits.softmax(-1).numpy()
        preds = pd.DataFrame(
            {
                "id": test.id,
                "label": data.gold["test"].numpy(),
                "pred": probs.argmax(-1),
                **{f"prob_{c}": probs[:, i] for i, c in enumerate(data.labels)},
            }
        )
        if "eval_set" in test.columns:  # MNLI-m and -mm in one test split: the analysis splits them
            preds["eval_set"] = test.eval_set.to_numpy()
        preds.to_parquet(tmp / "predictions.parquet", index=False)
        pd.DataFrame(columns).to_parquet(tmp / "weights.parquet", index=False)
        write_json(tmp / "metrics.json", metrics)


def main(task: str, method: str, seed: str, params_path: str = "params.yaml") -> None:
    params = load(params_path)
    seed, settings = resolve(params, task, method, seed, params_path)
    acc = compute.from_params(params.compute)
    if acc.num_processes > 1:
        raise InputError(
            "compute.launch: distill runs on one device (its student is small); run many distill "
            "runs at once with DVC's queue instead (docs/gpus.md)"
        )
    data = load_task(params, task)
    student = distill(params, data, method, seed, settings, acc)
    write_run(Path("runs") / task / method / str(seed), params, data, method, seed, student, acc)
    test = training.accuracy(student.test_logits, data.gold["test"])
    print(
        f"distill: {method} on {task}, seed {seed}: dev {student.dev_accuracy:.4f}, test {test:.4f}, "
        f"{student.train_seconds:.0f} s",
        flush=True,
    )


if __name__ == "__main__":
    args = arguments(
        __spec__.name,
        __doc__,
        ("task", str, "a task of params.yaml's tasks section"),
        ("method", str, "a method (pipeline/methods/) or single_TEACHER"),
        ("seed", str, "the run's seed, an integer"),
    )
    with reported_errors():
        main(args.task, args.method, args.seed, args.params)
