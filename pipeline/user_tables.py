"""Reading a user's labelled file (CSV, JSON Lines, Parquet, optionally compressed) into a table of text cells,
as written: `00001` stays `00001`, a label `true` is the text `true`. Every way a file can fail to parse is an
InputError naming the file, the line or row, and the parameter. pipeline/user_files.py checks its columns."""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import re
import zlib
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .params_file import InputError

KINDS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
COMPRESSED = {".gz": "gzip", ".bz2": "bzip2"}  # a CSV or JSON Lines file may be compressed; Parquet compresses inside
NEWLINE = b"\n"


def file_kind(path: Path, key: str) -> str:
    compressed = path.suffix.lower() in COMPRESSED
    suffix = "".join(path.suffixes[-2:] if compressed else path.suffixes[-1:]).lower()
    kind = KINDS.get(path.with_suffix("").suffix.lower() if compressed else suffix)
    if kind is None or (compressed and kind == "parquet"):
        raise InputError(
            f"{key}.path: {path}: unknown file type {suffix!r}; expected .csv, .jsonl or .parquet "
            "(a CSV or JSON Lines file may be compressed: .csv.gz, .jsonl.bz2)"
        )
    return kind


def file_text(path: Path, key: str, encoding: str) -> str:
    """The text of a CSV or JSON Lines file, decompressed (.gz, .bz2), decoded, without a UTF-8 byte order mark."""
    data = path.read_bytes()
    compression = COMPRESSED.get(path.suffix.lower())
    if compression:
        try:
            data = gzip.decompress(data) if compression == "gzip" else bz2.decompress(data)
        except (OSError, EOFError, ValueError, zlib.error) as err:  # not compressed at all, or cut short
            raise InputError(
                f"{key}.path: {path}: not a complete {compression} file ({err}); compress it again, or drop "
                f"{path.suffix} from its name if it is not compressed"
            ) from None
    try:
        text = data.decode(encoding)
    except LookupError:  # a codec such as base64 that does not turn bytes into text
        raise InputError(f"{key}.encoding: {encoding!r} is not a text encoding; expected e.g. utf-8, latin-1") from None
    except UnicodeDecodeError as err:  # text in any language is welcome, in the encoding the task declares
        where = f"offset {err.start}" + (" of the decompressed data" if compression else "")
        if "\n".encode(encoding) == b"\n":  # an encoding where a line break is the byte 0x0a: the line is known
            where = f"line {data.count(NEWLINE, 0, err.start) + 1}, byte {where}"
        raise InputError(
            f"{path}: not valid {encoding} (byte {err.object[err.start : err.start + 1]!r} at {where}); "
            f"set {key}.encoding (e.g. latin-1, cp1252) or save the file as UTF-8"
        ) from None
    if codecs.lookup(encoding).name == "utf-8" and text.startswith("\ufeff"):  # Excel and Notepad write one
        text = text[1:]
    if not text.strip():
        raise InputError(f"{key}.path: {path}: the file holds no data (it is empty)")
    return text


def unique_columns(names: list[str], path: Path, key: str, where: str) -> None:
    """Refuse a column named twice: pandas would quietly rename the second `a` to `a.1`."""
    seen = set()
    for name in names:
        if name in seen:
            raise InputError(f"{key}.path: {path}: {where} names the column {name!r} twice; give each its own name")
        seen.add(name)


def line_breaks(text: str) -> int:
    """Line breaks as the csv module counts them: \\r\\n, \\r or \\n."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def read_csv(text: str, path: Path, key: str) -> pd.DataFrame:
    """Every cell as its text; the index is the line where each row starts (the header is line 1, a quoted text
    may span lines, blank lines count but hold no row)."""
    header, header_line, rows, lines = None, 0, [], []
    limit = csv.field_size_limit(2**31 - 1)  # texts past the default 128 KiB are welcome
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                if str(err) != "unexpected end of data":
                    raise InputError(f"{key}.path: {path}: line {reader.line_num} is not valid CSV ({err})") from None
                # a quoted field that runs to the end of the file: its text, read leniently, tells where it opens
                last = list(csv.reader(io.StringIO(text, newline="")))[-1][-1]
                opens = 1 + line_breaks(text) - line_breaks(last)
                raise InputError(
                    f'{key}.path: {path}: line {opens}: a quoted field (opening ") is never closed; close it, '
                    'and write a " inside a quoted text as ""'
                ) from None
            if not row:  # a blank line
                continue
            if header is None:
                header, header_line = row, start
                unique_columns(header, path, key, f"the header (line {start})")
                continue
            if len(row) != len(header):
                raise InputError(
                    f"{key}.path: {path}: line {start} has {len(row)} field(s), but the header (line {header_line}) "
                    f'has {len(header)}; quote a text that holds a comma ("like, this")'
                )
            rows.append(row)
            lines.append(start)
    finally:
        csv.field_size_limit(limit)
    if not rows:
        raise InputError(f"{key}.path: {path}: no data rows under the header (line {header_line})")
    return pd.DataFrame(
        dict(zip(header, (list(col) for col in zip(*rows)))), index=pd.Index(lines, name="line"), dtype=object
    )


class JSONObject(list):
    """A JSON object's (key, value) pairs, in order: a dict would keep only the last of two equal keys."""


