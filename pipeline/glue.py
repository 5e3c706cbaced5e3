"""GLUE for the paper profile, through `datasets` (a reachable hub or a local datasets cache); GLUE's
validation set serves as the test set, and part of train as dev."""

from __future__ import annotations

import pandas as pd

from .examples import frame, split_by_group
from .params_file import InputError

GLUE_COLUMNS = {
    "sst2": ("sentence", None),
    "mrpc": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"),
    "mnli": ("premise", "hypothesis"),
    "mnli_matched": ("premise", "hypothesis"),
    "mnli_mismatched": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"),
    "rte": ("sentence1", "sentence2"),
}
GLUE_LABELS = {
    "sst2": ["negative", "positive"],
    "mrpc": ["not_equivalent", "equivalent"],
    "qqp": ["not_duplicate", "duplicate"],
    "qnli": ["entailment", "not_entailment"],
    "rte": ["entailment", "not_entailment"],
    "mnli": ["entailment", "neutral", "contradiction"],
    "mnli_matched": ["entailment", "neutral", "contradiction"],
    "mnli_mismatched": ["entailment", "neutral", "contradiction"],
}


# tasks whose test split is several GLUE validation splits: {evaluation set: GLUE split}
GLUE_EVAL_SETS = {
    "mnli": {"mnli_m": "validation_matched", "mnli_mm": "validation_mismatched"},
    "mnli_matched": {None: "validation_matched"},
    "mnli_mismatched": {None: "validation_mismatched"},
}


def glue(name: str, spec, seed: int, load_dataset=None):
    if load_dataset is None:
        from datasets import load_dataset
    config = "mnli" if spec.name.startswith("mnli") else spec.name
    # GLUE validation split(s) that serve as our test set, each an evaluation set named as in the paper's tables
    evaluation = GLUE_EVAL_SETS.get(spec.name, {None: "validation"})
    try:
        ds = load_dataset("glue", config)
    except Exception as err:  # no hub: say what is missing and what works offline
        raise InputError(
            f"tasks.{name}: could not load GLUE {config!r} with datasets ({type(err).__name__}: "
            f"{err}). The paper profile needs a reachable dataset hub or a local datasets cache; "
            "offline, use the embedded default tasks."
        ) from None
    a, b = GLUE_COLUMNS[spec.name]

    def to_frame(split, prefix=name):
        d = ds[split].to_pandas()
        keep = d[a].fillna("").str.strip().astype(bool) & (d[b].fillna("").str.strip().astype(bool) if b else True)
        d = d[keep]  # a few GLUE rows have an empty text (QQP); dropped, and counted in the task card
        dropped[split] = int((~keep).sum())
        return frame(prefix, d[a], d[b] if b else [None] * len(d), d["label"])

    dropped = {}

    train = to_frame("train")
    if None in evaluation:
        test = to_frame(evaluation[None])
    else:  # one test split, several evaluation sets: ids carry the set's name, so a text in both stays two rows
        test = pd.concat(
            [to_frame(split, label).assign(eval_set=label) for label, split in evaluation.items()], ignore_index=True
        )
    # GLUE's own copies stay (the paper scored them), each under an id of its own: the id, then -1, -2, ...
    repeat = test.groupby("id").cumcount()
    test["id"] = test.id.where(repeat == 0, test.id + "-" + repeat.astype(str))
    # GLUE's test labels are hidden: hold out part of train as dev, report on GLUE's validation set
    parts = split_by_group(train, spec.dev_fraction, 1e-9, seed)
    return {"train": parts["train"], "dev": parts["dev"], "test": test}, GLUE_LABELS[spec.name], dropped
