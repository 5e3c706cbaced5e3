"""RL-KD's teacher selector: a logistic policy over (instance, teacher) states, trained by REINFORCE.

For each training instance j and teacher k the policy gives pi_jk = sigmoid(W s_jk + b), the
probability of learning from teacher k on instance j; actions a_jk ~ Bernoulli(pi_jk) are drawn
independently, so an instance may get 0..K teachers. The student learns from the selected teachers,
normalised; an instance with none learns from all of them equally, or from the gold label (`no_teacher`).

The reward comes from reward.py beside it; the method that puts the two around the student's updates is this
package's __init__.py. docs: docs/rl-kd.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...params_file import InputError

# state feature -> the cache field it is read from; the others come from the input or the student
CACHE_FIELDS = {"pooled": "pooled", "probs": "probs", "ce": "ce"}


def standardise(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(0)) / x.std(0).clamp(min=1e-6)


def teacher_features(
    cache: dict, teachers: list[str], state: list[str], lengths: torch.Tensor, section: str = "methods.rl_kd"
) -> list[torch.Tensor]:
    """Per teacher, the fixed part of its state for every training instance, standardised: [N, d_k] (`section`:
    the params.yaml section whose `state` names the features, for the error).

    `length` (the instance's log token count) lets the policy tell kinds of input apart; `teacher` (a
    one-hot teacher identity) lets a shared policy hold a bias per teacher."""
    feats = []
    for k, teacher in enumerate(teachers):
        parts = []
        for name in state:
            if name in CACHE_FIELDS:
                field = CACHE_FIELDS[name]
                if field not in cache:
                    raise InputError(
                        f"{section}.state: feature {name!r} needs the cache field {field!r}, which the teacher "
                        "cache lacks"
                    )
                value = cache[field][k] if isinstance(cache[field], list) else cache[field][:, k]
                parts.append(standardise(value.reshape(len(value), -1).float()))
            elif name == "length":
                parts.append(standardise(lengths.float().log()[:, None]))
            elif name == "teacher":
                parts.append(F.one_hot(torch.full((len(lengths),), k), len(teachers)).float())
        feats.append(torch.cat(parts, 1) if parts else torch.zeros(len(lengths), 0))
    return feats


class Policy(nn.Module):
    """sigmoid(W s + b); `shared`: one W for all teachers (narrower states zero-padded), else one per teacher."""

    def __init__(self, dims: list[int], shared: bool):
        super().__init__()
        self.dims, self.shared = dims, shared
        layers = [nn.Linear(max(dims), 1)] if shared else [nn.Linear(d, 1) for d in dims]
        for layer in layers:  # start indifferent: select every teacher with probability 1/2
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.linears = nn.ModuleList(layers)

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        width = max(self.dims)
        scores = []
        for k, s in enumerate(states):
            layer = self.linears[0] if self.shared else self.linears[k]
            scores.append(layer(F.pad(s, (0, width - s.shape[1])) if self.shared else s))
        return torch.sigmoid(torch.cat(scores, 1))


class Agent:
    """RL-KD's teacher selector: its state features, its policy and its policy-gradient step."""

    def __init__(
        self, cfg, cache: dict, teachers: list[str], num_labels: int, seed: int, lengths, section="methods.rl_kd"
    ):
        self.cfg = cfg
        self.features = teacher_features(cache, teachers, cfg.state, lengths, section)
        extra = (num_labels if "student_probs" in cfg.state else 0) + (1 if "student_ce" in cfg.state else 0)
        self.policy = Policy([f.shape[1] + extra for f in self.features], cfg.policy == "shared")
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.policy_lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.baseline: float | None = None
        self.pending = 0  # policy losses accumulated towards the next step (`policy_batches`)
        self.last = None

    def states(self, idx, student_logits: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
        extra = []
        if "student_probs" in self.cfg.state:
            extra.append(student_logits.softmax(-1))
        if "student_ce" in self.cfg.state:
            extra.append(F.cross_entropy(student_logits, labels, reduction="none")[:, None])
        return [torch.cat([f[idx], *extra], 1) for f in self.features]

    def probabilities(self, idx, student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.policy(self.states(idx, student_logits.detach(), labels))

    def act(self, idx, student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Sample selections for a batch and return them, normalised, as the student's teacher weights [B, K]."""
        states = self.states(idx, student_logits.detach(), labels)
        with torch.no_grad():
            probs = self.policy(states)
        actions = torch.bernoulli(probs, generator=self.generator)
        self.last = (states, actions, probs)
        return normalise(actions)

    def learn(self, reward: torch.Tensor, step: bool = True) -> float:
        """REINFORCE on the last batch's actions; returns the reward's mean. `step=False` (RL-KD's `gate`: a
        batch whose reward carries no per-teacher signal) leaves the policy as it is.

        `reward` is a scalar, one value per instance [B], or one value per instance and teacher [B, K].
        A scalar or per-instance reward is compared with a moving-average baseline (`baseline_momentum`).
        A per-teacher value is the reward of selecting that teacher where it was selected, and 0 where it was
        not (it had no part in the update); standardised per teacher over the whole batch, so that its batch
        mean is the baseline: an unselected instance gets minus that baseline as its advantage, pushing
        towards selecting a teacher whose selections earn more than the batch average (REINFORCE with a
        per-teacher baseline, both of the Bernoulli's outcomes counted).
        """
        states, actions, _ = self.last
        reward = reward.detach().float()
        if not step:
            return float((reward[..., 0] if reward.dim() == 3 else reward).mean())
        if reward.dim() == 3:  # [B, K, 2]: per (instance, teacher), the effect with the teacher and without it
            return self._expected_step(states, reward[..., 0] - reward[..., 1], float(reward[..., 0].mean()))
        if reward.dim() == 2:
            return self._step(states, actions, standardise(reward * actions), float(reward.mean()))
        reward = reward.reshape(-1)
        mean = float(reward.mean())
        baseline = mean if self.baseline is None else self.baseline
        advantage = (reward - baseline)[:, None] if reward.numel() > 1 else reward - baseline
        m = self.cfg.baseline_momentum
        self.baseline = mean if self.baseline is None else m * self.baseline + (1 - m) * mean
        return self._step(states, actions, advantage, mean)

    def _expected_step(self, states, difference, mean: float) -> float:
        """Ascend sum_jk pi_jk * difference_jk: with the other selections as sampled, the exact gradient of the
        expected reward w.r.t. each selection probability (a local-expectation gradient, Titsias and
        Lazaro-Gredilla 2015): every teacher's counterfactual is known, selected or not."""
        probs = self.policy(states)
        scale = difference.pow(2).mean().sqrt().clamp(min=1e-12)  # the step size must not follow the reward's units
        loss = -(probs * difference / scale).sum(-1).mean()
        return self._apply(loss, mean)

    def _step(self, states, actions, advantage, mean: float) -> float:
        probs = self.policy(states).clamp(1e-6, 1 - 1e-6)
        log_prob = actions * probs.log() + (1 - actions) * (1 - probs).log()
        entropy = -(probs * probs.log() + (1 - probs) * (1 - probs).log())
        loss = -(advantage * log_prob).sum(-1).mean() - self.cfg.entropy * entropy.sum(-1).mean()
        return self._apply(loss, mean)

    def _apply(self, loss, mean: float) -> float:
        (loss / self.cfg.policy_batches).backward()  # gradients add up over `policy_batches` student batches
        self.pending += 1
        if self.pending == self.cfg.policy_batches:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.pending = 0
        return mean


def normalise(actions: torch.Tensor) -> torch.Tensor:
    """Selections [B, K] in {0, 1} -> weights over the selected teachers; all zero where none is selected."""
    total = actions.sum(-1, keepdim=True)
    return torch.where(total > 0, actions / total.clamp(min=1), torch.zeros_like(actions))
