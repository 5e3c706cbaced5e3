"""Benchmark: a student training step on shuffled batches, whole or in length-sorted pieces, against
length-grouped batches, on the embedded default's student and `rt`'s training split.

Every variant runs on the same shuffled batches (grouped: its own batches from the same rows), in
turn, step by step, so that the ratios hold on a noisy machine. Needs `dvc repro prepare` (data/rt)
and the assets. Usage: python -m benchmarks.pieces [--steps N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pipeline import models, splits, training
from pipeline import schema as P

VARIANTS = {"shuffled": 1, "shuffled, 2 pieces": 2, "shuffled, 4 pieces": 4, "shuffled, 8 pieces": 8}


def measure(steps: int = 40, task: str = "rt") -> dict:
    params = P.load("params.yaml")
    cfg = params.distill
    train = splits.load_split(Path("data") / task, "train")
    training.seed_everything(0)
    model, tokenizer = models.build_student(params, list(train.text_a), 2)
    enc = training.encode(tokenizer, train, params.student.max_length, models.uses_token_types(model.encoder))
    labels = torch.tensor(train.label.to_numpy())
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(0)
    rows = np.arange(len(train))
    shuffled = training.training_batches(rows, enc, cfg.batch_size, rng, by_length=False)[:steps]
    grouped = training.training_batches(rows, enc, cfg.batch_size, rng, by_length=True)[:steps]
    pad = tokenizer.pad_token_id
    runs = {
        name: list(training.batches(torch.device("cpu"), enc, shuffled, pad, pieces=n)) for name, n in VARIANTS.items()
    }
    runs["grouped by length"] = list(training.batches(torch.device("cpu"), enc, grouped, pad))
    times = {name: [] for name in runs}
    tokens = {
        name: sum(b["input_ids"].numel() for _, batch in run for b in (batch if isinstance(batch, list) else [batch]))
        for name, run in runs.items()
    }
    model.train()
    for i in range(steps):
        for name in list(runs) if i % 2 else list(runs)[::-1]:  # alternate the order to cancel drift
            idx, batch = runs[name][i]
            start = time.perf_counter()
            logits, _ = training.forward(model, batch)
            loss = F.cross_entropy(logits, labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if i >= 3:  # warm-up steps are not timed
                times[name].append(time.perf_counter() - start)
    base = float(np.median(times["shuffled"]))
    real = sum(len(enc["input_ids"][j]) for idx in shuffled for j in idx)
    return {
        "steps": steps,
        "batch_size": cfg.batch_size,
        "real_tokens_share": round(real / tokens["shuffled"], 3),
        "variants": {
            name: {
                "step_ms": round(float(np.median(t)) * 1e3, 1),
                "ratio_to_shuffled": round(float(np.median(t)) / base, 3),
                "padded_tokens": tokens[name],
            }
            for name, t in times.items()
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    result = measure(ap.parse_args().steps)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
