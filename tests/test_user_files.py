"""A user's own labelled file (`source: file`), as an outside fuzz found it: text read as its text (never as a
number), values that are not text refused, missing groups refused, and every damaged file refused with one line
that names the file, the line or row, and the parameter. And the folder of users' files, which DVC must be able
to hash: no FIFO, device or linked folder in it."""

import bz2
import gzip
import os
import re
import sys
import threading

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import data, user_data, user_files, user_tables
from pipeline import task_schema as T
from pipeline.params_file import InputError
from tests.conftest import run


def parquet(columns: dict, cut: int | None = None):
    """A writer of a Parquet file with these Arrow columns (arrays, or lists of Python values); `cut`: keep only
    its first bytes."""

    def write(path):
        arrays = {k: v if isinstance(v, pa.Array) else pa.array(v) for k, v in columns.items()}
        pq.write_table(pa.table(arrays), path)
        if cut is not None:
            path.write_bytes(path.read_bytes()[:cut])

    return write


def parquet_named(names: list[str], values: list[list]):
    """A Parquet file whose columns may share a name (pa.table would refuse it; Arrow itself does not)."""
    return lambda path: pq.write_table(pa.Table.from_arrays([pa.array(v) for v in values], names=names), path)


PN = ["pos", "neg"]
OK = "ok"
# (file name, its bytes or a writer, the spec's own keys, expected): expected is a regex of the InputError, or the
# examples read, as sorted (text_a, label index) pairs
CASES = [
    # ---- text is the file's text, never a number ---------------------------------------------------------
    pytest.param(
        "t.csv", b"text,label\n00001,pos\n0.10,neg\n", {}, [("0.10", 1), ("00001", 0)], id="csv-number-like-text"
    ),
    pytest.param("t.csv", b"text,label\na,00\nb,01\n", {"labels": ["00", "01"]}, [("a", 0), ("b", 1)], id="csv-00-01"),
    pytest.param(
        "t.csv", b"text,label\na,true\nb,false\n", {"labels": ["true", "false"]}, [("a", 0), ("b", 1)], id="csv-true"
    ),
    pytest.param(
        "t.csv",
        b"text,label\na,1\nb,01\n",
        {"labels": ["0", "1"]},
        r"^.*/t\.csv: line 3 has label '01', not in tasks\.t\.labels \['0', '1'\]",
        id="csv-label-01-is-not-1",
    ),
    pytest.param(
        "t.csv",
        b"text,label\na,true\nb,False\n",
        {"labels": ["true", "false"]},
        r"^.*/t\.csv: line 3 has label 'False', not in tasks\.t\.labels \['true', 'false'\]",
        id="csv-label-case-is-exact",
    ),
    pytest.param(
        "t.csv",
        b'text,label\n"a, quoted\r\ntext",pos\r\n\r\nb,neg\r\n',
        {},
        [("a, quoted\r\ntext", 0), ("b", 1)],
        id="csv-crlf-and-quoted-line-break",
    ),
    pytest.param(
        "t.csv", b"\xef\xbb\xbftext,label\na,pos\nb,neg\n", {}, [("a", 0), ("b", 1)], id="csv-utf8-bom-stripped"
    ),
    pytest.param(
        "t.csv",
        "text,label\ncaf\xe9 cr\xe8me,pos\nb,neg\n".encode("latin-1"),
        {"encoding": "latin-1"},
        [("b", 1), ("caf\xe9 cr\xe8me", 0)],
        id="csv-latin1-declared",
    ),
    pytest.param(
        "t.csv",
        "text,label\na,pos\nb,neg\ncaf\xe9,pos\n".encode("latin-1"),
        {},
        r"^.*/t\.csv: not valid utf-8 \(byte b'\\xe9' at line 4, byte offset 26\); set tasks\.t\.encoding "
        r"\(e\.g\. latin-1, cp1252\)",
        id="csv-not-utf8-names-the-line",
    ),
    pytest.param(
        "t.jsonl",
        b'{"text": "00001", "label": "pos"}\n{"text": "0.10", "label": "neg"}\n',
        {},
        [("0.10", 1), ("00001", 0)],
        id="jsonl-string-stays-a-string",
    ),
    pytest.param(
        "t.jsonl",
        b'{"text": 0.10, "label": 1}\n{"text": 1e5, "label": 0}\n{"text": -7, "label": 10}\n',
        {"labels": ["0", "1", "10"]},
        [("-7", 2), ("0.10", 1), ("1e5", 0)],
        id="jsonl-numbers-as-literal-text",
    ),
    pytest.param(
        "t.jsonl",
        b'{"text": "a", "label": true}\n{"text": false, "label": false}\n',
        {"labels": ["false", "true"]},
        [("a", 1), ("false", 0)],
        id="jsonl-true-false-as-text",
    ),
    pytest.param(
        "t.jsonl",
        b'\xef\xbb\xbf{"text": "a", "label": "pos"}\n{"text": "b", "label": "neg"}\n',
        {},
        [("a", 0), ("b", 1)],
        id="jsonl-utf8-bom-stripped",
    ),
    pytest.param(
        "t.jsonl",
        b'{"text": "a", "label": "pos"}\n\n  \n{"text": "b", "label": "meh"}\n',
        {},
        r"^.*/t\.jsonl: line 4 has label 'meh', not in tasks\.t\.labels",
        id="jsonl-blank-lines-count",
    ),
    pytest.param(
        "t.parquet",
        parquet({"text": ["a", "b", "c"], "label": pa.array([1, 0, 10], pa.int8())}),
        {"labels": ["0", "1", "10"]},
        [("a", 1), ("b", 0), ("c", 2)],
        id="parquet-integer-labels",
    ),
    pytest.param(
        "t.parquet",
        parquet({"text": ["a", "b"], "label": [True, False]}),
        {"labels": ["false", "true"]},
        [("a", 1), ("b", 0)],
        id="parquet-boolean-labels",
    ),
    pytest.param(
        "t.parquet",
        parquet({"text": pa.array(["a", "b"]).dictionary_encode(), "label": pa.array(PN, pa.large_string())}),
        {},
        [("a", 0), ("b", 1)],
        id="parquet-categorical-text",
    ),
    pytest.param(
        "t.csv.gz", gzip.compress(b"text,label\n007,pos\nb,neg\n"), {}, [("007", 0), ("b", 1)], id="csv-gz-read"
    ),
    pytest.param(
        "t.jsonl.bz2",
        bz2.compress(b'{"text": "a", "label": "pos"}\n{"text": "b", "label": "neg"}\n'),
        {},
        [("a", 0), ("b", 1)],
        id="jsonl-bz2-read",
    ),
    # ---- values that are not text -------------------------------------------------------------------------
    pytest.param(
        "t.parquet",
        parquet({"text": [["the", "good"], ["a", "bad"]], "label": ["pos", "neg"]}),
        {},
        r"^tasks\.t\.text_a: .*/t\.parquet: column 'text' is a Parquet column of list<element: string>; "
        r"tasks\.t\.text_a must name a column of text",
        id="parquet-list-text",
    ),
    pytest.param(
        "t.parquet",
        parquet({"text": ["a", "b"], "pair": [{"w": "x"}, {"w": "y"}], "label": ["pos", "neg"]}),
        {"text_b": "pair"},
        r"^tasks\.t\.text_b: .*/t\.parquet: column 'pair' is a Parquet column of struct<w: string>",
        id="parquet-struct-text",
    ),
    pytest.param(
        "t.parquet",
        parquet({"text": [1, 2], "label": ["pos", "neg"]}),
        {},
        r"^tasks\.t\.text_a: .*/t\.parquet: column 'text' is a Parquet column of int64",
        id="parquet-integer-text",
    ),
    pytest.param(
        "t.parquet",
        parquet({"text": ["a", "b"], "label": [0.0, 1.0]}),
        {"labels": ["0", "1"]},
        r"^tasks\.t\.label: .*/t\.parquet: column 'label' is a Parquet column of double; tasks\.t\.label must "
        r"name a column of text, integers or true/false",
        id="parquet-float-label",
    ),
    pytest.param(
        "t.jsonl",
        b'{"text": "a", "label": "pos"}\n{"text": ["the", "good"], "label": "neg"}\n',
        {},
        r"^tasks\.t\.text_a: .*/t\.jsonl: line 2: column 'text' holds an array, not a single value",
        id="jsonl-array-text",
    ),
    pytest.param(
        "t.jsonl",
        b'{"text": "a", "label": "pos"}\n\n{"text": "b", "label": {"name": "neg"}}\n',
        {},
        r"^tasks\.t\.label: .*/t\.jsonl: line 3: column 'label' holds an object, not a single value",
        id="jsonl-object-label",
    ),
    pytest.param(
        "t.jsonl",
        b'{"text": "a", "label": "pos"}\n{"text": "b", "label": null}\n{"text": "c"}\n',
        {},
        r"^tasks\.t\.label: .*/t\.jsonl: column 'label' has no value in 2 row\(s\), first at line 2",
        id="jsonl-null-and-missing-label",
    ),
    pytest.param(
        "t.parquet",
        parquet({"text": ["a", "b", "c"], "label": ["pos", "neg", None]}),
        {},
        r"^tasks\.t\.label: .*/t\.parquet: column 'label' has no value in 1 row\(s\), first at row 3",
        id="parquet-null-label",
    ),
    pytest.param(
        "t.jsonl",
        b'{"text": "a", "label": "pos"}\n{"text": null, "label": "neg"}\n',
        {},
        r"^.*/t\.jsonl: column 'text' is empty in 1 row\(s\), first at line 2$",
        id="jsonl-null-text",
    ),
    pytest.param(
        "t.jsonl",
        b'{"text": "a\\ud800b", "label": "pos"}\n',
        {},
        r"^tasks\.t\.text_a: .*/t\.jsonl: line 1: column 'text' holds '\\ud800', half of a UTF-16 surrogate pair",
        id="jsonl-lone-surrogate",
    ),
    pytest.param(
        "t.csv",
        b"text,label\na,pos\n,neg\n",
        {},
        r"^.*/t\.csv: column 'text' is empty in 1 row\(s\), first at line 3$",
        id="csv-empty-text",
    ),
    # ---- missing groups would merge into one giant group --------------------------------------------------------
    pytest.param(
        "t.csv",
        b"text,label,g\na,pos,g1\nb,neg,\nc,pos, \nd,neg,g1\n",
        {"group": "g"},
        r"^tasks\.t\.group: .*/t\.csv: column 'g' has no value in 2 row\(s\), first at line 3",
        id="csv-empty-group",
    ),
    pytest.param(
        "t.jsonl",
        b'{"text": "a", "label": "pos", "g": 1}\n{"text": "b", "label": "neg"}\n{"text": "c", "label": "neg", '
        b'"g": null}\n',
        {"group": "g"},
        r"^tasks\.t\.group: .*/t\.jsonl: column 'g' has no value in 2 row\(s\), first at line 2",
        id="jsonl-null-group",
    ),
    pytest.param(
        "t.parquet",
        parquet({"text": ["a", "b", "c"], "label": ["pos", "neg", "pos"], "g": [1, 2, None]}),
        {"group": "g"},
        r"^tasks\.t\.group: .*/t\.parquet: column 'g' has no value in 1 row\(s\), first at row 3",
        id="parquet-null-group",
    ),
    pytest.param(
        "t.parquet",
        parquet({"text": ["a", "b", "c"], "label": ["pos", "neg", "pos"], "g": [1.5, float("nan"), 2.5]}),
        {"group": "g"},
        r"^tasks\.t\.group: .*/t\.parquet: column 'g' has no value in 1 row\(s\), first at row 2",
        id="parquet-nan-group",  # NaN is no value, not the group "nan"
    ),
    pytest.param(
        "t.parquet",
        parquet({"text": ["a", "b", "c"], "label": ["pos", "neg", "pos"], "g": [7, 8, 7]}),
        {"group": "g"},
        [("a", 0), ("b", 1), ("c", 0)],
        id="parquet-integer-group",
    ),
    # ---- damaged files ----------------------------------------------------------------------------------------
    pytest.param("t.csv", b"", {}, r"^tasks\.t\.path: .*/t\.csv: the file is empty$", id="csv-empty-file"),
    pytest.param(
        "t.jsonl", b"\n \n", {}, r"^tasks\.t\.path: .*/t\.jsonl: the file holds no data", id="jsonl-blank-file"
    ),
    pytest.param(
        "t.csv",
        b"text,label\n",
        {},
        r"^tasks\.t\.path: .*/t\.csv: no data rows under the header \(line 1\)$",
        id="csv-header-only",
    ),
    pytest.param(
        "t.parquet",
        parquet({"text": pa.array([], pa.string()), "label": pa.array([], pa.string())}),
        {},
        r"^tasks\.t\.path: .*/t\.parquet: the file holds no rows$",
        id="parquet-zero-rows",
    ),
    pytest.param(
        "t.parquet",
        parquet({"text": ["a"] * 50, "label": ["pos"] * 50}, cut=200),
        {},
        r"^tasks\.t\.path: .*/t\.parquet: not a readable Parquet file \(",
        id="parquet-truncated",
    ),
    pytest.param(
        "t.parquet",
        b"text,label\na,pos\n",
        {},
        r"^tasks\.t\.path: .*/t\.parquet: not a readable Parquet file \(",
        id="parquet-really-a-csv",
    ),
    pytest.param(
        "t.csv.gz",
        b"text,label\na,pos\n",
        {},
        r"^tasks\.t\.path: .*/t\.csv\.gz: not a complete gzip file \(.*\); compress it again, or drop \.gz",
        id="csv-gz-not-compressed",
    ),
    pytest.param(
        "t.csv.gz",
        gzip.compress(b"text,label\n" + b"a,pos\n" * 100)[:-12],
        {},
        r"^tasks\.t\.path: .*/t\.csv\.gz: not a complete gzip file",
        id="csv-gz-truncated",
    ),
    pytest.param(
        "t.csv.bz2",
        b"text,label\na,pos\n",
        {},
        r"^tasks\.t\.path: .*/t\.csv\.bz2: not a complete bzip2 file",
        id="csv-bz2-not-compressed",
    ),
    pytest.param(
        "t.parquet.gz", b"x", {}, r"^tasks\.t\.path: .*/t\.parquet\.gz: unknown file type", id="parquet-gz-refused"
    ),
    pytest.param(
        "t.jsonl",
        b'{"text": "a", "label": "pos"}\n{"text": "b", "label": "neg"}\n{"text": "c", "label": }\n',
        {},
        r"^tasks\.t\.path: .*/t\.jsonl: line 3 is not valid JSON \(Expecting value at column 24\); a JSON Lines file "
        r"holds one object per line",
        id="jsonl-broken-line",
    ),
    pytest.param(
        "t.jsonl",
        b'[{"text": "a", "label": "pos"}, {"text": "b", "label": "neg"}]\n',
        {},
        r"^tasks\.t\.path: .*/t\.jsonl: line 1 is an array, not a JSON object; a JSON Lines file holds one object "
        r"per line.*looks like one JSON array",
        id="jsonl-one-array",
    ),
    pytest.param(
        "t.jsonl",
        b'[\n  {"text": "a", "label": "pos"},\n  {"text": "b", "label": "neg"}\n]\n',
        {},
        r"^tasks\.t\.path: .*/t\.jsonl: line 1 is not valid JSON .*looks like one JSON array",
        id="jsonl-pretty-array",
    ),
    pytest.param(
        "t.jsonl",
        b'{"text": "a", "label": "pos"}\n"b"\n',
        {},
        r"^tasks\.t\.path: .*/t\.jsonl: line 2 is a single value, not a JSON object",
        id="jsonl-line-not-an-object",
    ),
    pytest.param(
        "t.csv",
        b"text,label\na,pos\nb, c,neg\n",
        {},
        r"^tasks\.t\.path: .*/t\.csv: line 3 has 3 field\(s\), but the header \(line 1\) has 2; quote a text",
        id="csv-extra-field",
    ),
    pytest.param(
        "t.csv",
        b'text,label\n"a\nb",pos\n\nc,neg,\n',
        {},
        r"^tasks\.t\.path: .*/t\.csv: line 5 has 3 field\(s\)",
        id="csv-extra-field-after-a-line-break",
    ),
    pytest.param(
        "t.csv",
        b'text,label\na,pos\n"b,neg\nc,pos\n',
        {},
        r'^tasks\.t\.path: .*/t\.csv: line 3: a quoted field \(opening "\) is never closed',
        id="csv-unterminated-quote",
    ),
    pytest.param(
        "t.csv",
        b'text,label\n"x\ny",pos\nc,"neg\nd,pos\n',
        {},
        r"^tasks\.t\.path: .*/t\.csv: line 4: a quoted field",
        id="csv-unterminated-quote-after-a-line-break",
    ),
    pytest.param(
        "t.csv",
        b'text,label\na,pos\n"b"c,neg\n',
        {},
        r"^tasks\.t\.path: .*/t\.csv: line 3 is not valid CSV \(',' expected after '\"'\)",
        id="csv-text-after-closing-quote",
    ),
    pytest.param(
        "t.csv",
        b"text,label,text\na,pos,b\n",
        {},
        r"^tasks\.t\.path: .*/t\.csv: the header \(line 1\) names the column 'text' twice",
        id="csv-duplicate-header",
    ),
    pytest.param(
        "t.jsonl",
        b'{"text": "a", "label": "pos"}\n{"text": "a", "label": "neg", "text": "b"}\n',
        {},
        r"^tasks\.t\.path: .*/t\.jsonl: line 2 names the key 'text' twice",
        id="jsonl-duplicate-key",
    ),
    pytest.param(
        "t.parquet",
        parquet_named(["text", "label", "text"], [["a"], ["pos"], ["b"]]),
        {},
        r"^tasks\.t\.path: .*/t\.parquet: the file names the column 'text' twice",
        id="parquet-duplicate-column",
    ),
    pytest.param(
        "t.csv",
        b"review,label\na,pos\n",
        {},
        r"^.*/t\.csv: columns \['text'\] \(from tasks\.t\) not found; the file has \['review', 'label'\]",
        id="csv-missing-column",
    ),
]


