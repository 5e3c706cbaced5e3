"""RL-KD's teacher selector: a logistic policy over (instance, teacher) states, trained by REINFORCE.

For each training instance j and teacher k the policy gives pi_jk = sigmoid(W s_jk + b), the
probability of learning from teacher k on instance j; actions a_jk ~ Bernoulli(pi_jk) are drawn
independently, so an instance may get 0..K teachers. The student's weights are the selected
teachers, normalised (`hard`), or the probabilities themselves, normalised (`soft`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import compute, params as P

# state feature -> the cache field it is read from (student features come from the student itself)
CACHE_FIELDS = {"pooled": "pooled", "probs": "probs", "ce": "ce"}
STUDENT_FEATURES = ("student_probs", "student_ce")


def standardise(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(0)) / x.std(0).clamp(min=1e-6)


def teacher_features(cache: dict, teachers: list[str], state: list[str]) -> list[torch.Tensor]:
    """Per teacher, the cache part of its state for every training instance, standardised: [N, d_k]."""
    feats = []
    for k, teacher in enumerate(teachers):
        parts = []
        for name in state:
            if name in STUDENT_FEATURES:
                continue
            field = CACHE_FIELDS[name]
            if field not in cache:
                raise P.InputError(f"rl.state: feature {name!r} needs the cache field {field!r}, which the teacher "
                                   f"cache lacks")
            value = cache[field][k] if isinstance(cache[field], list) else cache[field][:, k]
            parts.append(value.reshape(len(value), -1).float())
        feats.append(standardise(torch.cat(parts, 1)) if parts else torch.zeros(len(cache["ce"]), 0))
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
    def __init__(self, cfg: P.RL, cache: dict, teachers: list[str], num_labels: int, seed: int):
        self.cfg = cfg
        self.features = teacher_features(cache, teachers, cfg.state)
        extra = (num_labels if "student_probs" in cfg.state else 0) + (1 if "student_ce" in cfg.state else 0)
        self.policy = Policy([f.shape[1] + extra for f in self.features], cfg.policy == "shared")
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.policy_lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.baseline: float | None = None
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
        """Sample selections for a batch and return the student's teacher weights [B, K]."""
        states = self.states(idx, student_logits.detach(), labels)
        with torch.no_grad():
            probs = self.policy(states)
        actions = torch.bernoulli(probs, generator=self.generator)
        self.last = (states, actions, probs)
        chosen = actions if self.cfg.weights == "hard" else probs
        total = chosen.sum(-1, keepdim=True)
        return torch.where(total > 0, chosen / total.clamp(min=1e-12), torch.zeros_like(chosen))

    def learn(self, reward: torch.Tensor) -> float:
        """REINFORCE on the last batch's actions.

        `reward` is a scalar, one value per instance [B], or one value per instance and teacher [B, K].
        A per-teacher value counts only where that teacher was selected (only then did it shape the
        update), and is standardised per teacher over the batch.
        """
        states, actions, _ = self.last
        reward = reward.detach().float()
        if reward.dim() == 2:
            return self._step(states, actions, standardise(reward * actions), float(reward.mean()))
        reward = reward.reshape(-1)
        mean = float(reward.mean())
        baseline = mean if self.baseline is None else self.baseline
        advantage = (reward - baseline)[:, None] if reward.numel() > 1 else reward - baseline
        m = self.cfg.baseline_momentum
        self.baseline = mean if self.baseline is None else m * self.baseline + (1 - m) * mean
        return self._step(states, actions, advantage, mean)

    def _step(self, states, actions, advantage, mean: float) -> float:
        probs = self.policy(states).clamp(1e-6, 1 - 1e-6)
        log_prob = actions * probs.log() + (1 - actions) * (1 - probs).log()
        entropy = -(probs * probs.log() + (1 - probs) * (1 - probs).log())
        loss = -(advantage * log_prob).sum(-1).mean() - self.cfg.entropy * entropy.sum(-1).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return mean


def make_reward(kind: str, model, enc: dict, labels: torch.Tensor, teacher_logits: torch.Tensor, cfg: P.Distill,
                pad: int, held_out, rng, acc=None):
    """Return reward(idx, batch, logits, pooled, weights); logits and pooled are the student's on the batch,
    before its update, on the student's device (`acc`'s; the CPU without one), like the reward.

    `held_out_accuracy` (the paper's description): the student's accuracy on a held-out batch after the update.
    `neg_ce`, `neg_ce_kd`: minus the student's CE (or its whole training loss) on the batch after the update.
    `instance_ce_delta` (beyond the paper): per instance, the student's CE before the update minus after.
    `held_out_alignment` (beyond the paper): per instance and teacher, how much a step towards that
    teacher's soft targets would lower the student's CE on a held-out batch (first order, through the
    classifier head); `Agent.learn` credits it to the teacher only where the teacher was selected.
    The paper's held-out feedback, credited to each action.
    """
    from .losses import student_loss
    from .training import collate

    device = compute.device(acc)
    labels = labels.to(device)

    def forward(batch):
        with torch.no_grad(), compute.autocast(acc):
            logits, pooled = model(**batch)
        return logits.float(), pooled.float()

    def after(batch):
        return forward(batch)[0]

    def held_out_rows(size):
        rows = held_out_batch(size)
        return rows, {k: v.to(device) for k, v in collate(enc, rows, pad).items()}

    def held_out_batch(size):
        return held_out[rng.choice(len(held_out), size=min(size, len(held_out)), replace=False)]

    if kind == "held_out_alignment":
        def reward(idx, batch, before, pooled, weights):
            rows, ho_batch = held_out_rows(len(idx))
            ho_logits, ho_pooled = forward(ho_batch)
            with torch.no_grad():
                # gradient of the held-out CE w.r.t. the head's weights: [C, H]
                held = (ho_logits.softmax(-1) - F.one_hot(labels[rows], ho_logits.shape[-1]).float()).T @ ho_pooled
                t = cfg.temperature
                # gradient of teacher k's KD term w.r.t. the student's logits, per instance: [B, K, C]
                kd = (before / t).softmax(-1)[:, None] - (teacher_logits[idx] / t).softmax(-1)
                return (kd * (pooled @ held.T / len(rows))[:, None]).sum(-1)
    elif kind == "held_out_accuracy":
        def reward(idx, batch, before, pooled, weights):
            rows, ho_batch = held_out_rows(len(idx))
            model.eval()
            logits = after(ho_batch)
            model.train()
            return (logits.argmax(-1) == labels[rows]).float().mean()
    elif kind == "neg_ce":
        def reward(idx, batch, before, pooled, weights):
            return -F.cross_entropy(after(batch), labels[idx])
    elif kind == "neg_ce_kd":
        def reward(idx, batch, before, pooled, weights):
            return -student_loss(after(batch), labels[idx], teacher_logits[idx], weights, cfg.alpha,
                                 cfg.temperature, cfg.t2_scaling)
    else:
        def reward(idx, batch, before, pooled, weights):
            y = labels[idx]
            return F.cross_entropy(before, y, reduction="none") - F.cross_entropy(after(batch), y, reduction="none")
    return reward
