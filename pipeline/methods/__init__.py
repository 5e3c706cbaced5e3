"""Teacher-weighting methods, one file each in this folder, found by name: `methods.load("ae_kd")` imports
pipeline/methods/ae_kd.py and returns its `METHOD`. A method gives, per batch of training rows, each
teacher's weight in the student's loss (losses.student_loss); a method that learns does so in the hooks
around the student's update. The training loop (pipeline/distill.py) knows no method by name.

Adding a method: docs/methods.md, "Adding a method". A method's file may import the shared modules that
every distill stage lists in dvc.yaml (this one, losses, compute, schema, params_file) and third-party
packages; code of its own beyond one file needs a stage of its own, as rl_kd has.
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
OWN_STAGE = ("rl_kd",)  # methods with a stage of their own in dvc.yaml, not listed in run.methods


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


def module_of(name: str) -> str:
    return "single" if name.startswith(SINGLE) else name


def names(teachers: list[str]) -> list[str]:
    """Every method that can run with these teachers: a file of this folder each, and single_<teacher>."""
    files = sorted(p.stem for p in FOLDER.glob("*.py") if not p.stem.startswith("_") and p.stem != "single")
    return files + [SINGLE + t for t in teachers]


def load(name: str) -> Method:
    return importlib.import_module(f"{__name__}.{module_of(name)}").METHOD


def settings(params: Params, name: str, path="params.yaml") -> BaseModel:
    """The method's own section, `methods.<name>`, validated by its schema (single_<teacher> has none)."""
    method = load(name)
    if name.startswith(SINGLE):
        return method.settings()
    if name not in params.methods:
        raise InputError(
            f"{path}: missing section methods.{name}; dvc.yaml tracks each method's own section (write "
            f"`{name}: {{}}` under `methods:` for its defaults)"
        )
    return validate(method.settings, params.methods[name], path, prefix=f"methods.{name}")


def check(params: Params, chosen: list[str], path="params.yaml") -> dict[str, BaseModel]:
    """Each chosen method's settings, after checking that it exists, can run with run.teachers, and agrees with
    the other sections; nothing is trained before this passes."""
    known, k, out = names(params.run.teachers), len(params.run.teachers), {}
    for name in chosen:
        if name not in known:
            raise InputError(f"{path}: unknown method {name!r}; expected one of {known}")
        method, out[name] = load(name), settings(params, name, path)
        if k < method.min_teachers:
            raise InputError(
                f"{path}: run.teachers: {name} weighs teachers against each other and needs at least "
                f"{method.min_teachers} in run.teachers (got {params.run.teachers})"
            )
        if method.check is not None:
            try:
                method.check(out[name], params)
            except ValueError as err:
                raise InputError(f"{path}: {err}") from None
    return out


def check_listed(params: Params, path="params.yaml") -> None:
    """run.methods names methods of this folder that run in the stage `distill`: checked from the file names
    alone, by every student stage, so that a typo stops the first run rather than DVC an hour later."""
    known = names(params.run.teachers)
    for name in params.run.methods:
        if name in OWN_STAGE or name.startswith(SINGLE):
            where = "run.single" if name.startswith(SINGLE) else f"its own stage, `{name}`"
            raise InputError(f"{path}: run.methods: {name} runs in {where}; remove it from run.methods")
        if name not in known:
            raise InputError(f"{path}: run.methods: unknown method {name!r}; expected one of {known}")


def run_methods(params: Params, path="params.yaml") -> dict[str, BaseModel]:
    """`check` of every method that `dvc repro` runs: run.methods, single_<teacher> of run.single, and rl_kd."""
    check_listed(params, path)
    return check(params, [*params.run.methods, *(SINGLE + t for t in params.run.single), *OWN_STAGE], path)


def one_hot(k: torch.Tensor, num: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(k, num).float()
