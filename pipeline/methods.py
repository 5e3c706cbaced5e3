"""Teacher weighting methods: each maps a batch of cached teacher outputs to per-instance weights.

A method is a callable `weigh(idx) -> [B, K]` over training rows `idx`; each row of weights sums to
one (or to zero: that instance learns from the gold label alone). Names follow the paper:
`u_ensemble` (equal), `w_ensemble` (fixed), `rand_single`, `lr_ensemble`, `best_single`, plus
`single_<teacher>`, `ce` (no KD) and `ca_mkd` (confidence-aware, Zhang et al. 2022). RL-KD plugs
into the same place.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

Weigh = Callable[[np.ndarray], torch.Tensor]


def constant(weights: torch.Tensor) -> Weigh:
    return lambda idx: weights.expand(len(idx), -1)


def one_hot(k: torch.Tensor, num: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(k, num).float()


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


def build(method: str, teachers: list[str], train: dict, dev: dict, dev_labels: torch.Tensor,
          fixed: dict[str, float] | None, rng: np.random.Generator) -> tuple[Weigh, torch.Tensor | None]:
    """Return (weigh, static weights or None).

    `train` and `dev` hold the stacked cache: logits [N, K, C] and ce [N, K].
    """
    k = len(teachers)
    if method == "ce":
        w = torch.zeros(1, k)
        return constant(w), w[0]
    if method.startswith("single_"):
        w = one_hot(torch.tensor([teachers.index(method[len("single_"):])]), k)
        return constant(w), w[0]
    if method == "u_ensemble":
        w = torch.full((1, k), 1.0 / k)
        return constant(w), w[0]
    if method == "w_ensemble":
        if fixed is None:  # proportional to each teacher's dev accuracy
            acc = (dev["logits"].argmax(-1) == dev_labels[:, None]).float().mean(0)
        else:
            acc = torch.tensor([fixed[t] for t in teachers], dtype=torch.float)
        w = (acc / acc.sum())[None]
        return constant(w), w[0]
    if method == "lr_ensemble":
        w = lr_weights(dev["logits"], dev_labels)[None]
        return constant(w), w[0]
    if method == "rand_single":  # one teacher per mini-batch
        return (lambda idx: one_hot(torch.tensor(int(rng.integers(k))), k).expand(len(idx), -1)), None
    if method == "best_single":  # per instance, the teacher most confident in the gold label
        return (lambda idx: one_hot(train["ce"][idx].argmin(-1), k)), None
    if method == "ca_mkd":  # softmax over each teacher's negative CE against the gold label
        return (lambda idx: (-train["ce"][idx]).softmax(-1)), None
    raise ValueError(f"unknown method {method!r}")
