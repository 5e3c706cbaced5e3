"""RL-KD's reward, measured around each student update: before it (`Reward.before`) and after it
(`Reward.after`), always with the student in eval mode, so that dropout does not enter a reward, and on
rows of train that no student trains on (`distill.held_out_fraction`) where a reward needs held-out data.
docs: docs/rl-kd.md.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from ... import compute
from ...losses import fill_empty, student_loss
from .agent import normalise


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
      With `scalar_reward: gain`, each is its value after the update minus before it, on the same batch.
    Beyond the paper:
      `held_out_effect` (default): a closed-form, first-order counterfactual through the student's head;
        nothing is measured after the update. Per instance j and teacher k: the decrease of held-out CE,
        per unit learning rate, that a head step along instance j's loss gradient would make (its gradient
        w.r.t. the logits, dotted with u_j, the held-out CE gradient seen from j's pooled vector), with k
        selected minus with k left out, the other selections as sampled. It re-aggregates the scores that
        `gradient_alignment` computes over the sampled selections, and the agent ascends its expectation
        exactly (agent._expected_step), so `entropy` has no part in it. With it, `agreement`: the share of
        the batch's instances whose u_j favours their own gold label (a step raising j's gold logit lowers
        held-out CE). While the student's pooled vectors barely differ between instances, every u_j is about
        the same (the held-out residual's mean: "push towards the class under-predicted on held-out"), about
        half agree, and the per-teacher credit says nothing of which teacher is right: RL-KD's `gate` then
        skips the policy step (docs/rl-kd.md, "When the agent fails").
      `gradient_alignment`: per instance and teacher, how well a step towards that teacher's soft
        targets aligns with the held-out CE gradient (head only), whatever else was selected: a fixed
        score per (instance, teacher), i.e. gradient-alignment reweighting (cf. Ren et al. 2018,
        "Learning to Reweight Examples"), which the policy learns to predict.
      `instance_ce_delta`: per instance, the student's CE on it before the update minus after (eval mode).
    """

    def __init__(
        self,
        rl,
        model,
        enc: dict,
        labels: torch.Tensor,
        teacher_logits: torch.Tensor,
        cfg,
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
        self.agreement: float | None = None  # held_out_effect: the last batch's (above)

    def forward(self, rows):
        """The student's logits and pooled vectors on `rows` of train (in that order), in eval mode, without
        gradients; in `distill.forward_pieces` length-sorted pieces, as the training batches."""
        from ...training import collate_pieces, forward, length_argsort

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
        self.agreement = agreement(u, self.labels[idx])
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
        and `no_teacher` is `ce`)."""
        w = fill_empty(normalise(actions), self.no_teacher)
        has = (w.sum(-1) > 0)[:, None]
        grad = torch.where(has, (1 - self.cfg.alpha) * ce + self.cfg.alpha * (w[..., None] * kd).sum(1), ce)
        return (grad * u).sum(-1)


def agreement(u: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of instances j whose held-out view u_j [B, C] favours their own gold label: u_j's entry at the
    label below its mean over the classes, so that raising the gold logit against the others lowers held-out CE."""
    return float((u.gather(1, labels[:, None])[:, 0] < u.mean(1)).float().mean())


def with_bias(pooled: torch.Tensor) -> torch.Tensor:
    return torch.cat([pooled, torch.ones(len(pooled), 1, device=pooled.device)], 1)
