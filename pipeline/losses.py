"""The student's loss: (1 - alpha) * CE(gold) + alpha * sum_k w_k(x) * KD_k(x).

KD_k is the soft cross-entropy between teacher k's and the student's temperature-T distributions.
Whether the paper scales KD by T^2 (Hinton et al.) is not known: `t2_scaling` is a switch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KD_k per instance and teacher: -sum_c p_t(c; T) log p_s(c; T).

    student_logits [B, C], teacher_logits [B, K, C] -> [B, K].
    """
    log_student = F.log_softmax(student_logits / temperature, dim=-1).unsqueeze(1)
    teacher = F.softmax(teacher_logits / temperature, dim=-1)
    return -(teacher * log_student).sum(-1)


def student_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    weights: torch.Tensor | None,
    alpha: float,
    temperature: float,
    t2_scaling: bool,
    reduction: str = "mean",
) -> torch.Tensor:
    """weights [B, K]: each row sums to 1, or to 0 for an instance that learns from the gold label only. The
    teachers' logits and the weights are targets: no gradient flows back into them (a method that learns its
    weights learns them from its own objective, in its hooks)."""
    ce = F.cross_entropy(student_logits, labels, reduction="none")
    if teacher_logits is None or alpha == 0:
        loss = ce
    else:
        weights, teacher_logits = weights.detach(), teacher_logits.detach()
        kd = (weights * soft_cross_entropy(student_logits, teacher_logits, temperature)).sum(-1)
        if t2_scaling:
            kd = kd * temperature**2
        # an instance with no teacher selected learns from the gold label alone, at full weight
        has_teacher = weights.sum(-1) > 0
        loss = torch.where(has_teacher, (1 - alpha) * ce + alpha * kd, ce)
    return loss.mean() if reduction == "mean" else loss


def fill_empty(w: torch.Tensor, no_teacher: str) -> torch.Tensor:
    """An instance with no teacher: CE alone (all-zero weights, `no_teacher: ce`), or equal weights (`equal`)."""
    if no_teacher == "ce":
        return w
    return torch.where(w.sum(-1, keepdim=True) == 0, torch.full_like(w, 1.0 / w.shape[1]), w)
