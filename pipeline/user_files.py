"""A user's own labelled file (params.yaml `source: file`): its columns checked and turned into a task's texts,
labels and groups. The file is read as written by pipeline/user_tables.py.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .params_file import InputError
from .user_tables import JSONObject, file_kind, read_table


def locate(raw: pd.DataFrame, row: int, kind: str) -> str:
    """Where data row `row` (0-based, as read) starts in its file, as an editor counts: the CSV header is
    line 1 and a quoted text may span lines; blank lines count too. Parquet: the row's number, from 1."""
    if raw.index.name in ("line", "row"):  # as read_table gives it
        return f"{raw.index.name} {raw.index[row]}"
    if kind == "parquet":
        return f"row {row + 1}"
    if kind == "jsonl":
        return f"line {row + 1}"
    breaks = sum(int(raw[c].iloc[:row].astype(str).str.count("\n").sum()) for c in raw.columns)
    return f"line {row + 2 + breaks}"


# what each parameter's column may hold, in a Parquet file (as its kind) and in JSON Lines (text or null)
ROLES = {
    "text_a": ({"text"}, "a column of text (strings)"),
    "text_b": ({"text"}, "a column of text (strings)"),
    "label": ({"text", "integer", "boolean"}, "a column of text, integers or true/false"),
    "group": ({"text", "integer", "boolean", "scalar"}, "a column of text or numbers"),
}


def check_column(raw: pd.DataFrame, col: str, param: str, name: str, path: Path, kind: str) -> list:
    """The column's values (text, or None where missing), refused if the column or a value is not text."""
    allowed, wanted = ROLES[param]
    key = f"tasks.{name}.{param}"
    if kind == "parquet":
        if raw.attrs["kinds"][col] not in allowed:
            raise InputError(
                f"{key}: {path}: column {col!r} is a Parquet column of {raw.attrs['types'][col]}; {key} must name "
                f"{wanted}"
            )
        return raw[col].tolist()
    values = raw[col].tolist()
    for i, v in enumerate(values):
        if v is not None and not isinstance(v, str):  # JSON Lines: an array or object
            what = "an object" if isinstance(v, JSONObject) else "an array"
            raise InputError(
                f"{key}: {path}: {locate(raw, i, kind)}: column {col!r} holds {what}, not a single value; "
                f"{key} must name {wanted}"
            )
        if isinstance(v, str) and not v.isascii():
            try:  # JSON may escape half of a surrogate pair (\ud800) alone: no character, not storable as UTF-8
                v.encode("utf-8")
            except UnicodeEncodeError as err:
                raise InputError(
                    f"{key}: {path}: {locate(raw, i, kind)}: column {col!r} holds {v[err.start]!r}, half of a "
                    "UTF-16 surrogate pair and no character; write the character itself"
                ) from None
    return values


def user_examples(name: str, spec) -> tuple[list, list, list[int], list | None]:
    """The examples of task `name`'s file: (text_a, text_b, label ids, group), each a list in the file's order
    (text_b and group None where the task has none)."""
    path, key = Path(spec.path), f"tasks.{name}"
    raw = read_table(path, key, spec.encoding)
    kind = file_kind(path, key)
    wanted = [c for c in (spec.text_a, spec.text_b, spec.label, spec.group) if c]
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        raise InputError(f"{path}: columns {missing} (from {key}) not found; the file has {list(raw.columns)}")
    params = {"text_a": spec.text_a, "text_b": spec.text_b, "label": spec.label, "group": spec.group}
    columns = {param: check_column(raw, col, param, name, path, kind) for param, col in params.items() if col}
    labels = columns["label"]
    absent = [i for i, lab in enumerate(labels) if lab is None]
    if absent:  # JSON null or no such key, a Parquet null
        raise InputError(
            f"{key}.label: {path}: column {spec.label!r} has no value in {len(absent)} row(s), first at "
            f"{locate(raw, absent[0], kind)}; every row needs a label from {key}.labels {spec.labels}"
        )
    declared = set(spec.labels)
    unknown = sorted(set(labels) - declared)
    if unknown:
        row = next(i for i, lab in enumerate(labels) if lab not in declared)
        raise InputError(
            f"{path}: {locate(raw, row, kind)} has label {labels[row]!r}, not in {key}.labels "
            f"{spec.labels} ({len(unknown)} unknown label value(s) in all: {unknown[:5]})"
        )
    for param, col in (("text_a", spec.text_a), ("text_b", spec.text_b)):
        if col:
            empty = [i for i, t in enumerate(columns[param]) if t is None or not t.strip()]
            if empty:
                raise InputError(
                    f"{path}: column {col!r} is empty in {len(empty)} row(s), first at {locate(raw, empty[0], kind)}"
                )
    if spec.group:
        empty = [i for i, g in enumerate(columns["group"]) if g is None or not g.strip()]
        if empty:  # one giant group of every row without a value would land whole in one split
            raise InputError(
                f"{key}.group: {path}: column {spec.group!r} has no value in {len(empty)} row(s), first at "
                f"{locate(raw, empty[0], kind)}; give every row a group (rows sharing one never straddle two "
                f"splits), or drop {key}.group"
            )
    index = {lab: i for i, lab in enumerate(spec.labels)}
    text_b = columns["text_b"] if spec.text_b else [None] * len(raw)
    return columns["text_a"], text_b, [index[lab] for lab in labels], columns.get("group")
