"""Benchmark: a KD training step from cached teacher logits versus a `ce` step of the same student.

Both run side by side in one process on the same batches, so the ratio holds on a noisy machine.
Usage: python -m benchmarks.kd_step [--steps N] [--teachers K]   (target: ratio <= 1.10)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from pipeline.losses import student_loss

from . import student


def step(model, optimizer, batch, labels, teacher_logits, weights, kd: bool) -> None:
    logits, _ = model(**batch)
    if kd:
        loss = student_loss(logits, labels, teacher_logits, weights, 0.5, 5.0, True)
    else:
        loss = torch.nn.functional.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def measure(steps: int = 60, teachers: int = 3, batch: int = 32, length: int = 32) -> dict:
    torch.manual_seed(0)
    model = student.build()  # the embedded default's student's shape
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    n = 2048
    cache_logits = torch.randn(n, teachers, 2)  # stands for the cached teacher logits
    rng = np.random.default_rng(0)
    times = {"ce": [], "kd": []}
    for i in range(steps + 5):
        idx = rng.choice(n, batch, replace=False)
        inputs = {
            "input_ids": torch.randint(5, 8000, (batch, length)),
            "attention_mask": torch.ones(batch, length, dtype=torch.long),
        }
        labels = torch.randint(0, 2, (batch,))
        weights = torch.full((batch, teachers), 1.0 / teachers)
        for kind in ("ce", "kd") if i % 2 else ("kd", "ce"):  # alternate the order to cancel drift
            start = time.perf_counter()
            step(model, optimizer, inputs, labels, cache_logits[idx], weights, kd=kind == "kd")
            if i >= 5:  # warm-up steps are not timed
                times[kind].append(time.perf_counter() - start)
    ce, kd = float(np.median(times["ce"])), float(np.median(times["kd"]))
    ratio = round(kd / ce, 3)  # judged as reported
    return {
        "ce_step_ms": round(ce * 1e3, 2),
        "kd_step_ms": round(kd * 1e3, 2),
        "ratio": ratio,
        "target": "<= 1.10",
        "met": ratio <= 1.10,
        "steps": steps,
        "teachers": teachers,
        "batch": batch,
        "length": length,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--teachers", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=32)
    args = ap.parse_args()
    print(json.dumps(measure(args.steps, args.teachers, args.batch, args.length), indent=2))


if __name__ == "__main__":
    main()
