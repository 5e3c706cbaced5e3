"""Stage `distill`: train the student on one task with one teacher-weighting method and one seed.

Usage: python -m pipeline.distill TASK METHOD SEED   (writes runs/TASK/METHOD/SEED/)
The stages `distill`, `single`, `drop` and `agent` all run this module; the method comes from pipeline/methods/
by name, and only its own file is loaded. The teachers' outputs come from the logit cache only: no
teacher forward pass runs here.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel

from . import compute, methods, models, training
from .io import atomic_path, provenance, write_json
from .losses import fill_empty, student_loss
from .methods.weighting import Extra, Run, Weighting
from .params_file import InputError, arguments, named, reported_errors
from .schema import Distill, Params, load
from .splits import by_eval_set
from .task_data import TaskData, load_task, student_rows


def resolve(params: Params, task: str, method: str, seed: str, path: str = "params.yaml"):
    """Check the names and settings a run needs before anything is loaded or trained: (seed, method settings)."""
    named(params, "tasks", task)
    methods.check_listed(params, path)
    if method not in (known := methods.names(params.run.teachers, params.methods)):
        raise InputError(f"command line: unknown method {method!r}; expected one of {known}")
    settings = methods.check(params, [method], path)[method]
    if not (seed.isascii() and seed.isdigit()) or int(seed) > 2**32 - 1:  # numpy's and torch's seed range
        raise InputError(f"seed must be an integer from 0 to 2**32 - 1, got {seed!r}")
    return int(seed), settings


@dataclass
class Distilled:
    """A trained student, at its best epoch on dev, and the record of its training."""

    model: torch.nn.Module
    history: list[dict]  # per epoch: loss, dev accuracy, speed, and the method's own figures (end_epoch)
    dev_accuracy: float
    test_logits: torch.Tensor
    train_seconds: float
    infer_seconds: float
    weight_sum: torch.Tensor  # [N, K]: each training instance's teacher weights, summed over epochs
    rows: np.ndarray  # the training rows the student trained on (train less the held-out slice)
    static: torch.Tensor | None  # a method's one weight per teacher, where it has one
    extra: Extra  # what the method writes beyond these (Weighting.extra)
    setting: Distill  # the `distill` setting it trained with (a grid's best point on dev)
    method_settings: BaseModel  # its method's own settings (`methods.NAME`)
    grid: list[dict] = field(default_factory=list)  # every grid point's dev accuracy (empty without a grid)


def start(params: Params, cfg: Distill, data: TaskData, method: str, settings, seed: int, acc=None) -> Run:
    """A student run before its first step: the student, its tokenised splits, its rows, optimiser and schedule."""
    teachers, splits, gold, cache = params.run.teachers, data.splits, data.gold, data.cache
    training.seed_everything(seed)
    train = splits["train"]
    model, tokenizer = models.build_student(params, list(train.text_a) + list(train.text_b.dropna()), len(data.labels))
    model.to(compute.device(acc))
    pad = tokenizer.pad_token_id
    segments = models.uses_token_types(model.encoder)
    enc = {s: training.encode(tokenizer, df, params.student.max_length, segments) for s, df in splits.items()}
    # every method's student trains on the same rows; the held-out slice is RL-KD's for its rewards
    rows, held_out = student_rows(len(train), cfg.held_out_fraction, params.seed)
    optimizer, scheduler = training.optimiser(model, cfg, len(rows))
    workers = params.compute.loader_workers

    def dev_accuracy() -> float:
        logits = training.predict(model, enc["dev"], cfg.eval_batch_size, pad, "dev", acc, workers)[0]
        return training.accuracy(logits, gold["dev"])

    return Run(
        method=method, teachers=teachers, settings=settings, cfg=cfg, seed=seed, rng=np.random.default_rng(seed),
        model=model, enc=enc, pad=pad, gold=gold, cache=cache, teacher_logits=cache["train"]["logits"].to(
        compute.device(acc)), rows=rows, held_out=held_out, optimizer=optimizer, scheduler=scheduler,
        weight_sum=torch.zeros(len(train), len(teachers)), dev_accuracy=dev_accuracy, acc=acc, workers=workers,
    )  # fmt: skip


def fit(run: Run, weighting: Weighting) -> Distilled:
    """Train the run's student, epoch by epoch as the method's schedule gives them; return it at its best epoch on
    dev (the first of ties)."""
    model, cfg, acc, labels, device = run.model, run.cfg, run.acc, run.gold["train"], compute.device(run.acc)
    history, best, best_state, began = [], -1.0, None, time.perf_counter()
    for epoch in weighting.schedule(run):
        model.train()
        total, seen, tic = 0.0, 0, time.perf_counter()
        order = training.training_batches(run.rows, run.enc["train"], cfg.batch_size, run.rng, cfg.group_by_length)
        loaded = training.batches(device, run.enc["train"], order, run.pad, run.workers, cfg.forward_pieces)
        for step, (idx, batch) in enumerate(training.progress(loaded, epoch.desc, total=len(order)), 1):
            weighting.before_update(idx)  # the student before its update, for a method that measures it
            with compute.autocast(acc):
                logits, pooled = training.forward(model, batch)
            logits, pooled = logits.float(), pooled.float()
            w = fill_empty(weighting.weigh(idx, logits.detach().cpu()), weighting.fill).to(device)
            loss = student_loss(
                logits, labels[idx].to(device), run.teacher_logits[idx], w, cfg.alpha, cfg.temperature, cfg.t2_scaling
            )
            value = training.finite(loss, epoch.desc, step)
            run.optimizer.zero_grad(set_to_none=True)
            compute.backward(acc, loss)
            compute.clip_grad_norm(acc, model.parameters(), 1.0)
            run.optimizer.step()
            (epoch.scheduler or run.scheduler).step()
            weighting.after_update(idx, logits.detach(), pooled.detach())
            run.weight_sum[idx] += w.cpu()
            total, seen = total + value * len(idx), seen + len(idx)
        seconds = time.perf_counter() - tic
        epoch.stats = {"train_loss": total / seen, "seconds": seconds, "examples_per_s": seen / seconds}
        epoch.stats |= weighting.end_epoch()
        if epoch.number is None:  # a pass outside the run's epochs (a method's phase): not scored
            continue
        epoch.stats.update(epoch=epoch.number, dev_accuracy=run.dev_accuracy())
        history.append(epoch.stats)
        print(f"  epoch {epoch.number}: loss {total / seen:.4f}, dev accuracy {history[-1]['dev_accuracy']:.4f}")
        if history[-1]["dev_accuracy"] > best:
            best, best_state = history[-1]["dev_accuracy"], copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    train_seconds, tic = time.perf_counter() - began, time.perf_counter()
    test_logits, _ = training.predict(model, run.enc["test"], cfg.eval_batch_size, run.pad, "test", acc, run.workers)
    infer_seconds = time.perf_counter() - tic
    return Distilled(
        model=model, history=history, dev_accuracy=best, test_logits=test_logits, train_seconds=train_seconds,
        infer_seconds=infer_seconds, weight_sum=run.weight_sum, rows=run.rows, static=weighting.static,
        extra=weighting.extra(run), setting=cfg, method_settings=run.settings,
    )  # fmt: skip


def distill(params: Params, data: TaskData, method: str, seed: int, settings=None, acc=None) -> Distilled:
    """Distil the teachers of `data` into a student with `method` (its settings: `methods.check`'s, by default
    those of params.yaml): with `distill.grid`, one student per grid point from the same seed, the best on dev
    kept (and every point's dev accuracy in its `grid`)."""
    cfg = params.distill
    settings = methods.check(params, [method])[method] if settings is None else settings
    best, grid = None, []
    for point in cfg.points():
        run = start(params, point, data, method, settings, seed, acc)
        print(
            f"distill: {method} on {data.task}, seed {seed}: student {models.count_parameters(run.model) / 1e6:.2f} M "
            f"parameters, {len(run.rows)} training examples, teachers {run.teachers}",
            flush=True,
        )
        student = fit(run, methods.load(method, params.methods).weighting(run))
        grid.append({**point.point_label(cfg), "dev_accuracy": student.dev_accuracy})
        if best is None or student.dev_accuracy > best.dev_accuracy:
            best = student
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
        **student.extra.metrics,
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
    """The run's folder, written whole or not at all: history, test predictions, the teachers' mean weights per
    training instance, metrics, and what the method adds to them (Weighting.extra)."""
    teachers, history, test, extra = params.run.teachers, student.history, data.splits["test"], student.extra
    mean_w = student.weight_sum / student.setting.epochs
    columns = {"id": data.splits["train"].id, **{t: mean_w[:, k].numpy() for k, t in enumerate(teachers)}}
    columns |= extra.columns
    metrics = record(params, data, method, seed, student, acc)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        keys = list(dict.fromkeys(k for h in history for k in h))  # DVC's plots need the same keys in every row
        write_json(tmp / "history.json", [{k: h.get(k) for k in keys} for h in history])
        for name, rows in extra.files.items():
            write_json(tmp / name, rows)
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
    params = load(params_path).for_task(task)  # the task's own overrides, if any (tasks.TASK.overrides)
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
