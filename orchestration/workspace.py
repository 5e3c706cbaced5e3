"""Copies of this workspace for jobs: a snapshot without outputs, and each job's own copy of it, on a shared
DVC cache."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from pipeline.params_file import InputError

from .dvc_api import output_paths

_held = []  # the locks this process holds: released when it ends, killed or not (the kernel closes the file)

# a job's copy never holds these: DVC restores the outputs, the rest is this machine's own
NOT_COPIED = (".git", ".venv", "__pycache__", ".pytest_cache")
DVC_OWN = (".dvc/cache", ".dvc/tmp", ".dvc/config.local")


def snapshot(root: Path, to: Path, cache_dir: str, skip: tuple[str, ...] = ()) -> None:
    """Copy `root` to `to` without outputs, git, virtual environments or the paths `skip`, and point its DVC at
    `cache_dir`, without git (a job needs none). The assets stage's outputs are kept: they are not in
    DVC's cache, so they travel with the snapshot (hard-linked, hundreds of MB of encoders)."""
    skip = {root / p for p in output_paths(root) if not p.startswith("assets")} | {root / p for p in DVC_OWN + skip}

    def ignore(folder, names):
        return [n for n in names if n in NOT_COPIED or Path(folder) / n in skip]

    if to.exists():
        shutil.rmtree(to)
    shutil.copytree(root, to, ignore=ignore, symlinks=True, copy_function=linked_assets(root))
    local = to / ".dvc" / "config.local"
    local.write_text(
        f"[core]\n    no_scm = true\n    autostage = false\n[cache]\n    dir = {cache_dir}\n"
        '    type = "hardlink,copy"\n    shared = group\n'
    )


def linked_assets(root: Path):
    assets = (root / "assets").resolve()

    def copy(src, dst):
        if Path(src).resolve().is_relative_to(assets):
            try:
                return os.link(src, dst)
            except OSError:  # another filesystem
                pass
        return shutil.copy2(src, dst)

    return copy


def attempt_workspace(snap: str, folder: str, job: str, attempt: int) -> tuple[Path, Path]:
    """One attempt of a job (or local worker): its own workspace, a fresh copy of the snapshot (assets hard-linked
    again) at FOLDER/JOB/attempt-N, and the path of its log beside it."""
    to = Path(folder) / job / f"attempt-{attempt}"
    if to.exists():
        shutil.rmtree(to)
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(snap, to, symlinks=True, copy_function=linked_assets(Path(snap)))
    return to, to.parent / f"attempt-{attempt}.log"


def cores() -> int:
    """The cores this process may run on (a container's or a job's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def hold(root: Path, who: str) -> None:
    """Make this process the workspace's only runner (`make repro`, `make study`) until it ends: a second one is
    refused with who holds it, rather than two writers of one dvc.lock, one queue and one results/."""
    path = root / ".dvc" / "tmp" / "runner.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(path, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        raise InputError(
            f"{who}: this workspace is busy: {lock.read().strip() or 'another run'} holds {path}; let it finish "
            "(or stop it) and run this again"
        ) from None
    lock.truncate(0)
    lock.write(f"{who} (pid {os.getpid()})")
    lock.flush()
    _held.append(lock)
