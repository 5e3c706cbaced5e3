"""Stage `prepare`: build one task's train/dev/test Parquet files and its task card.

Usage: python -m pipeline.prepare TASK   (writes data/TASK/)
"""
from __future__ import annotations

import sys
from pathlib import Path

from . import data, params as P
from .io import atomic_path, provenance, write_json


LONG = (64, 128, 256, 512)  # the max_length values in use; a word is at least one token


def word_counts(df):
    n = df.text_a.str.split().str.len()
    if df.text_b.notna().any():
        n = n + df.text_b.fillna("").str.split().str.len()
    return n


def duplicates(splits: dict) -> dict:
    """Examples of dev and test whose text (pair) also occurs in train, and repeats within each split."""
    def texts(df):
        return df.text_a + "\x1f" + df.text_b.fillna("")

    train = set(texts(splits["train"]))
    return {"in_train": {s: int(texts(splits[s]).isin(train).sum()) for s in ("dev", "test")},
            "within_split": {s: int(texts(df).duplicated().sum()) for s, df in splits.items()}}


def card(name: str, splits: dict, labels: list[str], source: str, dropped: dict | None = None) -> dict:
    def words(df):
        n = word_counts(df)
        return {"median": float(n.median()), "max": int(n.max())}

    return {
        "task": name,
        "labels": labels,
        "pair": bool(any(df.text_b.notna().any() for df in splits.values())),
        "source": source,
        "sizes": {s: len(df) for s, df in splits.items()},
        # several evaluation sets in one test split (MNLI-m and -mm): their sizes; the analysis reports each
        **({"eval_sets": splits["test"].eval_set.value_counts(sort=False).to_dict()}
           if "eval_set" in splits["test"].columns else {}),
        "groups": {s: int(df.group.nunique()) for s, df in splits.items()},
        "class_balance": {s: {labels[k]: int(v) for k, v in df.label.value_counts().sort_index().items()}
                          for s, df in splits.items()},
        "words_per_example": {s: words(df) for s, df in splits.items()},
        # examples longer than N words: truncated by any model whose max_length is N (each teacher's
        # metrics.json counts exactly how many of its training examples it truncated)
        "examples_over_words": {str(k): {s: int((word_counts(df) > k).sum()) for s, df in splits.items()}
                                for k in LONG},
        "duplicate_texts": duplicates(splits),
        "empty_texts_dropped": dropped or {},
        "split_sha256": {s: data.split_hash(df) for s, df in splits.items()},
    }


def main(task: str, params_path: str = "params.yaml") -> None:
    params = P.load(params_path)
    if task not in params.tasks:
        raise P.InputError(f"unknown task {task!r}; tasks defined in params.yaml: {sorted(params.tasks)}")
    spec = params.tasks[task]
    splits, labels, source, dropped = data.build(task, spec, Path(params.assets.dir), params.seed)
    info = card(task, splits, labels, source, dropped)
    info["provenance"] = provenance(params.seed, spec.model_dump(), machine=False)
    with atomic_path(Path("data") / task) as out:
        out.mkdir()
        for s, df in splits.items():
            df.to_parquet(out / f"{s}.parquet", index=False)
        write_json(out / "card.json", info)
    sizes = ", ".join(f"{s} {n}" for s, n in info["sizes"].items())
    print(f"prepare: {task}: {sizes}; labels {labels}; written to data/{task}/")
    dup = info["duplicate_texts"]["in_train"]
    if any(dup.values()):  # reported, not removed: the same text may carry another label, or be a real repeat
        print(f"prepare: {task}: texts also in train: dev {dup['dev']}, test {dup['test']} (card.json, "
              "duplicate_texts)")
    if any(info["empty_texts_dropped"].values()):
        print(f"prepare: {task}: rows with an empty text dropped: {info['empty_texts_dropped']}")


if __name__ == "__main__":
    with P.reported_errors():
        main(*sys.argv[1:])
