"""Reading params.yaml: YAML hardening, one-line errors, strict value types, and validation of a section
against its schema.

Every stage reads the file through here and validates the sections it runs (pipeline/schema.py; a
method's own section, pipeline/methods/; analysis/settings.py; the cluster's, orchestration/cluster.py).
`python -m orchestration.plan`, the first step of `make repro`, checks every section before DVC starts.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.nodes import MappingNode, SequenceNode

# the value types and the strict model that every section's schema builds on
PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
# bounds past which a value only burns hours or overflows: an epoch count of a million is a typo, not a plan
Epochs = Annotated[int, Field(gt=0, le=1000)]
LearningRate = Annotated[float, Field(gt=0, le=1)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # numpy's and torch's seed range
MaxLength = Annotated[int, Field(ge=8, le=100_000)]  # [CLS] a [SEP] b [SEP] and a few words; checked against the model
# task and teacher names become folder names and DVC stage names (`finetune@TASK-TEACHER`): plain identifiers only
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class Strict(BaseModel):
    # strict: YAML's `true` is no integer and 3.0 no epoch count; no inf or nan, which only make NaN losses
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class InputError(Exception):
    """Bad input from the user: reported as one clear line, never as a traceback."""


MAX_VALUES = 100_000  # a params file has hundreds; a grid of thousands of points is still far below


def expanded_size(node, sizes: dict | None = None) -> int:
    """How many values a composed YAML node stands for once its aliases are expanded, counted without
    expanding them: an alias is the same node object again, so each node's size is computed once. A node
    that contains itself (`x: &a [*a]`) counts as too many."""
    sizes = {} if sizes is None else sizes
    if node is None:
        return 0
    if id(node) not in sizes:
        sizes[id(node)] = MAX_VALUES + 1  # until its children are counted: a cycle back to it is unbounded
        children = (
            [c for pair in node.value for c in pair]
            if isinstance(node, MappingNode)
            else node.value
            if isinstance(node, SequenceNode)
            else []
        )
        sizes[id(node)] = 1 + sum(expanded_size(c, sizes) for c in children)
    return sizes[id(node)]


def read(path: str | Path) -> dict:
    """The file's sections as plain data, refused with a one-line reason if it is not a small YAML mapping."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: parameter file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file; expected a YAML parameter file")
    # YAML 1.2, as DVC reads and writes it: `dvc exp run -S` rewrites the file, and leaves a label such as
    # `no` unquoted, which an older (1.1) reader would take for false
    try:
        text = path.read_text(encoding="utf-8")  # whatever the locale: a C locale reads ASCII only
        yaml = YAML(typ="safe", pure=True)
        sizes: dict = {}
        size = expanded_size(yaml.compose(text), sizes)
        if size > MAX_VALUES and len(sizes) > MAX_VALUES:
            raise InputError(f"{path}: holds {len(sizes):,} values (at most {MAX_VALUES:,}); not a parameter file")
        if size > MAX_VALUES:  # aliases of aliases: a few lines that expand to a billion values, or to themselves
            raise InputError(
                f"{path}: its YAML aliases expand to {size:,} values or more (at most {MAX_VALUES:,}); "
                "write the values out instead of repeating them with aliases"
            )
        raw = yaml.load(text) or {}
    except UnicodeDecodeError as err:
        raise InputError(
            f"{path}: not UTF-8 text (byte {err.object[err.start : err.start + 1]!r} at offset {err.start})"
        ) from None
    except RecursionError:  # lists within lists a few thousand deep
        raise InputError(f"{path}: nested too deeply to be a parameter file") from None
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a mapping of sections (seed, run, tasks, ...), got a {type(raw).__name__}")
    return raw


