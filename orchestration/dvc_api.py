"""DVC as the orchestration uses it: the `dvc` command, and the few internals it needs that DVC's command line
does not give. Every use of DVC's Python API is in this module, and `check()` names each attribute it relies on:
dvc is pinned (pyproject.toml), and tests/test_dvc_api.py (fast tier) fails with the missing name if an upgrade
moves one. What the internals do here:
- the stage graph (`repo.index.graph`): which stages a changed one drags along, and each stage's upstream;
- the run-cache (`repo.stage_cache.save`, `restore`): a stage with an uncached output (`cache: false`) is saved
  to it by hand, so that a job elsewhere can restore it; the jobs' stages are restored from it in one pass;
- dvc.lock (a stage's `save`/`commit`, `dvcfile.dump_stages`, and plain YAML edits): committed runs put back in
  the cache, and lock entries dropped so that DVC restores from the run-cache instead of the lock.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.io import atomic_path

# what `dvc repro` says of each stage: it ran, or came back from the run-cache
RAN = re.compile(r"Running stage '([^']+)'")
RESTORED = re.compile(r"Stage '([^']+)' is cached - skipping run")
# the internals this module uses: (where, attribute), checked by check()
USED = (
    ("dvc.repo.Repo", "index"),
    ("dvc.repo.Repo", "status"),
    ("dvc.repo.Repo", "stage_cache"),
    ("dvc.repo.Repo", "lock"),
    ("dvc.repo.index.Index", "stages"),
    ("dvc.repo.index.Index", "graph"),
    ("dvc.stage.cache.StageCache", "save"),
    ("dvc.stage.cache.StageCache", "restore"),
    ("dvc.stage.cache.RunCacheNotFoundError", "__init__"),
    ("dvc.stage.PipelineStage", "name"),
    ("dvc.stage.Stage", "cmd"),
    ("dvc.stage.Stage", "deps"),
    ("dvc.stage.Stage", "outs"),
    ("dvc.stage.Stage", "addressing"),
    ("dvc.stage.Stage", "changed_stage"),
    ("dvc.stage.Stage", "changed_deps"),
    ("dvc.stage.Stage", "changed_outs"),
    ("dvc.stage.Stage", "save"),
    ("dvc.stage.Stage", "commit"),
    ("dvc.stage.Stage", "remove_outs"),
    ("dvc.stage.Stage", "dvcfile"),
    ("dvc.dvcfile.ProjectFile", "dump_stages"),
    ("dvc.output.Output", "use_cache"),
    ("dvc.output.Output", "hash_info"),
    ("dvc.output.Output", "def_path"),
    ("dvc.output.Output", "fs_path"),
    ("dvc.output.Output", "exists"),
    ("dvc.dependency.base.Dependency", "status"),
)


class DvcFailed(RuntimeError):
    """`dvc` exited with an error (a stage failed, or DVC itself)."""


def dvc(*args: str, cwd: Path | str = ".", check: bool = True) -> str:
    """Run DVC with this interpreter's folder first on PATH, so that stages' `python` is this one."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and done.returncode:
        raise DvcFailed(f"dvc {' '.join(args)} failed in {cwd} (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def cache_dir(cwd: Path | str = ".") -> str:
    """This workspace's DVC cache folder, absolute."""
    return str(Path(dvc("cache", "dir", cwd=cwd).strip().splitlines()[-1]).resolve())


def kind(stage: str) -> str:
    """A stage's kind: the name before `@` (`distill@rt-ce-1`: distill)."""
    return stage.split("@")[0]


def stage_names(root: Path | str = ".") -> list[str]:
    """Every stage of dvc.yaml by name (`distill@rt-ce-1`), in dvc.yaml's order."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return [stage.name for stage in repo.index.stages]


def stale(root: Path | str = ".") -> set[str]:
    """The stages `dvc repro` would run: those `dvc status` finds changed, and every stage downstream of them
    (`dvc repro --dry` cannot say: it stops at the first dependency that is not there yet)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return _stale(repo)


def _stale(repo) -> set[str]:
    import networkx as nx

    changed = repo.status()
    graph = repo.index.graph  # edges: stage -> a stage it depends on
    hit = [s for s in repo.index.stages if s.addressing in changed or s.name in changed]
    return {s.name for s in hit} | {a.name for s in hit for a in nx.ancestors(graph, s)}


def _upstream(repo, name: str) -> set[str]:
    import networkx as nx

    by_name = {s.name: s for s in repo.index.stages}
    return {d.name for d in nx.descendants(repo.index.graph, by_name[name])}


@dataclass
class Todo:
    """What `dvc repro` would do here: the stages it would run (`stages`, in dvc.yaml's order), each one's upstream
    among them (`needs`) and every stage upstream of each (`above`)."""

    stages: list[str]
    needs: dict[str, list[str]]
    above: dict[str, set[str]]

    def inputs(self, stages: list[str]) -> list[str]:
        """The stages done already whose outputs `stages` read: what a job that runs them restores first."""
        return sorted(set().union(*(self.above[s] for s in stages)) - set(self.stages))

    def only(self, kinds: set[str]) -> Todo:
        """The stages of `kinds` and those they need, upstream among the stages to do, direct or not."""
        wanted = {s for s in self.stages if kind(s) in kinds}
        keep = [s for s in self.stages if s in wanted or any(s in self.above[w] for w in wanted)]
        return Todo(keep, {s: [n for n in self.needs[s] if n in keep] for s in keep}, {s: self.above[s] for s in keep})


def todo(root: Path | str = ".") -> Todo:
    """stale() and each stage's upstream (DVC's graph, direct or not) in one reading of dvc.yaml and dvc.lock: at
    the study's 346 stages each reading takes 5 s, and `dvc status` 16."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        changed = _stale(repo)
        stages = [s.name for s in repo.index.stages if s.name in changed]
        above = {s: _upstream(repo, s) for s in stages}
    return Todo(stages, {s: sorted(up & set(stages)) for s, up in above.items()}, above)


def output_paths(root: Path) -> list[str]:
    """Every output path of dvc.yaml, relative to `root`."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return sorted({os.path.relpath(out.fs_path, root) for stage in repo.index.stages for out in stage.outs})


def outputs_of(root: Path, stages: set[str]) -> list[str]:
    """The output paths of `stages`, as dvc.yaml names them (relative to `root`)."""
    from dvc.repo import Repo

    with contextlib.chdir(root), Repo(".") as repo:
        return sorted({str(out.def_path) for stage in repo.index.stages if stage.name in stages for out in stage.outs})


def save_uncached(work: Path, stages: list[str]) -> None:
    """DVC keeps a stage out of its run-cache when an output is `cache: false` (finetune's metrics, latency,
    analyze: results/ is committed to git), so the stages whose restore elsewhere would fail are saved to it
    here; the run-cache then holds a copy of those outputs, and `dvc repro` restores them."""
    from dvc.repo import Repo

    wanted = set(stages)
    with contextlib.chdir(work), Repo(".") as repo:  # DVC resolves a stage's name against the current folder
        # one pass over the index: `repo.stage.collect(name)` parses dvc.yaml again for each name (about 3 s a
        # stage at the study's 179 stages, minutes before a round's first stage)
        for stage in repo.index.stages:
            if stage.name in wanted and any(not out.use_cache for out in stage.outs):
                repo.stage_cache.save(stage)


def forget(lock: Path, stages: list[str]) -> None:
    """Drop `stages` from the dvc.lock `lock`, so that DVC finds them in its run-cache. DVC restores a stage whose
    lock entry still matches its dependencies from that entry's outputs, never from the run-cache; a lock
    committed from another run names metrics files with that run's timings, which this cache lacks, so every
    job would run those stages again (a fresh clone would fine-tune each teacher once per job)."""
    _edit_lock(lock, lambda name: name in stages)


def keep_only(lock: Path, stages: list[str]) -> None:
    """Drop every entry of the dvc.lock `lock` but those of `stages`. A job's copy needs only the entries of what
    its stages read; DVC parses and rewrites the whole lock about ten times a `dvc repro`, and the study's (44,000
    lines at 346 stages) took 70 s of a worker's first stage and 15 of each next one."""
    _edit_lock(lock, lambda name: name not in stages)


def _edit_lock(lock: Path, drop) -> None:
    from ruamel.yaml import YAML

    if not lock.exists():
        return
    yaml = YAML()
    entries = yaml.load(lock.read_text())
    if entries and entries.get("stages"):
        for name in [n for n in entries["stages"] if drop(n)]:
            entries["stages"].pop(name)
        with atomic_path(lock) as tmp, open(tmp, "w") as f:
            yaml.dump(entries, f)


def restore(root: Path, stages: list[str]) -> list[str]:
    """Restore `stages` from DVC's run-cache and record them in dvc.lock in one writing of it, as `dvc repro` does
    for a stage it finds there (remove its outputs, check out the cached ones, save, commit) but for the lock,
    which `dvc repro` rewrites after each stage: at the study's 346 stages, 5 s a stage. A stage the run-cache
    lacks, or whose upstream it lacks, is left to `dvc repro`. Returns those restored."""
    import networkx as nx
    from dvc.repo import Repo
    from dvc.stage.cache import RunCacheNotFoundError

    restored, missed = [], set()
    with contextlib.chdir(root), Repo(".") as repo, repo.lock:
        graph = repo.index.graph  # edges: stage -> a stage it depends on; reversed, upstream comes first
        for stage in reversed(list(nx.topological_sort(graph))):
            if stage.name not in stages:
                continue
            if {d.name for d in nx.descendants(graph, stage)} & missed:
                missed.add(stage.name)
                continue
            try:
                stage.remove_outs(ignore_remove=False, force=False)
                repo.stage_cache.restore(stage)
            except RunCacheNotFoundError:
                missed.add(stage.name)
                continue
            stage.save(run_cache=False)  # in the run-cache already
            stage.commit()
            restored.append(stage)
        if restored:
            restored[0].dvcfile.dump_stages(restored, update_pipeline=False)
    return [s.name for s in restored]


def commit_current(work: Path, kinds: tuple[str, ...], carried: set[str] = frozenset()) -> None:
    """Put the runs of `kinds` whose lock entries are still current (same command, same dependencies, their files
    as the lock names them; for the stages `carried`, dependencies aside) into DVC's cache and run-cache, and
    their entries into dvc.lock. A run whose code or inputs changed is left stale, for DVC to run again."""
    from dvc.repo import Repo

    def current(stage) -> bool:
        # `dvc status` calls every output of a fresh clone's runs changed ("not in cache"), which is what this puts
        # right; any other change (command, dependency, a file edited or missing) leaves the run to DVC
        return (
            all(out.exists for out in stage.outs)
            and not stage.changed_stage()
            and (stage.name in carried or not stage.changed_deps())
            and not stage.changed_outs(allow_missing=True)
        )

    # what `dvc commit --force NAME` does for each (save: outputs' hashes and the run-cache; commit: the cache;
    # the lock), in one pass over the index: `repo.commit(name)` parses dvc.yaml again for each name, about 3 s
    # a stage, minutes at a hundred committed runs
    with contextlib.chdir(work), Repo(".") as repo, repo.lock:
        stages = [s for s in repo.index.stages if kind(s.name) in kinds and current(s)]
        for stage in stages:
            stage.save()
            stage.commit()
        if stages:
            stages[0].dvcfile.dump_stages(stages, update_pipeline=False)


@dataclass
class Run:
    """A committed run as dvc.lock records it: its stage, command, outputs and the hashes of those DVC caches."""

    name: str
    cmd: str
    outs: list[str]
    cached: dict[str, str]  # output path -> MD5: the files DVC caches (not those it leaves to git)


def changed_only_in(work: Path, kinds: tuple[str, ...], files: set[str]) -> list[Run]:
    """The runs of `kinds` whose only change since their lock entry is the hash of some of `files` (code edited),
    their outputs all there and as recorded."""
    from dvc.repo import Repo

    out = []
    with contextlib.chdir(work), Repo(".") as repo, repo.lock:
        for stage in repo.index.stages:
            if kind(stage.name) not in kinds or stage.changed_stage():
                continue
            changed = {d.def_path for d in stage.deps if d.status()}
            if changed and changed <= files and all(o.exists for o in stage.outs):
                if not stage.changed_outs(allow_missing=True):
                    cached = {str(o.def_path): o.hash_info.value for o in stage.outs if o.use_cache}
                    out.append(Run(stage.name, stage.cmd, [str(o.def_path) for o in stage.outs], cached))
    return out


def check() -> None:
    """Raise, naming it, if an internal this module uses is gone (a DVC upgrade past the pinned version)."""
    import importlib
    from importlib.metadata import version

    for where, name in USED:
        module, cls = where.rsplit(".", 1)
        owner = getattr(importlib.import_module(module), cls, None)
        # an attribute set in __init__ (a dataclass field, an instance attribute) shows in the annotations or
        # __init__'s code; a method or property on the class
        known = owner is not None and (
            hasattr(owner, name)
            or name in getattr(owner, "__annotations__", {})
            or name in getattr(getattr(owner, "__init__", None), "__code__", type("", (), {"co_names": ()})).co_names
        )
        if not known:
            raise RuntimeError(
                f"DVC {version('dvc')}: {where}.{name} is gone; orchestration/dvc_api.py relies on it "
                "(written against the dvc pinned in pyproject.toml)"
            )
