"""Stage `cache`: run one fine-tuned teacher once over train and dev and store its outputs.

Usage: python -m pipeline.cache TASK TEACHER   (writes logits/TASK/TEACHER/)
Distillation then reads these files and never runs a teacher forward pass.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from . import compute, data, logits, models, training
from . import params as P
from .io import atomic_path, provenance, write_json


def main(task: str, teacher: str, params_path: str = "params.yaml") -> None:
    params = P.load(params_path)
    for kind, name in (("tasks", task), ("teachers", teacher)):
        if name not in getattr(params, kind):
            raise P.InputError(f"unknown {kind[:-1]} {name!r}; defined in params.yaml: {sorted(getattr(params, kind))}")
    spec = params.teachers[teacher]
    acc = compute.from_params(params.compute)
    model, tokenizer, meta = models.load(Path("models") / task / teacher / "model")
    model.to(acc.device)
    splits = {s: data.load_split(Path("data") / task, s) for s in logits.SPLITS}
    summary = {"task": task, "teacher": teacher, "splits": {}}
    with atomic_path(Path("logits") / task / teacher) as out:
        out.mkdir()
        for split, df in splits.items():
            start = time.perf_counter()
            enc = training.encode(tokenizer, df, meta["max_length"], models.uses_token_types(model.encoder))
            out_logits, pooled = training.predict(
                model,
                enc,
                spec.eval_batch_size,
                tokenizer.pad_token_id,
                f"{teacher} {split}",
                acc,
                params.compute.loader_workers,
            )
            seconds = time.perf_counter() - start
            labels = torch.tensor(df.label.to_numpy())
            logits.save(
                out / f"{split}.safetensors", df, logits.tensors(out_logits, pooled, labels), task=task, teacher=teacher
            )
            # no timings in the folder: the same model gives the same bytes, so a rerun leaves distill untouched
            summary["splits"][split] = {
                "examples": len(df),
                "accuracy": training.accuracy(out_logits, labels),
                **data.by_eval_set("accuracy", df, out_logits, labels),
            }
            print(
                f"cache: {teacher} on {task}/{split}: {len(df)} examples, accuracy "
                f"{summary['splits'][split]['accuracy']:.4f}, {len(df) / seconds:.0f} examples/s",
                flush=True,
            )
        summary["provenance"] = provenance(params.seed, compute=compute.describe(acc), machine=False)
        write_json(out / "summary.json", summary)


if __name__ == "__main__":
    with P.reported_errors():
        main(*sys.argv[1:])
