"""Atomic writes and digests: a crash never leaves a file that a later stage would take as valid."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path


def sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary sibling of `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    _remove(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def write_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


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
