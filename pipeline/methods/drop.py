"""`drop_<teacher>`: U-Ensemble without one teacher, w_k = 1 / (K - 1) for every teacher but that one and 0 for it.
With single_<teacher> and u_ensemble they make the simplex grid at step 1/2 for three teachers (every vertex, every
edge's midpoint and the centre) that the dev-tuned W-Ensemble chooses from (docs/methods.md). Stage `drop`, over
run.drop."""

from __future__ import annotations

import torch

from . import DROP, Method
from .weighting import Constant


def weighting(run):
    left_out = run.teachers.index(run.method[len(DROP) :])
    weights = torch.ones(len(run.teachers))
    weights[left_out] = 0.0
    return Constant(weights / weights.sum())


METHOD = Method(weighting, kind="fixed", min_teachers=2)
