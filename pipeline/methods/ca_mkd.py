"""`ca_mkd`: CA-MKD, confidence-aware multi-teacher knowledge distillation (Zhang, Chen and Wang, ICASSP 2022;
arXiv:2201.00007; the authors' code: github.com/Rorozhl/CA-MKD, helper/loops.py).

Only the teacher weights are taken over: the suite distils logits for every method, so CA-MKD's
intermediate-feature term is left out (docs/methods.md, fidelity).
"""

from __future__ import annotations

import torch

from . import Method
from .weighting import PerBatch


def ca_mkd_weights(ce: torch.Tensor) -> torch.Tensor:
    """CA-MKD's per-instance weights, from each teacher's cross-entropy CE_k against the gold label:

        w_k = (1 - exp(CE_k) / sum_j exp(CE_j)) / (K - 1)

    The teacher more confident in the gold label weighs more, but none more than 1 / (K - 1); the
    weights sum to one. With two teachers this is softmax(-CE); from three on it is flatter (CE [0.1, 1, 2]:
    [0.45, 0.38, 0.17], where softmax(-CE) gives [0.64, 0.26, 0.10]). ce [B, K] -> [B, K]; K >= 2.
    """
    return (1 - ce.softmax(-1)) / (ce.shape[-1] - 1)


METHOD = Method(
    lambda run: PerBatch(lambda idx, _: ca_mkd_weights(run.cache["train"]["ce"][idx])), kind="adaptive", min_teachers=2
)
