"""The study's committed runs in its workspace: carried through a code edit that changes none of their outputs,
or removed where DVC will write them again (dvc_api.commit_current puts the current ones back in DVC's cache)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline.params_file import InputError

from .dvc_api import changed_only_in, commit_current, kind, outputs_of, stale
from .workspace import cores


def carry(work: Path, kinds: tuple[str, ...], files: list[str]) -> None:
    """Keep the committed runs through an edit of `files` that changes none of their outputs. A committed run
    whose only changes are those files' hashes is carried: first one of each method (its first seed) runs again
    with the code as it is now, a run per core, and the outputs DVC caches (predictions, weights) must equal the
    committed ones byte for byte (same CPU type and threads, docs/reproducibility.md); the committed files are then
    put back, and every such run's lock entry takes the new hashes, as `dvc commit` would. Any difference stops the
    study, naming the files, and carries nothing."""
    files = {str(Path(f)) for f in files}
    carried = changed_only_in(work, kinds, files)
    by_seed = sorted(carried, key=lambda r: seed_of(r.name), reverse=True)  # each method's first seed kept last
    samples = list({r.name.rsplit("-", 1)[0]: r for r in by_seed}.values())
    print(f"study: carrying {len(carried)} committed runs through {sorted(files)}; rerunning {len(samples)} first")
    differ = []
    with tempfile.TemporaryDirectory() as kept, ThreadPoolExecutor(cores()) as pool:
        for i, run in enumerate(samples):  # the committed files, put back after the check
            for path in run.outs:
                (Path(kept) / str(i) / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(work / path, Path(kept) / str(i) / path)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        reruns = [
            pool.submit(subprocess.run, r.cmd, shell=True, cwd=work, env=env, capture_output=True) for r in samples
        ]
        for run, rerun in zip(samples, reruns):
            if rerun.result().returncode:
                raise InputError(f"--carry: `{run.cmd}` failed: {rerun.result().stderr.decode()[-2000:]}")
            differ += [path for path, md5 in run.cached.items() if file_md5(work / path) != md5]
        for i, run in enumerate(samples):
            for path in run.outs:
                shutil.copy2(Path(kept) / str(i) / path, work / path)
    if differ:
        raise InputError(
            f"--carry: the code as it is now changes {differ}: their runs are not carried; rerun the study without "
            "--carry to run them again"
        )
    commit_current(work, kinds, carried={r.name for r in carried})


def forget_stale_runs(work: Path, kinds: tuple[str, ...]) -> None:
    """Remove the committed run files that DVC will write again (a row that now runs other code: `rl_kd` before
    it was the paper's RL-KD), so that no round exports them under the row's name before its own run replaces
    them."""
    runs = {s for s in stale(work) if kind(s) in kinds and kind(s) != "analyze"}
    for folder in sorted({Path(p).parent for p in outputs_of(work, runs)}):
        if (work / folder).is_dir():
            shutil.rmtree(work / folder)


def seed_of(stage: str) -> int:
    """A run's seed, the last part of its stage's name (`distill@rt-ce-3`: 3); 0 for a stage without one."""
    last = stage.rsplit("-", 1)[-1]
    return int(last) if "-" in stage and last.isdigit() else 0


def file_md5(path: Path) -> str:
    """The MD5 that DVC records for a file."""
    return hashlib.md5(path.read_bytes()).hexdigest()
