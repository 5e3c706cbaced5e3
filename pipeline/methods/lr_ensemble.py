"""`lr_ensemble`: LR-Ensemble (Yuan et al. 2021): one weight per teacher for the whole run, from a logistic
regression over the teachers' outputs on the dev split."""

from __future__ import annotations

import torch

from . import Method
from .weighting import Constant


def lr_weights(dev_logits: torch.Tensor, dev_labels: torch.Tensor, steps: int = 200) -> torch.Tensor:
    """Static weights by logistic regression over the teachers' outputs on the dev split.

    The model scores class c as sum_k b_k * log p_k(c) (one coefficient per teacher, shared across
    classes) and is fit by maximum likelihood; the weights are the coefficients clipped at zero and
    normalised. Dev, not train: teachers were fine-tuned on train, where their outputs are overfit.
    """
    log_probs = dev_logits.log_softmax(-1)  # [N, K, C]
    beta = torch.full((log_probs.shape[1],), 1.0 / log_probs.shape[1], requires_grad=True)
    optimizer = torch.optim.LBFGS([beta], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(torch.einsum("k,nkc->nc", beta, log_probs), dev_labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    w = beta.detach().clamp(min=0)
    return w / w.sum() if w.sum() > 0 else torch.full_like(w, 1.0 / len(w))


METHOD = Method(lambda run: Constant(lr_weights(run.cache["dev"]["logits"], run.gold["dev"])), kind="fixed")
