"""`u_ensemble`: U-Ensemble, the paper's main baseline: every teacher weighs the same, w_k = 1 / K, for every
instance, so KD = (1 / K) sum_k KD_k (Yuan et al. 2021, "U-Ensemble")."""

from __future__ import annotations

import torch

from . import Method
from .weighting import Constant

METHOD = Method(lambda run: Constant(torch.full((len(run.teachers),), 1.0 / len(run.teachers))), kind="fixed")
