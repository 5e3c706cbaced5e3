"""Stage `distill`: train the student on one task with one teacher-weighting method and one seed.

Usage: python -m pipeline.distill TASK METHOD SEED   (writes runs/TASK/METHOD/SEED/)
The teachers' outputs come from the logit cache only: no teacher forward pass runs here.
"""
from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import get_linear_schedule_with_warmup

from . import data, logits, methods, models, params as P, training as T
from .assets import load_manifest
from .io import atomic_path, provenance, write_json
from .losses import student_loss


def resolve(params: P.Params, task: str, method: str, seed: str) -> int:
    """Check the names a run needs before anything is loaded or trained."""
    if task not in params.tasks:
        raise P.InputError(f"unknown task {task!r}; tasks defined in params.yaml: {sorted(params.tasks)}")
    allowed = list(P.METHODS) + [f"single_{t}" for t in params.run.teachers]
    if method not in allowed:
        raise P.InputError(f"unknown method {method!r}; expected one of {allowed}")
    try:
        return int(seed)
    except ValueError:
        raise P.InputError(f"seed must be an integer, got {seed!r}") from None


def load_teachers(task: str, teachers: list[str], splits: dict) -> dict:
    """Stack the cached outputs of all teachers: logits [N, K, C], ce [N, K], pooled: one [N, H_k] per teacher."""
    out = {}
    for split, df in splits.items():
        cached = [logits.load(Path("logits") / task / t / f"{split}.safetensors", df) for t in teachers]
        out[split] = {"logits": torch.stack([c["logits"] for c in cached], 1),
                      "ce": torch.stack([c["ce"] for c in cached], 1),
                      "pooled": [c["pooled"] for c in cached]}
    return out


def build_student(params: P.Params, texts: list[str], num_labels: int):
    spec = params.student
    manifest = load_manifest(params.assets.dir) if spec.source == "asset" else None
    encoder, tokenizer = models.pretrained_encoder("student", spec, manifest, texts)
    if spec.layers is not None:
        stack = encoder.encoder.layer
        if spec.layers > len(stack):
            raise P.InputError(f"student.layers: {spec.layers} is more than the encoder's {len(stack)} layers")
        encoder.encoder.layer = stack[:spec.layers]
        encoder.config.num_hidden_layers = spec.layers
    return models.Classifier(encoder, num_labels, spec.pooling), tokenizer


def fallback(weigh, k: int, no_teacher: str):
    """Give an instance that no teacher was chosen for equal weights, when so configured."""
    if no_teacher == "ce":
        return weigh

    def weigh_or_equal(idx):
        w = weigh(idx)
        empty = w.sum(-1, keepdim=True) == 0
        return torch.where(empty, torch.full_like(w, 1.0 / k), w)
    return weigh_or_equal


def train_epoch(model, enc, labels, teacher_logits, weigh, cfg: P.Distill, optimizer, scheduler, pad, rng,
                weight_sum, desc):
    model.train()
    total, seen, start = 0.0, 0, time.perf_counter()
    bar = T.progress(T.chunks(rng.permutation(len(labels)), cfg.batch_size), desc)
    for idx in bar:
        w = weigh(idx)
        student_logits, _ = model(**T.collate(enc, idx, pad))
        loss = student_loss(student_logits, labels[idx], teacher_logits[idx], w, cfg.alpha, cfg.temperature,
                            cfg.t2_scaling)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        weight_sum[idx] += w
        total += loss.item() * len(idx)
        seen += len(idx)
        bar.set_postfix(loss=f"{total / seen:.4f}", refresh=False)
    seconds = time.perf_counter() - start
    return {"train_loss": total / seen, "seconds": seconds, "examples_per_s": seen / seconds}


