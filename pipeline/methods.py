"""Teacher weighting methods: each maps a batch of cached teacher outputs to per-instance weights.

A method is a `Weighting`: `weigh(idx, student_logits) -> [B, K]` over training rows `idx`; each row
of weights sums to one (or to zero: that instance learns from the gold label alone). Names follow the
paper: `u_ensemble` (equal), `w_ensemble` (fixed), `rand_single`, `lr_ensemble`, `best_single`, plus
`single_<teacher>` and `ce` (no KD). Beyond the paper: `ca_mkd` (Zhang et al. 2022, pipeline/ca_mkd.py), `ae_kd`
(Du et al. 2020, pipeline/ae_kd.py) and `mtkd_rl` (Yang et al. 2025, pipeline/mtkd_rl.py). RL-KD's
agent plugs into the same place (pipeline/agent.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import ae_kd, mtkd_rl
from . import params as P
from .ca_mkd import ca_mkd_weights

# (training rows [B], the student's logits on them [B, C], detached, on the CPU) -> weights [B, K]
Weigh = Callable[[np.ndarray, torch.Tensor], torch.Tensor]


@dataclass
class Weighting:
    """What a method brings to the training loop: its weights per batch, and what it learns between epochs."""

    weigh: Weigh
    static: torch.Tensor | None = None  # a fixed method's one weight vector [K], for the run's record
    end_epoch: Callable[[], dict] = dict  # called after every epoch; returns figures for the epoch's history


def constant(weights: torch.Tensor) -> Weighting:
    return Weighting(lambda idx, _: weights.expand(len(idx), -1), static=weights)


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


def build(
    method: str, teachers: list[str], cache: dict, gold: dict, cfg: P.Distill, rng: np.random.Generator, seed: int = 0
) -> Weighting:
    """The weighting of `method`. `cache` holds the train and dev splits' stacked teacher outputs (logits
    [N, K, C], ce [N, K], pooled: one [N, H_k] per teacher), `gold` their labels; `rng` is the run's (drawn
    from by methods that draw per batch), `seed` the run's seed (for a method's own start)."""
    k, train, dev = len(teachers), cache["train"], cache.get("dev")
    if method == "ce":
        return constant(torch.zeros(k))
    if method.startswith("single_"):
        return constant(one_hot(torch.tensor(teachers.index(method[len("single_") :])), k))
    if method == "u_ensemble":
        return constant(torch.full((k,), 1.0 / k))
    if method == "w_ensemble":
        if cfg.fixed_weights is None:  # proportional to each teacher's dev accuracy
            acc = (dev["logits"].argmax(-1) == gold["dev"][:, None]).float().mean(0)
        else:
            acc = torch.tensor([cfg.fixed_weights[t] for t in teachers], dtype=torch.float)
        return constant(acc / acc.sum())
    if method == "lr_ensemble":
        return constant(lr_weights(dev["logits"], gold["dev"]))
    if method == "rand_single":  # one teacher per mini-batch
        return Weighting(lambda idx, _: one_hot(torch.tensor(int(rng.integers(k))), k).expand(len(idx), -1))
    if method == "best_single":  # per instance, the teacher most confident in the gold label
        return Weighting(lambda idx, _: one_hot(train["ce"][idx].argmin(-1), k))
    if method == "ca_mkd":
        return Weighting(lambda idx, _: ca_mkd_weights(train["ce"][idx]))
    if method == "ae_kd":
        return Weighting(ae_kd.weigher(train["logits"], cfg.temperature, cfg.ae_kd_tolerance))
    if method == "mtkd_rl":
        agent = mtkd_rl.Weigher(train, gold["train"], cfg, seed)
        return Weighting(agent, end_epoch=agent.end_epoch)
    raise ValueError(f"unknown method {method!r}")
