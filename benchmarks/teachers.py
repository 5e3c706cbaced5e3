"""Benchmarks on the embedded default's fine-tuned teachers (models/TASK/TEACHER, from `dvc repro`).

`online`: a distillation step that reads the teachers' logits from the cache versus one that runs
the teachers on the same batch first (what distillation would cost without the cache stage).
`caching`: the cache stage's own path (tokenise, length-sorted batches, forward, gather, write the
safetensors file) versus a bare forward pass of the same model over the same batches.
Both alternate their two variants in one process, so that the ratios hold on a noisy machine.
Usage: python -m benchmarks.teachers [--task rt]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pipeline import logits, models, splits, training
from pipeline import schema as P
from pipeline.losses import student_loss
from pipeline.params_file import reported_errors


def fine_tuned(task: str, teacher: str):
    folder = Path("models") / task / teacher / "model"
    if not folder.is_dir():
        raise P.InputError(
            f"{folder}: not found; the teacher benchmarks use the embedded default's fine-tuned "
            f"teachers: run `dvc repro` first"
        )
    return models.load(folder)


def online(task: str = "rt", steps: int = 12, params_path: str = "params.yaml") -> dict:
    params = P.load(params_path)
    teachers = params.run.teachers
    train = splits.students_train(
        splits.load_split(Path("data") / task, "train"), params.distill.max_train, params.seed
    )
    loaded = {t: fine_tuned(task, t) for t in teachers}
    cache = {t: logits.load(Path("logits") / task / t / "train.safetensors", train)["logits"] for t in teachers}
    training.seed_everything(0)
    student, tokenizer = models.build_student(
        params, list(train.text_a) + list(train.text_b.dropna()), cache[teachers[0]].shape[-1]
    )
    optimizer = torch.optim.AdamW(student.parameters(), lr=params.distill.lr)
    enc = training.encode(tokenizer, train, params.student.max_length)
    # each teacher reads the text through its own tokenizer, tokenised once up front as the cache stage does
    teacher_enc = {t: training.encode(tok, train, meta["max_length"]) for t, (_, tok, meta) in loaded.items()}
    rng = np.random.default_rng(0)
    cfg, times = params.distill, {"cached": [], "online": []}

    def step(idx, teacher_logits):
        out, _ = student(**training.collate(enc, idx, tokenizer.pad_token_id))
        w = torch.full((len(idx), len(teachers)), 1.0 / len(teachers))
        loss = student_loss(
            out,
            torch.tensor(train.label.to_numpy()[idx]),
            teacher_logits,
            w,
            cfg.alpha,
            cfg.temperature,
            cfg.t2_scaling,
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def run_teachers(idx):
        with torch.inference_mode():
            return torch.stack(
                [
                    model(**training.collate(teacher_enc[t], idx, tok.pad_token_id))[0]
                    for t, (model, tok, _) in loaded.items()
                ],
                1,
            )

    student.train()
    for i in range(steps + 2):
        idx = rng.choice(len(train), cfg.batch_size, replace=False)
        for kind in ("cached", "online") if i % 2 else ("online", "cached"):
            start = time.perf_counter()
            step(idx, run_teachers(idx) if kind == "online" else torch.stack([cache[t][idx] for t in teachers], 1))
            if i >= 2:
                times[kind].append(time.perf_counter() - start)
    cached, on = float(np.median(times["cached"])), float(np.median(times["online"]))
    return {
        "task": task,
        "teachers": teachers,
        "cached_step_ms": round(cached * 1e3, 1),
        "online_step_ms": round(on * 1e3, 1),
        "speedup": round(on / cached, 1),
        "steps": steps,
        "batch": cfg.batch_size,
    }


def caching(task: str = "rt", teacher: str = "minilm_l6", rounds: int = 3, params_path: str = "params.yaml") -> dict:
    params = P.load(params_path)
    model, tokenizer, meta = fine_tuned(task, teacher)
    split = splits.load_split(Path("data") / task, "train")
    size, pad = params.teachers[teacher].eval_batch_size, tokenizer.pad_token_id
    pre = training.encode(tokenizer, split, meta["max_length"])
    batches = [training.collate(pre, idx, pad) for idx in training.chunks(training.length_order(pre), size)]

    def stage_path():  # what pipeline/cache.py does for one split
        enc = training.encode(tokenizer, split, meta["max_length"])
        out, pooled = training.predict(model, enc, size, pad, "cache")
        with tempfile.TemporaryDirectory() as tmp:
            logits.save(
                Path(tmp) / "train.safetensors",
                split,
                logits.tensors(out, pooled, torch.tensor(split.label.to_numpy())),
                task=task,
                teacher=teacher,
            )

    @torch.inference_mode()
    def bare():
        for batch in batches:
            model(**batch)

    bare()  # warm-up
    times = {"cache": [], "bare": []}
    for r in range(rounds):
        for kind in ("cache", "bare") if r % 2 else ("bare", "cache"):
            start = time.perf_counter()
            stage_path() if kind == "cache" else bare()
            times[kind].append(time.perf_counter() - start)
    cache_s, bare_s = float(np.median(times["cache"])), float(np.median(times["bare"]))
    return {
        "task": task,
        "teacher": teacher,
        "examples": len(split),
        "cache_examples_per_s": round(len(split) / cache_s),
        "bare_forward_examples_per_s": round(len(split) / bare_s),
        "ratio": round(bare_s / cache_s, 3),
        "target": ">= 0.9",
        "met": bool(bare_s / cache_s >= 0.9),
        "rounds": rounds,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="rt")
    args = ap.parse_args()
    with reported_errors():
        print(json.dumps({"online": online(args.task), "caching": caching(args.task)}, indent=2))


if __name__ == "__main__":
    main()
