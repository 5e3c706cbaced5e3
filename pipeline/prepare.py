"""Stage `prepare`: build one task's train/dev/test Parquet files and its task card.

Usage: python -m pipeline.prepare TASK   (writes data/TASK/)
"""
from __future__ import annotations

import sys
from pathlib import Path

from . import data, params as P
from .io import atomic_path, provenance, write_json


def card(name: str, splits: dict, labels: list[str], source: str) -> dict:
    def words(df):
        n = df.text_a.str.split().str.len()
        if df.text_b.notna().any():
            n = n + df.text_b.fillna("").str.split().str.len()
        return {"median": float(n.median()), "max": int(n.max())}

    return {
        "task": name,
        "labels": labels,
        "pair": bool(any(df.text_b.notna().any() for df in splits.values())),
        "source": source,
        "sizes": {s: len(df) for s, df in splits.items()},
        "groups": {s: int(df.group.nunique()) for s, df in splits.items()},
        "class_balance": {s: {labels[k]: int(v) for k, v in df.label.value_counts().sort_index().items()}
                          for s, df in splits.items()},
        "words_per_example": {s: words(df) for s, df in splits.items()},
        "split_sha256": {s: data.split_hash(df) for s, df in splits.items()},
    }


def main(task: str, params_path: str = "params.yaml") -> None:
    params = P.load(params_path)
    if task not in params.tasks:
        raise P.InputError(f"unknown task {task!r}; tasks defined in params.yaml: {sorted(params.tasks)}")
    spec = params.tasks[task]
    splits, labels, source = data.build(task, spec, Path(params.assets.dir), params.seed)
    info = card(task, splits, labels, source)
    info["provenance"] = provenance(params.seed, spec.model_dump())
    with atomic_path(Path("data") / task) as out:
        out.mkdir()
        for s, df in splits.items():
            df.to_parquet(out / f"{s}.parquet", index=False)
        write_json(out / "card.json", info)
    sizes = ", ".join(f"{s} {n}" for s, n in info["sizes"].items())
    print(f"prepare: {task}: {sizes}; labels {labels}; written to data/{task}/")


if __name__ == "__main__":
    with P.reported_errors():
        main(*sys.argv[1:])