def describe(
    err: ValidationError, prefix: str = "", known: set[str] = frozenset(), tags: set[str] = frozenset()
) -> str:
    """Pydantic's errors as `  key.path: message` lines. `prefix` is the section's own key path; `known` the
    keys a misspelt one may have meant; `tags` the discriminator values that are not keys of the file."""
    lines = []
    for e in err.errors():
        parts = [
            str(p)
            for i, p in enumerate(e["loc"])
            if p not in tags or (i == len(e["loc"]) - 1 and e["type"] != "value_error")
        ]
        got = "" if e["type"] in ("missing", "value_error", "extra_forbidden") else f" (got {e['input']!r})"
        msg = e["msg"]
        if e["type"] == "value_error":  # our validators' messages start with the key they are about
            msg = msg.removeprefix("Value error, ")
            head, sep, rest = msg.partition(": ")
            if sep and "." not in head and " " not in head and parts:  # `labels: ...` of tasks.x -> tasks.x.labels
                parts, msg = parts + [head], rest
            elif sep and not parts and " " not in head:  # `run.methods: ...` of the whole file
                parts, msg = [head], rest
        loc = ".".join(([prefix] if prefix else []) + parts)
        if e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(e["loc"][-1]), sorted(known), n=1, cutoff=0.75)
            msg = "unknown key" + (f"; did you mean {close[0]!r}?" if close else " (Extra inputs are not permitted)")
        lines.append(f"  {loc or '<top level>'}: {msg}{got}")
    return "\n".join(lines)


def known_keys(*models: type[BaseModel]) -> set[str]:
    """Every field name of these models and of the models their fields hold: the keys a typo may have meant."""
    seen, todo, keys = set(), list(models), set()
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            keys.add(name)
            todo.extend(t for t in _types_in(field.annotation) if isinstance(t, type) and issubclass(t, BaseModel))
    return keys


def _types_in(annotation) -> list:
    args = getattr(annotation, "__args__", ())
    return [annotation, *[t for a in args for t in _types_in(a)]]


def validate(model: type[BaseModel], raw, path: str | Path, prefix: str = "", tags: set[str] = frozenset()):
    """`raw` (a section, or the whole file) as `model`, or an InputError naming each bad key under `prefix`."""
    try:
        return model.model_validate({} if raw is None else raw)
    except ValidationError as err:
        raise InputError(f"{path} is invalid:\n{describe(err, prefix, known_keys(model), tags)}") from None


def named(params, kind: str, name: str):
    """`params.tasks[name]` or `params.teachers[name]` (kind "tasks" or "teachers"), for a name a stage's command
    line gives; an unknown name is refused, blamed on the command line, with the names that are defined, before
    anything is loaded."""
    defined = getattr(params, kind)
    if name not in defined:
        raise InputError(
            f"command line: unknown {kind[:-1]} {name!r}; {kind} defined in params.yaml: {sorted(defined)}"
        )
    return defined[name]


def arguments(prog: str, doc: str, *positional: tuple[str, type, str], argv: list[str] | None = None):
    """A stage's command line: `positional` arguments (name, type, help), then `--params PATH`. `--help` prints
    the module's docstring; a wrong count or type of argument is a usage error (exit code 2)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {prog}", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name, kind, text in positional:
        parser.add_argument(name, type=kind, help=text)
    parser.add_argument(
        "--params", default="params.yaml", metavar="PATH", help="the parameter file (default: %(default)s)"
    )
    return parser.parse_args(argv)


# what the machine refuses a stage (a read-only folder, a full disk, a file-size limit): one line, no traceback
ENVIRONMENT = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EMFILE}


@contextmanager
def reported_errors():
    """Turn InputError, and the machine's refusals (ENVIRONMENT), into a one-line message and exit code 2 (for a
    stage's __main__)."""
    for stream in (sys.stdout, sys.stderr):  # an ASCII locale cannot print "négatif": escape it, never fail on it,
        if hasattr(stream, "reconfigure"):  # as a print after the outputs are written would fail the stage
            stream.reconfigure(errors="backslashreplace")
    try:
        yield
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        if err.errno not in ENVIRONMENT:
            raise
        where = f"{err.filename}: " if err.filename else ""
        print(
            f"error: {where}{err.strerror or err} (refused by the machine; the outputs are as they were)",
            file=sys.stderr,
        )
        sys.exit(2)
