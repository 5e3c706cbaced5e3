"""The registry of teacher-weighting methods: a file or a package each in this folder, found by name:
`methods.load("ae_kd")` imports pipeline/methods/ae_kd.py and returns its `METHOD`, the registration that
declares what the method is (`Method`). A method gives, per batch of training rows, each teacher's weight in the
student's loss (losses.student_loss), through the hooks of weighting.py; the training loop (pipeline/distill.py)
knows no method by name.

A row of the results is a name under params.yaml's `methods:`: a method's file of the same name, or a named
setting of another method (`method: FILE` in its section, e.g. the paper's RL-KD with another reward), each with
its own settings, runs and DVC stages. Learning agents (`Method.stage == "agent"`: rl_kd, effect_agent) run in the
stage `agent` over run.agents, where named settings are declared; the fixed and per-batch methods run in the
stage `distill` over run.methods, by file name.

Adding a method: docs/methods.md, "Adding a method". A method's file may import the shared modules that
every distill stage lists in dvc.yaml (this one, weighting, losses, compute, training, schema, params_file) and
third-party packages; a method of several files is a package, which its stage lists.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal

from pydantic import BaseModel

from ..params_file import InputError, validate
from ..schema import Distill, Params, Strict

if TYPE_CHECKING:  # the registry reads names, not code: analyze imports it without a method's dependencies
    from .weighting import Run, Weighting

FOLDER = Path(__file__).parent
SINGLE = "single_"  # single_<teacher>: the student of one teacher (pipeline/methods/single.py, stage `single`)
DROP = "drop_"  # drop_<teacher>: equal weights over every teacher but one (pipeline/methods/drop.py, stage `drop`)
FAMILIES = {SINGLE: "single", DROP: "drop"}  # name prefix -> the file and stage of a per-teacher family


class NoSettings(Strict):
    """A method without settings: its section is `{}`."""


@dataclass(frozen=True)
class Method:
    """A method's registration: `METHOD = Method(...)` in its file, or its package's __init__.py."""

    weighting: Callable[[Run], Weighting]  # builds the run's weighting (pipeline/methods/weighting.py)
    # fixed: one weight per teacher for the run; adaptive: weights per batch from a rule that learns nothing;
    # learned: weights from something trained during the run (the analysis sets them apart, docs/methods.md)
    kind: Literal["fixed", "adaptive", "learned"]
    label: str = ""  # what it is, in the report's sentences (an agent: the paper's RL-KD, or beyond the paper)
    settings: type[BaseModel] = NoSettings  # the schema of `methods.<name>`
    min_teachers: int = 1
    check: Callable[[BaseModel, Params], None] | None = None  # raises ValueError("key: why") across sections
    # its DVC stage: `distill` (run.methods), or a stage of its own whose block in dvc.yaml lists its code: `agent`
    # (run.agents, named settings too) or any other (run.<stage>; tests/test_registry.py checks dvc.yaml against it)
    stage: str = "distill"
    files: tuple[str, ...] = ()  # what its runs write beyond predictions, weights, metrics and history (Extra.files)
    # the examples a run processes beyond a plain run of distill.epochs (a training pass counts 3): its own phases
    # and passes, from (settings, the distill setting, the split sizes); python -m orchestration.plan's estimate
    extra_examples: Callable[[BaseModel, Distill, dict], float] | None = None


def files() -> list[str]:
    """The methods of this folder, a file or a package each (a per-teacher family's file and the shared
    weighting.py aside)."""
    found = [p.stem for p in FOLDER.glob("*.py")] + [p.parent.name for p in FOLDER.glob("*/__init__.py")]
    return sorted(n for n in found if not n.startswith("_") and n not in (*FAMILIES.values(), "weighting"))


def family(name: str) -> str | None:
    return next((f for prefix, f in FAMILIES.items() if name.startswith(prefix)), None)


def module_of(name: str, sections: dict | None = None) -> str:
    """The file that runs `name`: its family's, the `method:` of its section (a named setting), or its own."""
    section = (sections or {}).get(name)
    if family(name):
        return family(name)
    if isinstance(section, dict) and "method" in section:
        return str(section["method"])
    return name


def names(teachers: list[str], sections: dict | None = None) -> list[str]:
    """Every method that can run with these teachers: a file of this folder each, the per-teacher families
    (single_<teacher>, drop_<teacher>) and the named settings of params.yaml's `methods:` (`sections`)."""
    named = [n for n, s in (sections or {}).items() if isinstance(s, dict) and "method" in s and n not in files()]
    return files() + [p + t for p in FAMILIES for t in teachers] + sorted(named)


def load(name: str, sections: dict | None = None) -> Method:
    return importlib.import_module(f"{__name__}.{module_of(name, sections)}").METHOD


def settings(params: Params, name: str, path="params.yaml") -> BaseModel:
    """The method's own section, `methods.<name>`, validated by its file's schema (a family member has none; a
    named setting's `method:` names its file and is not a setting)."""
    if family(name):
        return load(name).settings()
    if name not in params.methods:
        raise InputError(
            f"{path}: missing section methods.{name}; dvc.yaml tracks each method's own section (write "
            f"`{name}: {{}}` under `methods:` for its defaults)"
        )
    section = dict(params.methods[name] or {})
    base = section.pop("method", None)
    if base is not None and (base not in files() or base == name):
        raise InputError(
            f"{path}: methods.{name}.method: {base!r} is not another method's file; expected one of "
            f"{[f for f in files() if f != name]}"
        )
    return validate(load(name, params.methods).settings, section, path, prefix=f"methods.{name}")


