"""Stage `prepare`: build one task's train/dev/test Parquet files and its task card.

Usage: python -m pipeline.prepare TASK   (writes data/TASK/)
"""

from __future__ import annotations

from pathlib import Path

from . import data, examples, user_data
from .io import atomic_path, provenance, write_json
from .params_file import arguments, named, reported_errors
from .schema import load
from .splits import split_hash

LONG = (64, 128, 256, 512)  # the max_length values in use; a word is at least one token


def word_counts(df):
    n = df.text_a.str.split().str.len()
    if df.text_b.notna().any():
        n = n + df.text_b.fillna("").str.split().str.len()
    return n


def duplicates(splits: dict, removed: dict) -> dict:
    """Exact copies removed per split; kept examples whose text (pair) occurs in their split with another
    label; and texts of dev and test also in train (only GLUE's own test split can have any: the splits
    made here keep every example of a text in one split)."""
    texts = {s: examples.text_key(df) for s, df in splits.items()}
    train = set(texts["train"])
    return {
        "removed": removed,
        "conflicting_labels": {s: int(t.duplicated(keep=False).sum()) for s, t in texts.items()},
        "in_train": {s: int(texts[s].isin(train).sum()) for s in ("dev", "test")},
    }


def card(name: str, splits: dict, labels: list[str], source: str, removed: dict) -> dict:
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
        **(
            {"eval_sets": splits["test"].eval_set.value_counts(sort=False).to_dict()}
            if "eval_set" in splits["test"].columns
            else {}
        ),
        "groups": {s: int(df.group.nunique()) for s, df in splits.items()},
        "class_balance": {
            s: {labels[k]: int(v) for k, v in df.label.value_counts().sort_index().items()} for s, df in splits.items()
        },
        "words_per_example": {s: words(df) for s, df in splits.items()},
        # examples longer than N words: truncated by any model whose max_length is N (each teacher's
        # metrics.json counts exactly how many of its training examples it truncated)
        "examples_over_words": {
            str(k): {s: int((word_counts(df) > k).sum()) for s, df in splits.items()} for k in LONG
        },
        "duplicate_texts": duplicates(splits, removed["exact_copy"]),
        "empty_texts_dropped": removed["empty_text"],
        "split_sha256": {s: split_hash(df) for s, df in splits.items()},
    }


def main(task: str, params_path: str = "params.yaml") -> None:
    params = load(params_path)
    spec = named(params, "tasks", task)
    user_data.check(Path("user_data"))  # a dependency of every prepare stage, hashed whole by DVC
    splits, labels, source, removed = data.build(task, spec, Path(params.assets.dir), params.seed)
    info = card(task, splits, labels, source, removed)
    info["provenance"] = provenance(params.seed, spec.model_dump(), machine=False)
    with atomic_path(Path("data") / task) as out:
        out.mkdir()
        for s, df in splits.items():
            df.to_parquet(out / f"{s}.parquet", index=False)
        write_json(out / "card.json", info, seal=True)  # later stages refuse an edited card
    sizes = ", ".join(f"{s} {n}" for s, n in info["sizes"].items())
    print(f"prepare: {task}: {sizes}; labels {labels}; written to data/{task}/")
    dup = info["duplicate_texts"]
    for key, what in (
        ("removed", "exact copies removed"),
        ("conflicting_labels", "examples whose text also has another label (kept, in one split)"),
        ("in_train", "texts also in train"),
    ):
        if any(dup[key].values()):
            print(f"prepare: {task}: {what}: {dup[key]} (card.json, duplicate_texts.{key})")
    if any(info["empty_texts_dropped"].values()):
        print(f"prepare: {task}: rows with an empty text dropped: {info['empty_texts_dropped']}")


if __name__ == "__main__":
    args = arguments(__spec__.name, __doc__, ("task", str, "a task of params.yaml's tasks section"))
    with reported_errors():
        main(args.task, args.params)
