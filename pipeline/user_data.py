"""The folder of users' data files (`user_data/`): only what DVC can hash.

DVC hashes the whole folder as a dependency of every `prepare` stage. A FIFO, or a link to /dev/zero, in it
makes `dvc status` (and so `dvc repro`) hang; a linked folder is read by `prepare` but not hashed, so an edit
to it would go unseen. `make repro`'s plan step and `prepare` refuse both before DVC gets there.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .params_file import InputError


def file_type(mode: int) -> str:
    for test, what in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return what
    return "a special file"


def check(folder: Path) -> None:
    """Refuse what DVC cannot hash in the folder of users' files (a FIFO or a link to /dev/zero hangs
    `dvc status`; a linked folder is read by prepare but not hashed, so an edit to it would go unseen): only
    regular files, folders and links to regular files. Walks without following links, and never opens a file."""
    folder = Path(folder)
    if not os.path.lexists(folder):
        return
    expected = "expected a regular file or a folder (DVC hashes the whole folder; copy the data in instead)"
    try:
        top = os.stat(folder)  # the folder itself may be a link to a folder elsewhere: DVC follows that one
    except OSError as err:
        raise InputError(f"{folder}: a link that leads nowhere ({err.strerror}); expected a folder") from None
    if not stat.S_ISDIR(top.st_mode):
        raise InputError(f"{folder}: {file_type(top.st_mode)}; expected a folder of data files")
    pending = [folder]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                entries = sorted(entries, key=lambda e: e.name)
        except OSError as err:
            raise InputError(f"{err.filename}: cannot list this folder ({err.strerror})") from None
        for entry in entries:
            path = Path(entry.path)
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                pending.append(path)
            elif stat.S_ISLNK(mode):
                try:
                    target = os.stat(path).st_mode  # stat, not open: a FIFO at the end of a link does not block
                except OSError as err:
                    what = "a cycle of links" if err.errno == errno.ELOOP else f"nowhere ({err.strerror})"
                    raise InputError(f"{path}: a link that leads to {what}; {expected}") from None
                if not stat.S_ISREG(target):
                    raise InputError(
                        f"{path}: a link to {file_type(target)} ({os.readlink(path)}); {expected}"
                        + (" (a linked folder is read, but DVC does not hash it)" if stat.S_ISDIR(target) else "")
                    )
            elif not stat.S_ISREG(mode):
                raise InputError(f"{path}: {file_type(mode)}; {expected}")
