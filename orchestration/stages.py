"""The pipeline's stage kinds as the orchestration sees them: the order they run in (waves) and which run
longest, so that a worker is not left with the longest stages at the end. The student stages come from the
registry of methods (pipeline/methods/__init__.py, `stages`)."""

from __future__ import annotations

from pipeline import methods
from pipeline.params_file import InputError

from .dvc_api import kind

STUDENTS = tuple(methods.stages())  # distill, single, drop, and the stages methods declare of their own (agent)
OWN = tuple(s for s in STUDENTS if s != "distill" and s not in methods.FAMILIES.values())
# stage kinds in dependency order; `assets` runs here first (its outputs live outside DVC's cache)
WAVES = (("prepare",), ("finetune",), ("cache", "latency"), STUDENTS, ("analyze",))
# `--executor local` takes the ready stages in this order: a stage of its own runs methods with phases (an agent's
# run takes about twice a distill run), then the teachers' caches, the families and the rest
LONGEST_FIRST = ("finetune", *OWN, "cache", *methods.FAMILIES.values(), "distill", "latency", "prepare", "analyze")
CLUSTER_KINDS = tuple(k for wave in WAVES for k in wave)  # the kinds `cluster.jobs` gives resources


class WaveFailed(Exception):
    """Stages that failed every attempt."""


def waves(stages: list[str]) -> list[dict[str, list[str]]]:
    """The stages of each wave by kind, `assets` left out; an unknown kind (a stage added to dvc.yaml
    but not to WAVES) is refused, since its place in the order is unknown."""
    known = set(CLUSTER_KINDS) | {"assets"}
    unknown = sorted({kind(s) for s in stages} - known)
    if unknown:
        raise InputError(f"dvc.yaml: stage kind(s) {unknown} have no wave in orchestration/stages.py WAVES {WAVES}")
    out = [{k: [s for s in stages if kind(s) == k] for k in wave} for wave in WAVES]
    return [{k: v for k, v in wave.items() if v} for wave in out if any(wave.values())]


def longest_first(stages: list[str]) -> list[str]:
    """Longest kinds first; within a kind, the order given (dvc.yaml's)."""
    return sorted(stages, key=lambda s: LONGEST_FIRST.index(kind(s)))


def shares(stages: list[str], jobs: int) -> list[list[str]]:
    """`stages` dealt round-robin into at most `jobs` jobs, so that the jobs get a similar mix."""
    jobs = max(1, min(jobs, len(stages)))
    return [stages[i::jobs] for i in range(jobs)]
