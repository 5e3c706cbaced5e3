"""`ae_kd`: AE-KD, adaptive ensemble knowledge distillation in gradient space (Du, You, Li, Wu, Wang, Qian and
Zhang, "Agree to Disagree", NeurIPS 2020; the authors' code: github.com/AnTuo1998/AE-KD).

Each teacher's KD loss pulls the student's logits its own way. AE-KD weighs the teachers so that
the combined pull is the shortest vector in the (capped) convex hull of the teachers' pulls, the
multiple-gradient descent direction of Sener and Koltun (2018), recomputed for every batch.
"""

from __future__ import annotations

import warnings
from typing import Annotated

import numpy as np
import torch
from pydantic import Field
from scipy.optimize import minimize

from ..schema import Strict
from . import Method
from .weighting import PerBatch


class Settings(Strict):
    # the cap C on each teacher's weight, from 1 / K (equal weights) to 1 (plain min-norm); the authors' 0.6
    tolerance: Annotated[float, Field(gt=0, le=1)] = 0.6


def min_norm_weights(g: torch.Tensor, cap: float) -> torch.Tensor:
    """The weights a of AE-KD's problem over K gradient vectors g [K, D]:

        min_a || sum_k a_k g_k ||^2   subject to   sum_k a_k = 1,  0 <= a_k <= C

    C = `cap` (the paper's tolerance, in [1/K, 1]; below 1/K it counts as 1/K, as in the authors' code): C = 1
    is plain min-norm, C = 1/K equal weights. The authors solve it as a one-class SVM's dual (scikit-learn);
    here scipy's SLSQP solves the same quadratic programme on the K x K Gram matrix. Returns [K], summing to one.
    """
    k = len(g)
    cap = max(cap, 1.0 / k)
    q = (g.double() @ g.double().T).numpy()
    q = q / max(np.trace(q) / k, 1e-300)  # the weights do not depend on the scale; SLSQP's tolerances do
    if not np.isfinite(q).all() or np.abs(q).max() == 0:  # the student agrees with every teacher
        return torch.full((k,), 1.0 / k)
    result = minimize(
        lambda a: a @ q @ a,
        np.full(k, 1.0 / k),
        jac=lambda a: 2 * q @ a,
        method="SLSQP",
        bounds=[(0.0, cap)] * k,
        options={"ftol": 1e-12, "maxiter": 200},
        constraints=[{"type": "eq", "fun": lambda a: a.sum() - 1, "jac": lambda a: np.ones(k)}],
    )
    if not result.success:  # not seen in practice; the weights below are then the solver's last feasible guess
        warnings.warn(f"AE-KD's min-norm problem: SLSQP stopped early ({result.message})", RuntimeWarning)
    a = np.clip(result.x, 0.0, cap)
    return torch.tensor(a / a.sum(), dtype=torch.float)


def kd_gradients(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Each teacher's KD gradient with respect to the batch's student logits, up to one common factor:

        d KD_k / d z_s = (T / B) (softmax(z_s / T) - softmax(z_k / T))   (with T^2 scaling; 1 / (T B) without)

    for the soft cross-entropy at temperature T averaged over a batch of B. student_logits [B, C],
    teacher_logits [B, K, C] -> [K, B * C]: the whole batch's logits, one vector per teacher. A departure:
    the authors' code averages over the batch first, to one C-vector per teacher; with two classes every
    such vector lies on the line (1, -1), so the weights compare only each teacher's batch-average
    probabilities with the student's, and instances on which teachers disagree in opposite directions
    cancel (docs/methods.md).
    """
    diff = (student_logits / temperature).softmax(-1)[:, None] - (teacher_logits / temperature).softmax(-1)
    return diff.transpose(0, 1).reshape(teacher_logits.shape[1], -1)


def weigher(teacher_logits: torch.Tensor, temperature: float, cap: float):
    """weigh(idx, student_logits) -> [B, K]: the batch's min-norm weights, the same for each of its instances
    (constants in the student's loss, as in the authors' code)."""

    def weigh(idx: np.ndarray, student_logits: torch.Tensor) -> torch.Tensor:
        g = kd_gradients(student_logits, teacher_logits[idx], temperature)
        return min_norm_weights(g, cap).expand(len(idx), -1)

    return weigh


def check(settings: Settings, params) -> None:
    k = len(params.run.teachers)
    if settings.tolerance * k < 1 - 1e-3:  # 0.333 stands for 1/3
        raise ValueError(
            f"methods.ae_kd.tolerance: {settings.tolerance} caps each of the {k} teachers' weights below 1/{k}, "
            f"so they cannot sum to one; at least 1/{k} ({1 / k:.3f}: equal weights)"
        )


METHOD = Method(
    lambda run: PerBatch(weigher(run.cache["train"]["logits"], run.cfg.temperature, run.settings.tolerance)),
    kind="adaptive",
    settings=Settings,
    check=check,
)
