"""What a teacher-weighting method and the training loop (pipeline/distill.py, `fit`) share: the run, its epochs,
and the one hook protocol.

Each epoch the loop runs, in this order: the method's `schedule` gives the next `Epoch`; per batch of training rows
`before_update` (the student as it is), `weigh` (the batch's teacher weights [B, K], in the KD loss), the
optimiser's step, `after_update` (the student after it); then `end_epoch` (its figures go into the epoch's record).
After the last epoch, `extra` gives what the run writes beyond the loop's own records. A method with phases
(RL-KD's warm-up, policy pre-training, joint training; a fallback's rival run) states them in its `schedule`, a
generator in its own package: it yields the epochs the loop runs, and between them may set the run aside and put
it back (`Run.snapshot`, `Run.restore`), or give an epoch a learning-rate schedule of its own.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
from pydantic import BaseModel

from ..schema import Distill


@dataclass
class Run:
    """One student's training: what the loop moves, and what a method builds its weighting from."""

    method: str  # its name (single_<teacher> names the teacher)
    teachers: list[str]
    settings: BaseModel  # the method's own section, `methods.<name>`
    cfg: Distill  # the run's `distill` setting (a grid point)
    seed: int
    rng: np.random.Generator  # the run's: batch order, and a method's draws
    model: torch.nn.Module  # the student
    enc: dict  # per split the student's tokenised inputs
    pad: int
    gold: dict  # per split the gold label ids
    cache: dict  # per split (train, dev) the teachers' outputs: logits [N, K, C], ce [N, K], pooled: [N, H_k] each
    teacher_logits: torch.Tensor  # the train split's teacher logits on the student's device
    rows: np.ndarray  # the training rows the student trains on
    held_out: np.ndarray  # the training rows no student trains on (distill.held_out_fraction)
    optimizer: torch.optim.Optimizer
    scheduler: object
    weight_sum: torch.Tensor  # [N, K]: each training instance's teacher weights, summed over the epochs
    dev_accuracy: Callable[[], float]  # the student's accuracy on dev, as it is now
    acc: object = None  # compute.accelerator: the device and precision
    workers: int = 0  # loader processes

    @property
    def num_labels(self) -> int:
        return self.cache["train"]["logits"].shape[-1]

    def snapshot(self) -> tuple:
        """Everything an epoch moves: the student, its optimiser and schedule, the weight record, the batch
        order's generator."""
        return copy.deepcopy(
            (
                self.model.state_dict(),
                self.optimizer.state_dict(),
                self.scheduler.state_dict(),
                self.weight_sum,
                self.rng.bit_generator.state,
            )
        )

    def restore(self, state: tuple) -> None:
        self.model.load_state_dict(state[0])
        self.optimizer.load_state_dict(state[1])
        self.scheduler.load_state_dict(state[2])
        self.weight_sum.copy_(state[3])
        self.rng.bit_generator.state = copy.deepcopy(state[4])


@dataclass
class Epoch:
    """One pass over the training rows, as a method's schedule hands it to the loop."""

    number: int | None  # the run's epoch (scored on dev, in the history); None: a pass outside them
    desc: str  # for the progress bar and errors
    scheduler: object = None  # a learning-rate schedule of its own; None: the run's
    stats: dict = field(default_factory=dict)  # what the loop measured, once it ran


@dataclass
class Extra:
    """What a run writes beyond the loop's records: per training instance `columns` (into weights.parquet),
    `metrics` (into metrics.json) and `files` (name -> a list of JSON rows, beside them)."""

    columns: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)


class Weighting:
    """A method as the training loop sees it. `weigh` gives a batch's weights [B, K]: each row sums to one, or to
    zero for an instance that learns from the gold label alone (`fill: equal` gives it all teachers equally)."""

    static: torch.Tensor | None = None  # a fixed method's one weight per teacher [K], for the run's record
    fill: str = "ce"

    def schedule(self, run: Run) -> Iterator[Epoch]:
        """The epochs to run: the run's own, one after another."""
        for epoch in range(1, run.cfg.epochs + 1):
            yield Epoch(epoch, f"{run.method} epoch {epoch}")

    def weigh(self, idx: np.ndarray, student_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def before_update(self, idx: np.ndarray) -> None:
        pass

    def after_update(self, idx: np.ndarray, logits: torch.Tensor, pooled: torch.Tensor) -> None:
        pass

    def end_epoch(self) -> dict:
        return {}

    def extra(self, run: Run) -> Extra:
        return Extra()


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


def one_hot(k: torch.Tensor, num: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(k, num).float()