def check(params: Params, chosen: list[str], path="params.yaml") -> dict[str, BaseModel]:
    """Each chosen method's settings, after checking that it exists, can run with run.teachers, and agrees with
    the other sections; nothing is trained before this passes."""
    known, k, out = names(params.run.teachers, params.methods), len(params.run.teachers), {}
    for name in chosen:
        if name not in known:
            raise InputError(f"{path}: unknown method {name!r}; expected one of {known}")
        out[name] = settings(params, name, path)
        method = load(name, params.methods)
        if k < method.min_teachers:
            raise InputError(
                f"{path}: run.teachers: {name} weighs teachers against each other and needs at least "
                f"{method.min_teachers} in run.teachers (got {params.run.teachers})"
            )
        if method.check is not None:
            try:
                method.check(out[name], params)
            except ValueError as err:  # a check names the key within the section; the section is named here
                where = "" if str(err).startswith("methods.") else f"methods.{name}."
                raise InputError(f"{path}: {where}{err}") from None
    return out


def label(name: str, sections: dict | None = None) -> str:
    """What a row is, in the report's words: its method's `label` (a named setting's: its file's); "" for none."""
    module = module_of(name, sections)
    return load(module).label if module in files() else ""


def stages() -> list[str]:
    """The DVC stages that train students, in dvc.yaml's order: `distill`, the per-teacher families' (single, drop)
    and the stages of their own that methods declare (`agent`)."""
    return ["distill", *FAMILIES.values(), *own_stages()]


def own_stages() -> list[str]:
    """The stages of their own that methods declare (`Method.stage` other than `distill`): `agent`, and any other."""
    return sorted({load(m).stage for m in files()} - {"distill"})


def run_key(stage: str) -> str:
    """The key of params.yaml's `run:` that lists a stage's rows: run.methods (distill), run.single and run.drop (the
    families, by teacher), run.agents (agent), and run.<stage> for any other stage of its own."""
    return {"distill": "methods", "agent": "agents"}.get(stage, stage)


def listed(params: Params) -> dict[str, list[str]]:
    """Each student stage's rows that `dvc repro` runs: run.methods, the families of run.single and run.drop
    (single_<teacher>, drop_<teacher>), and the list of each stage of its own."""
    run = params.run
    rows = {stage: [p + t for t in getattr(run, stage)] for p, stage in FAMILIES.items()}
    return {"distill": list(run.methods), **rows, **{s: list(getattr(run, run_key(s), [])) for s in own_stages()}}


def rows(params: Params) -> list[str]:
    """Every row `dvc repro` runs, in the stages' order."""
    return [name for names in listed(params).values() for name in names]


def stage_of(name: str, sections: dict | None = None) -> str:
    """The DVC stage that runs `name`: its family's (single, drop), the stage its method declares, or `distill`."""
    return family(name) or load(name, sections).stage


def check_listed(params: Params, path="params.yaml") -> None:
    """run.methods names method files that run in the stage `distill`, run.agents the agents (files or named
    settings) of the stage `agent`, run.<stage> those of any other stage of its own: checked from the names alone,
    by every student stage, so that a typo stops the first run rather than DVC an hour later."""
    known, own = names(params.run.teachers, params.methods), own_stages()
    lists = [("distill", "methods"), *((s, run_key(s)) for s in own)]
    for key in params.run.model_extra or {}:
        if key not in {k for _, k in lists}:
            close = [run_key(s) for s in own if s.startswith(key[:3])]
            raise InputError(
                f"{path}: run.{key}: unknown key; the methods' stages of their own are {own} (run.<stage>)"
                + (f"; did you mean run.{close[0]}?" if close else "")
            )
    for stage, key in lists:
        for name in getattr(params.run, key, []):
            if name not in known:
                raise InputError(f"{path}: run.{key}: unknown method {name!r}; expected one of {known}")
            if not family(name) and module_of(name, params.methods) not in files():
                base = module_of(name, params.methods)
                raise InputError(f"{path}: methods.{name}.method: {base!r} is not a method's file; one of {files()}")
            where = stage_of(name, params.methods)
            if where != stage:
                raise InputError(
                    f"{path}: run.{key}: {name} runs in the stage `{where}` (run.{run_key(where)}); move it there"
                )
            if stage == "distill" and module_of(name, params.methods) != name:
                raise InputError(
                    f"{path}: run.methods: {name} is a named setting of {module_of(name, params.methods)}; the "
                    "stage `distill` tracks a method's own file by its name, so list it under a name of its own "
                    "file, or, for an agent, in run.agents"
                )


def run_methods(params: Params, path="params.yaml") -> dict[str, BaseModel]:
    """`check` of every method that `dvc repro` runs (`rows`)."""
    check_listed(params, path)
    return check(params, rows(params), path)
