"""RL-KD's teacher selector: a logistic policy over (instance, teacher) states, trained by REINFORCE.

For each training instance j and teacher k the policy gives pi_jk = sigmoid(W s_jk + b), the
probability of learning from teacher k on instance j; actions a_jk ~ Bernoulli(pi_jk) are drawn
independently, so an instance may get 0..K teachers. The student learns from the selected teachers,
normalised; an instance with none learns from all of them equally, or from the gold label (`rl.no_teacher`).

The reward (`Reward`) is measured around each student update: before it (`Reward.before`) and after
it (`Reward.after`), always with the student in eval mode, so that dropout does not enter a reward,
and on rows of train that the student never trains on (`rl.held_out_fraction`) where a reward needs
held-out data. docs: docs/rl-kd.md.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import compute
from . import params as P
from .losses import fill_empty, student_loss

# state feature -> the cache field it is read from; the others come from the input or the student
CACHE_FIELDS = {"pooled": "pooled", "probs": "probs", "ce": "ce"}
STUDENT_FEATURES = ("student_probs", "student_ce")


def standardise(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(0)) / x.std(0).clamp(min=1e-6)


def teacher_features(cache: dict, teachers: list[str], state: list[str], lengths: torch.Tensor) -> list[torch.Tensor]:
    """Per teacher, the fixed part of its state for every training instance, standardised: [N, d_k].

    `length` (the instance's log token count) lets the policy tell kinds of input apart; `teacher` (a
    one-hot teacher identity) lets a shared policy hold a bias per teacher."""
    feats = []
    for k, teacher in enumerate(teachers):
        parts = []
        for name in state:
            if name in CACHE_FIELDS:
                field = CACHE_FIELDS[name]
                if field not in cache:
                    raise P.InputError(
                        f"rl.state: feature {name!r} needs the cache field {field!r}, which the teacher cache lacks"
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
    def __init__(self, cfg: P.RL, cache: dict, teachers: list[str], num_labels: int, seed: int, lengths: torch.Tensor):
        self.cfg = cfg
        self.features = teacher_features(cache, teachers, cfg.state, lengths)
        extra = (num_labels if "student_probs" in cfg.state else 0) + (1 if "student_ce" in cfg.state else 0)
        self.policy = Policy([f.shape[1] + extra for f in self.features], cfg.policy == "shared")
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.policy_lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.baseline: float | None = None
        self.pending = 0  # policy losses accumulated towards the next step (`rl.policy_batches`)
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

    def learn(self, reward: torch.Tensor) -> float:
        """REINFORCE on the last batch's actions; returns the reward's mean.

        `reward` is a scalar, one value per instance [B], or one value per instance and teacher [B, K].
        A scalar or per-instance reward is compared with a moving-average baseline (`rl.baseline_momentum`).
        A per-teacher value counts only where that teacher was selected (only then did it shape the
        update), and is standardised per teacher over the batch.
        """
        states, actions, _ = self.last
        reward = reward.detach().float()
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


@contextmanager
def evaluating(model):
    """The student in eval mode (no dropout) for a measurement, back in train mode after it."""
    model.eval()
    try:
        yield
    finally:
        model.train()


class Reward:
    """The agent's reward for one student update: `before(idx, batch)` runs before the update,
    `after(measured, idx, logits, pooled, actions)` after it; logits and pooled are the student's on the
    batch from its training forward pass (the values the update's gradient was taken at).

    The paper's three rewards ([secondary]; scalars, one per batch, on a held-out batch, eval mode):
      `held_out_accuracy`: the student's accuracy after the update;
      `neg_ce`: minus its CE after the update;
      `neg_ce_kd`: minus its training loss after the update, KD to the teachers equally weighted.
      With `rl.scalar_reward: gain`, each is its value after the update minus before it, on the same batch.
    Beyond the paper:
      `held_out_effect` (default): per instance, the decrease of held-out CE that the instance's part of
        the update causes, to first order in the student's classifier head; each selected teacher is
        credited with the difference its selection made to that decrease (the decrease with the
        selection as made, minus with that teacher left out). A consequence of the whole selection.
      `gradient_alignment`: per instance and teacher, how well a step towards that teacher's soft
        targets aligns with the held-out CE gradient (head only), whatever else was selected: a fixed
        score per (instance, teacher), i.e. gradient-alignment reweighting (cf. Ren et al. 2018,
        "Learning to Reweight Examples"), which the policy learns to predict.
      `instance_ce_delta`: per instance, the student's CE on it before the update minus after (eval mode).
    """

    def __init__(
        self,
        rl: P.RL,
        model,
        enc: dict,
        labels: torch.Tensor,
        teacher_logits: torch.Tensor,
        cfg: P.Distill,
        pad: int,
        held_out,
        rng,
        acc=None,
    ):
        self.kind, self.scalar_reward, self.no_teacher = rl.reward, rl.scalar_reward, rl.no_teacher
        self.model, self.enc, self.cfg, self.pad, self.held_out, self.rng = model, enc, cfg, pad, held_out, rng
        self.device = compute.device(acc)
        self.acc = acc
        self.labels = labels.to(self.device)
        self.teacher_logits = teacher_logits

    def forward(self, rows):
        """The student's logits and pooled vectors on `rows` of train (in that order), in eval mode, without
        gradients; in `distill.forward_pieces` length-sorted pieces, as the training batches."""
        from .training import collate_pieces, forward, length_argsort

        rows = np.asarray(rows)
        order = length_argsort(self.enc, rows)
        batch = [
            {k: v.to(self.device) for k, v in piece.items()}
            for piece in collate_pieces(self.enc, rows[order], self.pad, self.cfg.forward_pieces)
        ]
        with evaluating(self.model), torch.no_grad(), compute.autocast(self.acc):
            logits, pooled = forward(self.model, batch)
        back = torch.from_numpy(np.argsort(order)).to(logits.device)  # back to the order of `rows`
        return logits.float()[back], pooled.float()[back]

    def held_out_rows(self, size: int):
        return self.held_out[self.rng.choice(len(self.held_out), size=min(size, len(self.held_out)), replace=False)]

    def scalar(self, rows) -> torch.Tensor:
        logits, _ = self.forward(rows)
        y = self.labels[rows]
        if self.kind == "held_out_accuracy":
            return (logits.argmax(-1) == y).float().mean()
        if self.kind == "neg_ce":
            return -F.cross_entropy(logits, y)
        k = self.teacher_logits.shape[1]
        equal = torch.full((len(rows), k), 1.0 / k, device=logits.device)
        return -student_loss(
            logits, y, self.teacher_logits[rows], equal, self.cfg.alpha, self.cfg.temperature, self.cfg.t2_scaling
        )

    def before(self, idx) -> dict:
        if self.kind == "instance_ce_delta":
            return {"ce": F.cross_entropy(self.forward(idx)[0], self.labels[idx], reduction="none")}
        rows = self.held_out_rows(len(idx))
        if self.kind in ("held_out_effect", "gradient_alignment"):
            logits, pooled = self.forward(rows)
            # the held-out CE's gradient w.r.t. the head's weights and bias, [C, H + 1]
            residual = logits.softmax(-1) - F.one_hot(self.labels[rows], logits.shape[-1]).float()
            return {"head_grad": residual.T @ with_bias(pooled) / len(rows)}
        return {"rows": rows, "value": self.scalar(rows) if self.scalar_reward == "gain" else 0.0}

    def after(
        self, measured: dict, idx, logits: torch.Tensor, pooled: torch.Tensor, actions: torch.Tensor
    ) -> torch.Tensor:
        if self.kind == "instance_ce_delta":
            return measured["ce"] - F.cross_entropy(self.forward(idx)[0], self.labels[idx], reduction="none")
        if "rows" in measured:
            return self.scalar(measured["rows"]) - measured["value"]
        # u_j = G e_j: the held-out gradient seen from instance j's pooled vector; a step along the head
        # gradient (dL_j/dz_j) e_j^T lowers held-out CE by lr * (dL_j/dz_j) . u_j, to first order
        u = with_bias(pooled) @ measured["head_grad"].T
        t = self.cfg.temperature
        # the gradients w.r.t. the student's logits: CE's [B, C], and each teacher's KD term's [B, K, C]
        ce = logits.softmax(-1) - F.one_hot(self.labels[idx], logits.shape[-1]).float()
        kd = ((logits / t).softmax(-1)[:, None] - (self.teacher_logits[idx] / t).softmax(-1)) * (
            t if self.cfg.t2_scaling else 1 / t
        )  # d/dz of T^2 * KD(z / T) is T * (softmax(z / T) - targets)
        if self.kind == "gradient_alignment":
            return (kd * u[:, None]).sum(-1)
        actions = actions.to(kd.device)
        both = []
        for k in range(kd.shape[1]):
            with_k, without_k = actions.clone(), actions.clone()
            with_k[:, k], without_k[:, k] = 1, 0
            both.append(torch.stack([self.effect(ce, kd, u, with_k), self.effect(ce, kd, u, without_k)], -1))
        return torch.stack(both, 1)

    def effect(self, ce: torch.Tensor, kd: torch.Tensor, u: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Per instance, the held-out CE decrease that a step along its loss gradient under `actions` makes,
        to first order, per unit learning rate (losses.student_loss: CE alone where no teacher is selected
        and `rl.no_teacher` is `ce`)."""
        w = fill_empty(normalise(actions), self.no_teacher)
        has = (w.sum(-1) > 0)[:, None]
        grad = torch.where(has, (1 - self.cfg.alpha) * ce + self.cfg.alpha * (w[..., None] * kd).sum(1), ce)
        return (grad * u).sum(-1)


def with_bias(pooled: torch.Tensor) -> torch.Tensor:
    return torch.cat([pooled, torch.ones(len(pooled), 1, device=pooled.device)], 1)
