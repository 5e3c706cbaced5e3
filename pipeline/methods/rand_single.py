"""`rand_single`: Rand-Single (Yuan et al. 2021): one teacher drawn uniformly at random for each mini-batch,
w_k = 1 for it and 0 for the others, drawn from the run's random generator."""

from __future__ import annotations

import torch

from . import Method
from .weighting import PerBatch, one_hot


def weighting(run):
    k = len(run.teachers)
    return PerBatch(lambda idx, _: one_hot(torch.tensor(int(run.rng.integers(k))), k).expand(len(idx), -1))


METHOD = Method(weighting, kind="adaptive")