@pytest.mark.parametrize("name, content, spec, expected", CASES)
def test_a_user_file(tmp_path, name, content, spec, expected):
    path = tmp_path / name
    path.write_bytes(content) if isinstance(content, bytes) else content(path)
    task = T.FileTask.model_validate(
        {"source": "file", "path": str(path), "text_a": "text", "label": "label", "labels": PN, **spec}
    )
    if isinstance(expected, str):
        with pytest.raises(InputError, match=expected):
            data.user_file("t", task, seed=0)
        return
    splits, labels = data.user_file("t", task, seed=0)
    assert labels == task.labels
    every = pd.concat(splits.values())
    assert sorted(zip(every.text_a, every.label)) == expected


def test_read_table_keeps_the_file_text_and_where_each_row_is(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b'text,label,n\n\n"two\nlines",pos,007\n1.50,neg,\n')
    raw = user_tables.read_table(path, "tasks.t")
    assert list(raw.columns) == ["text", "label", "n"]
    assert raw.to_dict("list") == {"text": ["two\nlines", "1.50"], "label": ["pos", "neg"], "n": ["007", ""]}
    assert [user_files.locate(raw, i, "csv") for i in range(2)] == ["line 3", "line 5"]


# ---- the folder of users' files ----------------------------------------------------------------------------


