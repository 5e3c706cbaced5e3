"""What lets the study survive a kill at any point (docs/reliability.md): each round runs as a process group of
its own, stopped with the study, or by the next study if the study was killed alone; each round's git commit leaves
a marker, so that the lock files of a `git commit` killed midway are known to be the study's and cleared."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline.params_file import InputError

COMMITTING = Path(".dvc/tmp/study-commit")  # exists from a round's `git add` to the end of its `git commit`


def git(*args: str) -> str:
    for _ in range(10):  # another git command holds the index (someone committing beside the study): wait
        done = subprocess.run(["git", *args], capture_output=True, text=True)
        if "index.lock" not in done.stderr:
            break
        time.sleep(3)
    if done.returncode:
        raise InputError(f"git {' '.join(args)} failed: {done.stderr.strip()}")  # one line, no traceback
    return done.stdout.strip()


def commit(paths: list[str], message: str) -> bool:
    """Commit `paths` as they are in the working tree, nothing else; False if they hold no change. A commit that
    was killed after its ref moved leaves the index behind HEAD: `add` puts it right, and nothing is committed."""
    if not git("status", "--porcelain", "--", *paths):
        return False
    COMMITTING.parent.mkdir(parents=True, exist_ok=True)
    COMMITTING.touch()
    git("add", "--", *paths)
    staged = bool(git("diff", "--cached", "--name-only", "--", *paths))
    if staged:
        git("commit", "--quiet", "-m", message, "--", *paths)
    COMMITTING.unlink()
    return staged


def clear_killed_commit() -> list[Path]:
    """Remove the lock files that a `git add` or `git commit` of the study left when it was killed with it: those
    git created after the study's marker (a user's git at work beside the study is never touched: without the
    marker nothing is removed, and its locks are older). Returns them."""
    if not COMMITTING.exists():
        return []
    since = COMMITTING.stat().st_mtime
    gitdir = Path(git("rev-parse", "--absolute-git-dir"))
    locks = [gitdir / "index.lock", gitdir / "HEAD.lock", *gitdir.glob("*index*.lock"), *gitdir.glob("refs/**/*.lock")]
    removed = []
    for lock in dict.fromkeys(locks):
        if lock.exists() and lock.stat().st_mtime >= since:
            lock.unlink()
            removed.append(lock)
            print(f"study: removed {lock}, left by the study's git commit, killed midway", flush=True)
    COMMITTING.unlink()
    return removed


def run_round(work: Path, only: tuple[str, ...] = ()) -> int:
    """One round, `python -m orchestration.cluster --executor local` in `work` (with `--only` those kinds, if
    given), as a process group of its own (the cluster, its submitit workers and their DVC): ended with the study,
    whether it returns, fails, or is stopped by Ctrl-C (SIGINT), SIGTERM or SIGHUP. Only a SIGKILL of the study
    alone leaves it running: the next study stops it."""

    def stop(signum, frame):
        name = signal.Signals(signum).name
        raise SystemExit(f"study: stopped by {name}; the round's finished runs are in DVC's cache; rerun to continue")

    handlers = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cluster", "--executor", "local", *(["--only", *only] if only else [])],
        cwd=work,
        start_new_session=True,
    )
    try:
        return proc.wait()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # what is left of the group: nothing, unless stopped midway
        except ProcessLookupError:
            pass
        for s, handler in handlers.items():
            signal.signal(s, handler)


def stop_orphaned_round(work: Path, wait: float = 60) -> int | None:
    """Stop the round that a study killed alone left running in `work` (its cluster holds `work`'s runner lock and
    leads its own process group), so that no two writers share `work`; return its group. Anything else holding
    the lock (someone's `make repro` in `work`) is refused. The caller holds the workspace's own lock, so the
    study that started the round has ended."""
    path = work / ".dvc" / "tmp" / "runner.lock"
    if not path.exists():
        return None
    with open(path) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            holder = lock.read().strip()
        found = re.search(r"orchestration\.cluster .*\(pid (\d+)\)", holder)
        group = int(found.group(1)) if found else None
        try:
            ours = group is not None and os.getpgid(group) == group
        except ProcessLookupError:  # ended a moment ago
            ours = True
        if not ours:
            raise InputError(f"study: {work} is busy: {holder or 'another run'} holds {path}; let it finish first")
        print(f"study: stopping the round a killed study left running in {work} (process group {group})", flush=True)
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        end = time.monotonic() + wait
        while True:  # the kernel frees the lock when the group's last process holding it is gone
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return group
            except BlockingIOError:
                if time.monotonic() > end:
                    raise InputError(f"study: {holder} still holds {path} {wait:.0f} s after SIGKILL") from None
                time.sleep(0.2)
