"""Benchmark: an epoch of each adaptive weighting (RL-KD, CA-MKD, AE-KD, MTKD-RL) versus an equal-weight KD epoch.

Each is a run of the training loop (`pipeline.distill.fit`) of two epochs on the embedded default's student's shape
and the same synthetic rows, in one process, the methods' order rotated every round so that the ratios hold on a
noisy machine; timed is the second epoch (the loop's own `seconds`), past every method's warm-up. RL-KD's epoch
includes its reward and policy updates, MTKD-RL's its agent's end-of-epoch training.
Usage: python -m benchmarks.method_epoch [--examples N] [--rounds R]   (target: every ratio <= 1.5)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json

import numpy as np
import torch
from transformers import get_constant_schedule

from pipeline import distill, methods
from pipeline import schema as P
from pipeline.methods.weighting import Run
from pipeline.task_data import student_rows

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


def run_of(name: str, enc: dict, labels: torch.Tensor, cache: dict, rows, held_out, seed: int) -> Run:
    """A run as pipeline.distill.start builds one, on the synthetic rows and a fresh student of the default's shape;
    RL-KD without pre-training, so that its second epoch is a joint one."""
    torch.manual_seed(seed)
    cfg = P.Distill(epochs=2)
    model = student.build()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    settings = methods.load(name).settings(**({"pretrain_epochs": 0} if name == "rl_kd" else {}))
    split = {"train": enc, "dev": enc, "test": enc}
    return Run(
        method=name, teachers=[f"t{k}" for k in range(cache["logits"].shape[1])], settings=settings, cfg=cfg,
        seed=seed, rng=np.random.default_rng(seed), model=model, enc=split, pad=0,
        gold={"train": labels, "dev": labels}, cache={"train": cache, "dev": cache}, teacher_logits=cache["logits"],
        rows=rows, held_out=held_out, optimizer=optimizer, scheduler=get_constant_schedule(optimizer),
        weight_sum=torch.zeros(len(labels), cache["logits"].shape[1]), dev_accuracy=lambda: 0.0,
    )  # fmt: skip


def measure(examples: int = 640, rounds: int = 5, teachers: int = 3, length: int = 40) -> dict:
    rng = np.random.default_rng(0)
    enc, labels, cache = synthetic(examples, teachers, length, rng)
    # every method on the same rows, train less the held-out slice that RL-KD's rewards read (as distill.start)
    rows, held_out = student_rows(examples, P.Distill().held_out_fraction, 0)

    def epoch(method: str) -> float:
        run = run_of(method, enc, labels, cache, rows, held_out, seed=0)
        with contextlib.redirect_stdout(io.StringIO()):  # the loop's log lines
            return distill.fit(run, methods.load(method).weighting(run)).history[1]["seconds"]

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
