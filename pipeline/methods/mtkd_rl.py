"""`mtkd_rl`: MTKD-RL, multi-teacher knowledge distillation with reinforcement learning (Yang, Yu, Wang, Huang,
An, Li, Feng, Xu and Tian, AAAI 2025; arXiv:2502.18510; the authors' code: github.com/winycg/MTKD-RL).

An agent reads each teacher's state on an instance (its pooled vector, its logits, its CE against
the gold label and its KL divergence from the student) and outputs that instance's teacher weights;
it learns from a per-instance reward, minus the student's loss. This follows the authors' code, which
departs from a textbook policy gradient in three ways, kept here (docs/methods.md, fidelity):
- the agent's softmax is one of three weightings mixed with learned proportions, beside CA-MKD's
  confidence weights and a softmax over the teachers' KL divergences (the code's `--dynamic`, as in
  the authors' runs);
- nothing is sampled: the agent minimises -r * log w, the reward-weighted log of its own weights;
- rewards are standardised over the batch and clipped to [0, 1].
The first epoch trains the student with equal weights while the agent gathers its first rewards;
the agent learns from the batches gathered since it last learned, in order, one SGD step each, every
1000 batches and at the end of every epoch.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field

from ..schema import Distill, Strict
from . import Method
from .weighting import Weighting


class Settings(Strict):
    lr: Annotated[float, Field(gt=0, le=10)] = 0.1  # the agent's SGD learning rate, the authors' 0.1


HIDDEN = 128  # the authors' agent: Linear(state -> 128, no bias), ReLU, Linear(128 -> K), softmax
AGENT_STEP = 1000  # the authors' --agent-step: batches between the agent's updates within an epoch


class WeightNet(torch.nn.Module):
    """The authors' agent network and its mix of three weightings."""

    def __init__(self, width: int, teachers: int):
        super().__init__()
        self.stem = torch.nn.Linear(width, HIDDEN, bias=False)
        self.head = torch.nn.Linear(HIDDEN, teachers)
        self.mix = torch.nn.Parameter(torch.ones(3))  # proportions of agent, confidence and divergence weights

    def forward(self, state: torch.Tensor, confidence: torch.Tensor, divergence: torch.Tensor) -> torch.Tensor:
        """w = m_1 softmax(agent(state)) + m_2 confidence + m_3 divergence, with m = softmax(mix): [B, K]."""
        m = self.mix.softmax(0)
        return m[0] * self.head(F.relu(self.stem(state))).softmax(-1) + m[1] * confidence + m[2] * divergence


def kl_divergences(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(p_k || p_s) T^2 per instance and teacher, at temperature T: [B, C], [B, K, C] -> [B, K]."""
    log_s = (student_logits / temperature).log_softmax(-1)[:, None]
    log_t = (teacher_logits / temperature).log_softmax(-1)
    return (log_t.exp() * (log_t - log_s)).sum(-1) * temperature**2


def rewards(
    student_logits: torch.Tensor, labels: torch.Tensor, kl: torch.Tensor, w: torch.Tensor, cfg: Distill
) -> torch.Tensor:
    """The per-instance reward: minus the student's loss (1 - alpha) CE + alpha sum_k w_k KL_k (the suite's loss,
    with KL for the soft cross-entropy, as the authors' reward), standardised over the batch and clipped to
    [0, 1]: an instance the student already fits better than the batch's average is rewarded, up to 1."""
    kd = (w * kl).sum(-1) * (1.0 if cfg.t2_scaling else cfg.temperature**-2)
    r = -((1 - cfg.alpha) * F.cross_entropy(student_logits, labels, reduction="none") + cfg.alpha * kd)
    if len(r) < 2 or r.std() == 0:  # nothing to standardise against
        return torch.zeros_like(r)
    return ((r - r.mean()) / r.std()).clamp(0, 1)


def confidence_weights(ce: torch.Tensor) -> torch.Tensor:
    """CA-MKD's weights (pipeline/methods/ca_mkd.py), w_k = (1 - softmax(CE)_k) / (K - 1): written out here, so
    that MTKD-RL's runs depend on this file alone."""
    return (1 - ce.softmax(-1)) / (ce.shape[-1] - 1)


class MTKDRL(Weighting):
    """MTKD-RL as a method of the distill stage: `weigh` gives a batch's weights; `end_epoch` trains the agent."""

    def __init__(self, train: dict, labels: torch.Tensor, cfg: Distill, seed: int, lr: float):
        self.logits, self.ce, self.pooled = train["logits"], train["ce"], train["pooled"]
        self.labels, self.cfg = labels, cfg
        k, classes = self.logits.shape[1:]
        width = sum(p.shape[1] for p in self.pooled) + k * (classes + 2)
        with torch.random.fork_rng():  # the agent's start depends on the seed only, not on the student's draws
            torch.manual_seed(seed)
            self.agent = WeightNet(width, k)
        self.optimizer = torch.optim.SGD(self.agent.parameters(), lr=lr)
        self.epoch, self.buffer, self.losses, self.rewards = 1, [], [], []

    def state(self, idx, kl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(state [B, sum_k (H_k + C + 2)], confidence weights, divergence weights): per teacher, its KL from
        the student, its CE, its pooled vector and its logits, concatenated over teachers, unnormalised."""
        parts = [
            torch.cat([kl[:, k, None], self.ce[idx, k, None], p[idx], self.logits[idx, k]], -1)
            for k, p in enumerate(self.pooled)
        ]
        return torch.cat(parts, -1), confidence_weights(self.ce[idx]), kl.softmax(-1)

    def weigh(self, idx, student_logits: torch.Tensor) -> torch.Tensor:
        kl = kl_divergences(student_logits, self.logits[idx], self.cfg.temperature)
        if self.epoch == 1:  # the warm-up epoch: equal weights while the agent gathers rewards
            w = torch.full_like(kl, 1.0 / kl.shape[1])
        else:
            with torch.no_grad():
                w = self.agent(*self.state(idx, kl))
        self.buffer.append((idx, kl, rewards(student_logits, self.labels[idx], kl, w, self.cfg)))
        if len(self.buffer) == AGENT_STEP:
            self.losses += self.learn()
        return w

    def learn(self) -> list[float]:
        """One SGD step of the agent per gathered batch, in order, on -mean_{i,k} r_i log w_ik; empties the buffer."""
        losses = []
        for idx, kl, r in self.buffer:
            w = self.agent(*self.state(idx, kl))
            loss = -(r[:, None] * w.clamp_min(1e-12).log()).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
            self.rewards.append(float(r.mean()))
        self.buffer = []
        return losses

    def end_epoch(self) -> dict:
        """The agent learns from the epoch's last batches; returns the epoch's agent loss and reward, per batch."""
        losses, rewards_ = self.losses + self.learn(), self.rewards
        self.epoch, self.losses, self.rewards = self.epoch + 1, [], []
        return {
            "agent_loss": sum(losses) / max(len(losses), 1),
            "reward_mean": sum(rewards_) / max(len(rewards_), 1),
            "agent_mix": self.agent.mix.softmax(0).tolist(),
        }


def check_epochs(params) -> None:
    if min(p.epochs for p in params.distill.points()) < 2:
        raise ValueError(
            "distill.epochs: mtkd_rl trains the student with equal weights in its first epoch, while "
            "its agent gathers rewards; give it at least 2 epochs"
        )


METHOD = Method(
    lambda run: MTKDRL(run.cache["train"], run.gold["train"], run.cfg, run.seed, run.settings.lr),
    kind="learned",
    settings=Settings,
    min_teachers=2,
    check=lambda settings, params: check_epochs(params),
)
