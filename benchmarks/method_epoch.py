"""Benchmark: an epoch of each adaptive weighting (RL-KD, CA-MKD, AE-KD, MTKD-RL) versus an equal-weight KD epoch.

All are `pipeline.training.train_epoch` with `pipeline.distill.Teaching`, on the embedded default's student
and the same synthetic batches, in one process, the order rotated every round so that the ratios hold on a
noisy machine. RL-KD's epoch includes its reward and policy updates, MTKD-RL's its agent's end-of-epoch training.
Usage: python -m benchmarks.method_epoch [--examples N] [--rounds R]   (target: every ratio <= 1.5)
"""

from __future__ import annotations

import argparse
import json
import time
from types import SimpleNamespace

import numpy as np
import torch
from transformers import get_constant_schedule

from pipeline import methods
from pipeline import schema as P
from pipeline.distill import Teaching
from pipeline.task_data import student_rows
from pipeline.training import Loop, train_epoch

from . import student

ADAPTIVE = ("rl_kd", "ca_mkd", "ae_kd", "mtkd_rl")


def synthetic(n: int, teachers: int, length: int, rng) -> tuple[dict, torch.Tensor, dict]:
    """Token ids of varied length, labels, and a teacher cache shaped like pipeline.distill.load_teachers'."""
    lengths = rng.integers(length // 2, length + 1, n)
    enc = {"input_ids": [rng.integers(5, 8000, k).tolist() for k in lengths]}
    enc["attention_mask"] = [[1] * k for k in lengths]
    labels = torch.tensor(rng.integers(0, 2, n))
    logits = torch.randn(n, teachers, 2)
    probs = logits.softmax(-1)
    ce = -probs.gather(-1, labels[:, None, None].expand(n, teachers, 1)).squeeze(-1).log()
    pooled = [torch.randn(n, h) for h in (768, 384, 384, 384)[:teachers]]  # the embedded default's teachers' widths
    return enc, labels, {"logits": logits, "probs": probs, "ce": ce, "pooled": pooled}


def measure(examples: int = 640, rounds: int = 5, teachers: int = 3, length: int = 40) -> dict:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    enc, labels, cache = synthetic(examples, teachers, length, rng)
    cfg = P.Distill()
    model = student.build()  # the embedded default's student's shape
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scheduler = get_constant_schedule(optimizer)
    names = [f"t{k}" for k in range(teachers)]

    # every method on the same rows, train less the held-out slice that RL-KD's rewards read (as distill.fit)
    rows, held_out = student_rows(examples, cfg.held_out_fraction, 0)

    def build(name: str) -> methods.Weighting:  # as pipeline.distill.fit builds a method, with its defaults
        method = methods.load(name)
        context = methods.Context(
            method=name, teachers=names, cache={"train": cache}, gold={"train": labels}, cfg=cfg,
            settings=method.settings(), rng=rng, seed=0, params=SimpleNamespace(seed=0), model=model, enc=enc,
            pad=0, num_labels=2, teacher_logits=cache["logits"], held_out=held_out,
        )  # fmt: skip
        return method.weighting(context)

    weightings = {m: build(m) for m in ("u_ensemble", *ADAPTIVE)}
    weightings["mtkd_rl"].epoch = 2  # past its warm-up: the agent weighs every batch
    weightings["rl_kd"].active = True  # past its warm-up: the agent selects for every batch
    weight_sum = torch.zeros(examples, teachers)
    loop = Loop(enc, rows, cfg.batch_size, 0, rng, optimizer, scheduler, pieces=cfg.forward_pieces)

    def epoch(method: str) -> float:
        start = time.perf_counter()
        train_epoch(model, loop, Teaching(labels, cache["logits"], weightings[method], cfg, weight_sum), "bench")
        return time.perf_counter() - start

    order = ["u_ensemble", *ADAPTIVE]
    epoch("u_ensemble")  # warm-up, not timed
    times = {m: [] for m in order}
    for r in range(rounds):
        for method in order[r % len(order) :] + order[: r % len(order)]:  # rotate the order to cancel drift
            times[method].append(epoch(method))
    kd = float(np.median(times["u_ensemble"]))
    out = {
        "kd_epoch_s": round(kd, 3),
        "target": "<= 1.5",
        "examples": examples,
        "rounds": rounds,
        "teachers": teachers,
        "methods": {},
    }
    for m in ADAPTIVE:
        s = float(np.median(times[m]))
        ratio = round(s / kd, 3)  # judged as reported: 1.5004 is shown, and met, as 1.5
        out["methods"][m] = {"epoch_s": round(s, 3), "ratio": ratio, "met": ratio <= 1.5}
    out["met"] = all(v["met"] for v in out["methods"].values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=640)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--teachers", type=int, default=3)
    ap.add_argument("--length", type=int, default=40)
    args = ap.parse_args()
    print(json.dumps(measure(args.examples, args.rounds, args.teachers, args.length), indent=2))


if __name__ == "__main__":
    main()
