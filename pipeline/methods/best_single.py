"""`best_single`: Best-Single (Yuan et al. 2021): per instance, the teacher most confident in the gold label,
w_k = 1 for k = argmin_k CE_k(x) (each teacher's cross-entropy against the gold label, from the cache)."""

from __future__ import annotations

from . import Method
from .weighting import PerBatch, one_hot


def weighting(run):
    ce = run.cache["train"]["ce"]
    return PerBatch(lambda idx, _: one_hot(ce[idx].argmin(-1), ce.shape[1]))


METHOD = Method(weighting, kind="adaptive")
