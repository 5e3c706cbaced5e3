"""Atomic writes and digests: a crash never leaves a file that a later stage would take as valid."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import sys
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from .params_file import InputError


def sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")  # how Rust's std::io::Error ends its message


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary sibling of `path`; on success it replaces `path`, on error it is removed.

    The sibling is named by this process (`.NAME.partial-PID`): one that a killed stage left behind is
    removed by the next write of `path`, or by `remove_stale(folder)` (`make repro`'s plan step). A folder is
    replaced by two renames, old out then new in, so that a kill never leaves it half removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, path.name)
    tmp, old = (path.with_name(f".{path.name}.{kind}-{os.getpid()}") for kind in ("partial", "old"))
    _remove(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink() or (tmp.is_dir() and (path.exists() or path.is_symlink())):
            os.replace(path, old)  # a folder, or what stands where a folder goes (a file, a link): out of the way
        os.replace(tmp, path)
    except OSError as err:  # a library's write error (pyarrow's) may not say which file: this output
        if err.filename is None:
            err.filename = str(path)
        raise
    except Exception as err:  # a Rust library's (safetensors') refused write is its own error, "... (os error N)"
        if found := RUST_OS_ERROR.search(str(err)):
            code = int(found.group(1))
            raise OSError(code, os.strerror(code), str(path)) from err
        raise
    finally:
        _remove(tmp)
        _remove(old)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(folder: str | Path, name: str = "*") -> list[Path]:
    """Remove the `.NAME.partial-PID` and `.NAME.old-PID` siblings in `folder` whose process has ended."""
    stale = []
    for p in sorted(Path(folder).glob(f".{name}.*-*")):
        kind, _, pid = p.name.rpartition(".")[2].partition("-")
        if kind in ("partial", "old") and pid.isdigit() and not _alive(int(pid)):
            _remove(p)
            stale.append(p)
    return stale


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def record_digest(record: dict) -> str:
    """The sha256 of a JSON record's fields, `record_sha256` aside: a sealed record carries it, so that an edit
    to a file that later stages trust (a task card, a classifier's labels) is caught like a damaged weight file."""
    fields = {k: v for k, v in record.items() if k != "record_sha256"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def write_json(path: str | Path, obj, seal: bool = False) -> None:
    """`obj` as indented JSON, atomically; `seal` adds `record_sha256` (read_json(..., sealed=True) checks it)."""
    if seal:
        obj = {**obj, "record_sha256": record_digest(obj)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_json(path: str | Path, rerun: str = "", keys: tuple[str, ...] = (), kind: type = dict, sealed: bool = False):
    """A JSON file that a stage wrote: a `kind` (dict or list of dicts) holding `keys` (each record, for a list);
    `sealed`: a record written with write_json(..., seal=True), unedited since.

    A missing, truncated, malformed or edited file is an InputError naming the file and `rerun` (the stage
    that writes it, e.g. "dvc repro prepare@rt"), never a traceback in the stage that reads it."""
    path, hint = Path(path), f"; rerun `{rerun}`" if rerun else ""
    if not path.is_file():
        raise InputError(f"{path}: not found{hint}")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not valid JSON ({err}){hint}") from None
    records = obj if kind is list and isinstance(obj, list) else [obj]
    if not isinstance(obj, kind) or not all(isinstance(r, dict) for r in records):
        raise InputError(f"{path}: expected a JSON {'list of objects' if kind is list else 'object'}{hint}")
    for r in records:
        missing = [k for k in keys if k not in r]
        if missing:
            raise InputError(f"{path}: fields {missing} missing{hint}")
    if sealed and obj.get("record_sha256") != record_digest(obj):
        raise InputError(f"{path}: edited since its stage wrote it (its fields differ from their record_sha256){hint}")
    return obj


def read_parquet(path: str | Path, rerun: str = "", columns: tuple[str, ...] = ()):
    """A Parquet file that a stage wrote, with `columns`; missing, damaged or short of a column: an InputError."""
    import pandas as pd

    path, hint = Path(path), f"; rerun `{rerun}`" if rerun else ""
    if not path.is_file():
        raise InputError(f"{path}: not found{hint}")
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as err:  # pyarrow's errors for a truncated or damaged file derive from these
        raise InputError(f"{path}: unreadable Parquet ({type(err).__name__}){hint}") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"{path}: columns {missing} missing{hint}")
    return df


def provenance(seed: int | None = None, params=None, compute: dict | None = None, machine: bool = True) -> dict:
    """What a reader needs to reproduce a run: seed, versions, parameters, and where it computed.

    `machine=False` for files that later stages depend on (manifest, task card, cache summary): the same bytes
    must come out on another machine when the numbers do, or DVC would redo everything downstream there."""
    names = ["torch", "transformers", "datasets", "tokenizers", "numpy", "pandas", "dvc"]
    versions = {}
    for n in names:
        try:
            versions[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    out = {"python": sys.version.split()[0], "versions": versions}
    if machine:
        out.update(this_machine())
    if seed is not None:
        out["seed"] = seed
    if params is not None:
        out["params"] = params
    if compute is not None:
        out["compute"] = compute
    return out


ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def this_machine() -> dict:
    """The OS and the CPU: float kernels differ between CPU types (AVX2, AVX-512, vendors), and so do the
    last digits of a training run and what follows from them; the same CPU type gives the same bytes."""
    import torch

    model = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    kernels = {k: os.environ[k] for k in ISA_VARIABLES if k in os.environ}  # set by hand, they change the bytes
    return {
        "platform": platform.platform(),
        "cpu": {
            "model": model or platform.processor() or platform.machine(),
            "arch": platform.machine(),
            "capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(),
            **({"kernel_overrides": kernels} if kernels else {}),
        },
    }