def check_in_time(folder):
    """check_user_data in a thread: a FIFO it opened would block it, and fail the test instead of hanging it."""
    outcome = []

    def run():
        try:
            user_data.check(folder)
            outcome.append(None)
        except Exception as err:  # handed to the test
            outcome.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    assert outcome, "check_user_data blocked"
    if outcome[0] is not None:
        raise outcome[0]


def link(target):
    return lambda folder, where: os.symlink(target(folder) if callable(target) else target, where)


FOLDER_CASES = [
    pytest.param("a.csv", lambda folder, where: where.write_text("x\n"), None, id="regular-file"),
    pytest.param("sub/deeper/a.csv", lambda folder, where: where.write_text("x\n"), None, id="nested-regular-file"),
    pytest.param("sub/a.csv", link(lambda folder: folder.parent / "outside.csv"), None, id="link-to-a-regular-file"),
    pytest.param(
        "sub/pipe",
        lambda folder, where: os.mkfifo(where),
        r"/user_data/sub/pipe: a FIFO \(named pipe\); expected a regular file or a folder",
        id="fifo",
    ),
    pytest.param(
        "elsewhere",
        link(lambda folder: folder.parent / "other"),
        r"/user_data/elsewhere: a link to a folder \(.*/other\); expected a regular file or a folder",
        id="link-to-a-folder",
    ),
    pytest.param(
        "zeros.csv",
        link("/dev/zero"),
        r"/user_data/zeros\.csv: a link to a character device \(/dev/zero\); expected a regular file or a folder",
        id="link-to-dev-zero",
    ),
    pytest.param(
        "pipe.csv",
        link(lambda folder: folder.parent / "pipe"),
        r"/user_data/pipe\.csv: a link to a FIFO \(named pipe\)",
        id="link-to-a-fifo",
    ),
    pytest.param(
        "gone.csv",
        link(lambda folder: folder / "nothing.csv"),
        r"/user_data/gone\.csv: a link that leads to nowhere \(No such file or directory\); expected a regular file",
        id="dangling-link",
    ),
    pytest.param(
        "loop.csv",
        link(lambda folder: folder / "loop.csv"),
        r"/user_data/loop\.csv: a link that leads to a cycle of links; expected a regular file or a folder",
        id="link-cycle",
    ),
    pytest.param(
        "a.csv",
        lambda folder, where: (os.symlink(folder / "b.csv", where), os.symlink(where, folder / "b.csv")),
        r"/user_data/a\.csv: a link that leads to a cycle of links",
        id="link-cycle-of-two",
    ),
]