def main(task: str, method: str, seed: str, params_path: str = "params.yaml") -> None:
    params = P.load(params_path)
    seed = resolve(params, task, method, seed)
    cfg, teachers = params.distill, params.run.teachers
    card_path = Path("data") / task / "card.json"
    if not card_path.is_file():
        raise P.InputError(f"{card_path}: task not prepared; run `dvc repro prepare@{task}` first")
    splits = {s: data.load_split(Path("data") / task, s) for s in data.SPLITS}
    splits["train"] = data.cap(splits["train"], cfg.max_train, params.seed)
    cache = load_teachers(task, teachers, splits)
    gold = {s: torch.tensor(df.label.to_numpy()) for s, df in splits.items()}
    labels = pd.read_json(card_path, typ="series")["labels"]

    T.seed_everything(seed)
    rng = np.random.default_rng(seed)
    train = splits["train"]
    model, tokenizer = build_student(params, list(train.text_a) + list(train.text_b.dropna()), len(labels))
    pad = tokenizer.pad_token_id
    enc = {s: T.encode(tokenizer, df, params.student.max_length) for s, df in splits.items()}
    weigh, static = methods.build(method, teachers, cache["train"], cache["dev"], gold["dev"], cfg.fixed_weights, rng)
    weigh = fallback(weigh, len(teachers), cfg.no_teacher) if method != "ce" else weigh
    teacher_logits = cache["train"]["logits"]

    steps = cfg.epochs * -(-len(train) // cfg.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps), steps)
    weight_sum = torch.zeros(len(train), len(teachers))
    print(f"distill: {method} on {task}, seed {seed}: student {models.count_parameters(model) / 1e6:.2f} M "
          f"parameters, {len(train)} training examples, teachers {teachers}", flush=True)
    history, best, best_state, start = [], -1.0, None, time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        stats = train_epoch(model, enc["train"], gold["train"], teacher_logits, weigh, cfg, optimizer, scheduler, pad,
                            rng, weight_sum, f"{method} epoch {epoch}")
        dev_logits, _ = T.predict(model, enc["dev"], cfg.eval_batch_size, pad, desc="dev")
        stats.update(epoch=epoch, dev_accuracy=T.accuracy(dev_logits, gold["dev"]))
        history.append(stats)
        print(f"  epoch {epoch}: loss {stats['train_loss']:.4f}, dev accuracy {stats['dev_accuracy']:.4f}", flush=True)
        if stats["dev_accuracy"] > best:
            best, best_state = stats["dev_accuracy"], copy.deepcopy(model.state_dict())
    train_seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    t0 = time.perf_counter()
    test_logits, _ = T.predict(model, enc["test"], cfg.eval_batch_size, pad, desc="test")
    infer_seconds = time.perf_counter() - t0

    mean_w = weight_sum / cfg.epochs
    out = Path("runs") / task / method / str(seed)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        write_json(tmp / "history.json", history)
        probs = test_logits.softmax(-1).numpy()
        preds = pd.DataFrame({"id": splits["test"].id, "label": gold["test"].numpy(), "pred": probs.argmax(-1),
                              **{f"prob_{c}": probs[:, i] for i, c in enumerate(labels)}})
        preds.to_parquet(tmp / "predictions.parquet", index=False)
        pd.DataFrame({"id": train.id, **{t: mean_w[:, k].numpy() for k, t in enumerate(teachers)}}).to_parquet(
            tmp / "weights.parquet", index=False)
        write_json(tmp / "metrics.json", {
            "task": task, "method": method, "seed": seed, "dev_accuracy": best,
            "test_accuracy": T.accuracy(test_logits, gold["test"]),
            "best_epoch": max(history, key=lambda h: h["dev_accuracy"])["epoch"],
            "train_seconds": train_seconds,
            "train_examples_per_s": sum(h["examples_per_s"] for h in history) / len(history),
            "student_parameters": models.count_parameters(model),
            "student_inference_examples_per_s": len(splits["test"]) / infer_seconds,
            "teacher_weights": {t: float(mean_w[:, k].mean()) for k, t in enumerate(teachers)},
            "static_weights": None if static is None else {t: float(static[k]) for k, t in enumerate(teachers)},
            "provenance": provenance(seed, {"student": params.student.model_dump(), "distill": cfg.model_dump(),
                                            "teachers": teachers, "data_seed": params.seed}),
        })
    print(f"distill: {method} on {task}, seed {seed}: dev {best:.4f}, test "
          f"{T.accuracy(test_logits, gold['test']):.4f}, {train_seconds:.0f} s", flush=True)


if __name__ == "__main__":
    with P.reported_errors():
        main(*sys.argv[1:])
