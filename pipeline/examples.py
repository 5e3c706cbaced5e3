"""A task's examples before they are split: a stable id per example, the frame every loader builds, and the split
by group that keeps a group (a movie, a question) and a text within one split. pipeline/data.py and
pipeline/glue.py build their tasks with it."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from .splits import SPLITS


def example_id(prefix: str, *parts) -> str:
    digest = hashlib.sha1("\x1f".join("" if p is None else str(p) for p in parts).encode()).hexdigest()
    return f"{prefix}-{digest[:16]}"


def frame(task: str, text_a, text_b, labels, group=None) -> pd.DataFrame:
    """`group` (movie, question, ...) names what must never straddle two splits; default: the example."""
    df = pd.DataFrame({"text_a": list(text_a), "text_b": list(text_b), "label": np.asarray(labels, dtype=np.int64)})
    df.insert(0, "id", [example_id(task, a, b, y) for a, b, y in zip(df.text_a, df.text_b, df.label)])
    df["group"] = df.id if group is None else [str(g) for g in group]
    return df


def text_key(df: pd.DataFrame) -> pd.Series:
    """An example's text, or its pair of texts, as one string."""
    return df.text_a + "\x1f" + df.text_b.fillna("")


def join_groups_sharing_a_text(df: pd.DataFrame) -> pd.Series:
    """Each row's group, merged with every group that shares one of its texts (whatever the label), so that
    a text never lands in two splits. A merged group takes its smallest name; the others keep theirs."""
    texts, groups = text_key(df), df.group
    while True:  # the smallest name spreads through shared texts, then through groups, until nothing changes
        joined = groups.groupby(texts).transform("min").groupby(groups).transform("min")
        if joined.equals(groups):
            return groups
        groups = joined


def split_by_group(df: pd.DataFrame, dev: float, test: float, seed: int) -> dict:
    """Assign whole groups to test, then dev, then train, in a seeded random order."""
    df = df.assign(group=join_groups_sharing_a_text(df))
    groups = df.group
    keys = np.array(sorted(groups.unique()))
    np.random.default_rng(seed).shuffle(keys)
    sizes = groups.value_counts()
    cum = np.cumsum(sizes.loc[keys].to_numpy()) / len(df)
    where = {}
    for k, c in zip(keys, cum):
        where[k] = "test" if c <= test else "dev" if c <= test + dev else "train"
    assigned = groups.map(where)
    return {s: df[assigned.to_numpy() == s].reset_index(drop=True) for s in SPLITS}
