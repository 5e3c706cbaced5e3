"""Teacher-weighting methods, one file each in this folder, found by name: `methods.load("ae_kd")` imports
pipeline/methods/ae_kd.py and returns its `METHOD`. A method gives, per batch of training rows, each
teacher's weight in the student's loss (losses.student_loss); a method that learns does so in the hooks
around the student's update. The training loop (pipeline/distill.py) knows no method by name.

A row of the results is a name under params.yaml's `methods:`: a method's file of the same name, or a named
setting of another method (`method: FILE` in its section, e.g. the paper's RL-KD with another reward), each with
its own settings, runs and DVC stages. Learning agents (`Method.stage == "agent"`: rl_kd, effect_agent) run in the
stage `agent` over run.agents, where named settings are declared; the fixed and per-batch methods run in the
stage `distill` over run.methods, by file name.

Adding a method: docs/methods.md, "Adding a method". A method's file may import the shared modules that
every distill stage lists in dvc.yaml (this one, losses, compute, schema, params_file) and third-party
packages; an agent's code beyond one file is listed in the stage `agent`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from pydantic import BaseModel

from ..params_file import InputError, validate
from ..schema import Distill, Params, Strict

FOLDER = Path(__file__).parent
SINGLE = "single_"  # single_<teacher>: the student of one teacher (pipeline/methods/single.py, stage `single`)
DROP = "drop_"  # drop_<teacher>: equal weights over every teacher but one (pipeline/methods/drop.py, stage `drop`)
FAMILIES = {SINGLE: "single", DROP: "drop"}  # name prefix -> the file and stage of a per-teacher family


class NoSettings(Strict):
    """A method without settings: its section is `{}`."""


@dataclass
class Context:
    """What a method builds its weighting from, for one student run."""

    method: str  # its name (single_<teacher> names the teacher)
    teachers: list[str]
    cache: dict  # per split (train, dev) the teachers' outputs: logits [N, K, C], ce [N, K], pooled: [N, H_k] each
    gold: dict  # per split the gold label ids
    cfg: Distill  # the run's `distill` setting (a grid point)
    settings: BaseModel  # the method's own section, `methods.<name>`
    rng: np.random.Generator  # the run's, for draws per batch
    seed: int  # the run's seed
    params: Params
    model: torch.nn.Module  # the student, for methods that measure it
    enc: dict  # the student's tokenised training split
    pad: int
    num_labels: int
    teacher_logits: torch.Tensor  # the train split's teacher logits on the student's device
    held_out: np.ndarray  # the train rows no student trains on (distill.held_out_fraction): RL-KD's reward rows
    acc: object = None  # compute.accelerator: the device and precision


class Weighting:
    """A method as the training loop sees it. `weigh` gives a batch's weights [B, K]: each row sums to one, or to
    zero for an instance that learns from the gold label alone (`fill: equal` gives it all teachers equally).
    A method that learns overrides the hooks, which the loop calls in this order each epoch:
    `start_epoch`, then per batch `weigh` (in the loss), `before_update` (before it; the student as it is)
    and `after_update` (after the optimiser's step), then `end_epoch` (its figures go into the history)."""

    static: torch.Tensor | None = None  # a fixed method's one weight per teacher [K], for the run's record
    fill: str = "ce"

    def weigh(self, idx: np.ndarray, student_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def start_epoch(self, epoch: int, trainer) -> None:
        pass

    def before_update(self, idx: np.ndarray) -> None:
        pass

    def after_update(self, idx: np.ndarray, logits: torch.Tensor, pooled: torch.Tensor) -> None:
        pass

    def end_epoch(self) -> dict:
        return {}

    def records(self, trainer) -> dict:
        """What the run keeps besides its weights, after training: `selection` (a policy's selection
        probability per training instance and teacher [N, K]) and `pretraining` (per epoch records)."""
        return {}


class Constant(Weighting):
    """One weight vector for every instance of the run."""

    def __init__(self, weights: torch.Tensor):
        self.static = weights

    def weigh(self, idx, student_logits):
        return self.static.expand(len(idx), -1)


class PerBatch(Weighting):
    """Weights from a function of the batch's rows and the student's logits, learning nothing."""

    def __init__(self, weigh: Callable[[np.ndarray, torch.Tensor], torch.Tensor]):
        self.weigh = weigh


@dataclass(frozen=True)
class Method:
    """A method's registration: `METHOD = Method(...)` in its file."""

    weighting: Callable[[Context], Weighting]
    settings: type[BaseModel] = NoSettings  # the schema of `methods.<name>`
    min_teachers: int = 1
    learns: bool = False  # it learns during the run, through the hooks
    check: Callable[[BaseModel, Params], None] | None = None  # raises ValueError("key: why") across sections
    stage: str = "distill"  # its DVC stage: `distill` (run.methods) or `agent` (run.agents, named settings too)


def files() -> list[str]:
    """The method files of this folder (a per-teacher family's file aside)."""
    return sorted(p.stem for p in FOLDER.glob("*.py") if not p.stem.startswith("_") and p.stem not in FAMILIES.values())


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


def stage_of(name: str, sections: dict | None = None) -> str:
    """The DVC stage that runs `name`: its family's (single, drop), `agent`, or `distill`."""
    return family(name) or load(name, sections).stage


def check_listed(params: Params, path="params.yaml") -> None:
    """run.methods names method files that run in the stage `distill`, run.agents the agents (files or named
    settings) of the stage `agent`: checked from the names alone, by every student stage, so that a typo stops the
    first run rather than DVC an hour later."""
    known = names(params.run.teachers, params.methods)
    for key, stage in (("methods", "distill"), ("agents", "agent")):
        for name in getattr(params.run, key):
            if name not in known:
                raise InputError(f"{path}: run.{key}: unknown method {name!r}; expected one of {known}")
            if not family(name) and module_of(name, params.methods) not in files():
                base = module_of(name, params.methods)
                raise InputError(f"{path}: methods.{name}.method: {base!r} is not a method's file; one of {files()}")
            where = stage_of(name, params.methods)
            if where != stage:
                home = {"single": "run.single", "drop": "run.drop", "agent": "run.agents", "distill": "run.methods"}
                raise InputError(
                    f"{path}: run.{key}: {name} runs in the stage `{where}` ({home[where]}); move it there"
                )
            if stage == "distill" and module_of(name, params.methods) != name:
                raise InputError(
                    f"{path}: run.methods: {name} is a named setting of {module_of(name, params.methods)}; the "
                    "stage `distill` tracks a method's own file by its name, so list it under a name of its own "
                    "file, or, for an agent, in run.agents"
                )


def run_methods(params: Params, path="params.yaml") -> dict[str, BaseModel]:
    """`check` of every method that `dvc repro` runs: run.methods, run.agents and the families of run.single
    and run.drop."""
    check_listed(params, path)
    run = params.run
    families = [*(SINGLE + t for t in run.single), *(DROP + t for t in run.drop)]
    return check(params, [*run.methods, *families, *run.agents], path)


def one_hot(k: torch.Tensor, num: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(k, num).float()
