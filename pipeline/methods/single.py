"""`single_<teacher>`: KD from one teacher, L = (1 - alpha) CE + alpha KD_k, with w_k = 1 for that teacher and
0 for the others (the paper's single-teacher students, Table 1). Stage `single`, over run.single."""

from __future__ import annotations

import torch

from . import SINGLE, Method
from .weighting import Constant, one_hot


def weighting(run):
    teacher = run.method[len(SINGLE) :]
    return Constant(one_hot(torch.tensor(run.teachers.index(teacher)), len(run.teachers)))


METHOD = Method(weighting, kind="fixed")
