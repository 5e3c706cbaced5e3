"""`w_ensemble`: W-Ensemble (Yuan et al. 2021): one fixed weight per teacher for the whole run,
w_k = a_k / sum_j a_j, with a_k the user's `fixed_weights`, or by default teacher k's accuracy on the dev split."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from ..schema import Strict
from . import Method
from .weighting import Constant


class Settings(Strict):
    fixed_weights: dict[str, Annotated[float, Field(ge=0, le=1e6)]] | None = None  # null: each teacher's dev accuracy


def weighting(run):
    fixed = run.settings.fixed_weights
    if fixed is None:  # proportional to each teacher's dev accuracy
        a = (run.cache["dev"]["logits"].argmax(-1) == run.gold["dev"][:, None]).float().mean(0)
    else:
        a = torch.tensor([fixed[t] for t in run.teachers], dtype=torch.float)
    return Constant(a / a.sum())


def check(settings: Settings, params) -> None:
    fixed, teachers = settings.fixed_weights, params.run.teachers
    if fixed is None:
        return
    if sorted(fixed) != sorted(teachers):
        raise ValueError(
            f"methods.w_ensemble.fixed_weights: give one weight per teacher of run.teachers {teachers}, "
            f"got {sorted(fixed)}"
        )
    if sum(fixed.values()) <= 0:
        raise ValueError("methods.w_ensemble.fixed_weights: the weights sum to zero; at least one must be positive")


METHOD = Method(weighting, kind="fixed", settings=Settings, check=check)
