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


def provenance(seed: int | None = None, params=None, compute: dict | None = None) -> dict:
    """What a reader needs to reproduce a run: seed, versions, parameters, and where it computed."""
    names = ["torch", "transformers", "datasets", "tokenizers", "numpy", "pandas", "dvc"]
    versions = {}
    for n in names:
        try:
            versions[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    out = {"python": sys.version.split()[0], "platform": platform.platform(), "versions": versions}
    if seed is not None:
        out["seed"] = seed
    if params is not None:
        out["params"] = params
    if compute is not None:
        out["compute"] = compute
    return out