JSON_LINES_HINT = 'a JSON Lines file holds one object per line, e.g. {"text": "...", "label": "..."}'


def read_jsonl(text: str, path: Path, key: str) -> pd.DataFrame:
    """Each line one object; a JSON string stays that string, a number or true/false is its literal text in the
    file (`1`, `0.10`, `true`), null is a missing value, an array or object is kept (and refused as a text or
    label). The index is the line number; blank lines count but hold no row."""
    array = text.lstrip(" \t\r\n").startswith("[")
    hint = JSON_LINES_HINT + ("; this file looks like one JSON array of objects" if array else "")
    records, lines, columns = [], [], {}
    for number, line in enumerate(text.split("\n"), 1):  # JSON escapes a line break inside a string: \n
        if not line.strip(" \t\r"):
            continue
        try:
            value = json.loads(line, parse_int=str, parse_float=str, parse_constant=str, object_pairs_hook=JSONObject)
        except json.JSONDecodeError as err:
            raise InputError(
                f"{key}.path: {path}: line {number} is not valid JSON ({err.msg} at column {err.colno}); {hint}"
            ) from None
        except RecursionError:
            raise InputError(f"{key}.path: {path}: line {number} is nested too deeply to be read") from None
        if not isinstance(value, JSONObject):
            what = "an array" if isinstance(value, list) else "a single value" if value is not None else "null"
            raise InputError(f"{key}.path: {path}: line {number} is {what}, not a JSON object; {hint}")
        record = {}
        for name, v in value:
            if name in record:
                raise InputError(
                    f"{key}.path: {path}: line {number} names the key {name!r} twice; give each column its own name"
                )
            record[name] = "true" if v is True else "false" if v is False else v
            columns.setdefault(name, None)
        records.append(record)
        lines.append(number)
    return pd.DataFrame(
        {c: [r.get(c) for r in records] for c in columns}, index=pd.Index(lines, name="line"), dtype=object
    )


PANDAS_INDEX = re.compile(r"__index_level_\d+__")  # pandas' unnamed index, written by DataFrame.to_parquet


def read_parquet(path: Path, key: str) -> pd.DataFrame:
    """Text, integer and true/false columns as text (`1`, `true`), null as None; attrs["kinds"] tells each column's
    kind (text, integer, boolean, scalar, nested) and attrs["types"] its Arrow type. The index is the row number."""
    try:
        table = pq.ParquetFile(path).read()
    except (pa.ArrowException, OSError, ValueError) as err:  # truncated, or another format under this name
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise InputError(
            f"{key}.path: {path}: not a readable Parquet file ({reason}); write it again, e.g. with pandas' "
            "DataFrame.to_parquet"
        ) from None
    names = [n for n in table.column_names if not PANDAS_INDEX.fullmatch(n)]
    unique_columns(names, path, key, "the file")
    if table.num_rows == 0:
        raise InputError(f"{key}.path: {path}: the file holds no rows")
    columns, kinds, types = {}, {}, {}
    for name in names:
        col = table.column(name)
        kind = col.type.value_type if pa.types.is_dictionary(col.type) else col.type  # pandas' categorical
        types[name] = str(col.type)
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            kinds[name] = "text"
        elif pa.types.is_integer(kind):
            kinds[name] = "integer"
        elif pa.types.is_boolean(kind):
            kinds[name] = "boolean"  # as JSON writes it: true, false
        elif pa.types.is_nested(kind):
            kinds[name] = "nested"
        else:
            kinds[name] = "scalar"
        if pa.types.is_floating(kind):  # NaN is a missing value, not the text "nan"
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
        try:
            columns[name] = pc.cast(col, pa.string()).to_pylist()
        except (pa.ArrowException, ValueError):  # nested, or bytes that are not UTF-8: only named in an error
            kinds[name] = "nested" if kinds[name] == "nested" else "binary"
            columns[name] = [None] * table.num_rows
    df = pd.DataFrame(columns, index=pd.Index(range(1, table.num_rows + 1), name="row"), dtype=object)
    df.attrs.update(kinds=kinds, types=types)
    return df


def read_table(path: Path, key: str, encoding: str = "utf-8") -> pd.DataFrame:
    """Read a user's file; `key` (tasks.NAME) is named in every error. Every column holds text (or None where a
    value is missing, or a JSON array or object); the index tells where each row is (see `locate`)."""
    if path.is_dir():
        raise InputError(f"{key}.path: {path}: a folder; expected a data file (.csv, .jsonl or .parquet)")
    if not path.is_file():
        raise InputError(f"{key}.path: {path}: data file not found")
    kind = file_kind(path, key)
    try:
        if path.stat().st_size == 0:
            raise InputError(f"{key}.path: {path}: the file is empty")
        if kind == "parquet":
            return read_parquet(path, key)
        text = file_text(path, key, encoding)
    except OSError as err:  # unreadable: permissions, a device error
        raise InputError(f"{key}.path: {path}: cannot be read ({err.strerror or err})") from None
    return read_csv(text, path, key) if kind == "csv" else read_jsonl(text, path, key)
