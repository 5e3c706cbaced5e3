"""The split format that every stage after `prepare` reads: data/TASK/{train,dev,test}.parquet and card.json.

Every split has the same columns: a stable example `id` (a digest of the example, so it survives
re-splitting and capping), `text_a`, `text_b` (None for single-sentence tasks) and an integer `label`. A
test split may hold several evaluation sets that share one training set (GLUE's `mnli`: MNLI-m and
MNLI-mm); its `eval_set` column names each row's set, and the analysis reports each set as a column of
its own. The loaders that make the splits are pipeline/data.py and pipeline/glue.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from .io import read_json
from .params_file import InputError

SPLITS = ("train", "dev", "test")
COLUMNS = ["id", "text_a", "text_b", "label"]


def cap(df: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    if n is None or len(df) <= n:
        return df
    return df.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def students_train(train: pd.DataFrame, max_train: int | None, seed: int) -> pd.DataFrame:
    """The training rows the students read: `distill.max_train` of the split, sampled with the data seed. The
    cache stage caches the teachers' outputs for these rows alone (the teachers may train on the whole split)."""
    return cap(train, max_train, seed)


def split_hash(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    columns = COLUMNS + (["eval_set"] if "eval_set" in df.columns else [])  # MNLI: which set a test row counts in
    for row in df[columns].itertuples(index=False):
        h.update("\x1f".join("" if v is None else str(v) for v in row).encode() + b"\x1e")
    return h.hexdigest()


def check_ids(df: pd.DataFrame, where: str, then: str = "") -> None:
    """Runs, caches and the analysis match examples by id, so an id must name one example of its split."""
    repeats = df.id[df.id.duplicated()]
    if len(repeats):
        raise InputError(
            f"{where}: example id {repeats.iloc[0]!r} occurs more than once ({len(repeats)} "
            f"repeat(s)); ids must be unique within a split{then}"
        )


def by_eval_set(key: str, df: pd.DataFrame, logits, labels) -> dict:
    """{f"{key}_by_set": {evaluation set: accuracy}} of `logits` (rows in the split's order) for a split with
    an `eval_set` column, to merge into a metrics record; {} for a split that is one set."""
    if "eval_set" not in df.columns:
        return {}
    correct = pd.Series((logits.argmax(-1) == labels).numpy().astype(float), index=df.index)
    return {
        f"{key}_by_set": {
            str(k): float(v) for k, v in correct.groupby(df.eval_set.to_numpy(), sort=False).mean().items()
        }
    }


def load_card(task_dir: str | Path, spec=None) -> dict:
    """data/TASK/card.json as `prepare` wrote it, for `spec` (the task's section of params.yaml) when given: a
    missing, damaged or edited card, or one written for other settings, is refused with the stage to rerun."""
    task_dir = Path(task_dir)
    path, rerun = task_dir / "card.json", f"dvc repro prepare@{task_dir.name}"
    card = read_json(path, rerun, keys=("task", "labels", "sizes", "split_sha256", "provenance"), sealed=True)
    if card["task"] != task_dir.name:
        raise InputError(f"{path}: the card of task {card['task']!r}, not {task_dir.name!r}; rerun `{rerun}`")
    if spec is not None and card["provenance"].get("params") != json.loads(json.dumps(spec.model_dump())):
        raise InputError(
            f"{path}: written for other tasks.{task_dir.name} settings than params.yaml's; rerun `{rerun}`"
        )
    return card


def load_split(task_dir: str | Path, split: str) -> pd.DataFrame:
    path = Path(task_dir) / f"{split}.parquet"
    if not path.is_file():
        raise InputError(f"{path}: prepared split not found; run `dvc repro prepare@{Path(task_dir).name}` first")
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as err:  # pyarrow's errors for a truncated or damaged file derive from these
        raise InputError(
            f"{path}: unreadable ({type(err).__name__}); rerun `dvc repro prepare@{Path(task_dir).name}`"
        ) from None
    df["text_b"] = df["text_b"].astype(object).where(df["text_b"].notna(), None)
    rerun = f"dvc repro prepare@{Path(task_dir).name}"
    if (Path(task_dir) / "card.json").is_file() and load_card(task_dir)["split_sha256"].get(split) != split_hash(df):
        raise InputError(f"{path}: its rows differ from the digest in its card.json; rerun `{rerun}`")
    check_ids(df, str(path), f"; rerun `{rerun}`")
    return df