@pytest.mark.parametrize("where, make, expected", FOLDER_CASES)
def test_the_user_data_folder(tmp_path, where, make, expected):
    folder = tmp_path / "user_data"
    (folder / where).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "outside.csv").write_text("x\n")
    (tmp_path / "other").mkdir()
    os.mkfifo(tmp_path / "pipe")
    make(folder, folder / where)
    if expected is None:
        check_in_time(folder)
    else:
        with pytest.raises(InputError, match=expected):
            check_in_time(folder)


@pytest.mark.slow  # starts each entry point
@pytest.mark.parametrize(
    "command",
    [["orchestration.plan"], ["orchestration.cluster", "--executor", "local"], ["orchestration.study"]],
    ids=["make-repro-plan", "cluster", "make-study"],
)
def test_every_entry_point_refuses_a_fifo_before_dvc_hashes_it(tiny_repo, command):
    """`make repro` (its plan, then the cluster driver), the cluster driver alone and `make study` check user_data/
    first: DVC would wait forever on the FIFO (a raw `dvc status` does: docs/your-task.md), the study's copy of
    the workspace would fail on it."""
    os.mkfifo(tiny_repo / "user_data" / "pipe")
    (tiny_repo / "params-study.yaml").write_text("run:\n  seeds: [1]\n")
    done = run([sys.executable, "-m", *command], tiny_repo, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert re.fullmatch(r"error: user_data/pipe: a FIFO \(named pipe\); expected a regular file .*\n", done.stderr)


def test_a_missing_user_data_folder_is_fine(tmp_path):
    user_data.check(tmp_path / "user_data")
    (tmp_path / "user_data").write_text("not a folder")
    with pytest.raises(InputError, match=r"/user_data: a regular file; expected a folder"):
        user_data.check(tmp_path / "user_data")
