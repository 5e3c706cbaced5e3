"""`rl_kd`: RL-KD, reinforced multi-teacher selection (Yuan, Shou, Pei, Lin, Gong, Fu and Jiang, AAAI 2021;
arXiv:2012.06048), the paper's procedure as this suite reconstructs it. An agent (agent.py) selects, per
training instance, which teachers the student learns from, a_jk ~ Bernoulli(pi_jk), pi_jk = sigmoid(W s_jk + b)
over a state s_jk of teacher k's [CLS] vector, probabilities and CE on instance j, and the student's weights are the
selections normalised:

    w_jk = a_jk / sum_l a_jl          (an instance with none: the gold label alone, `no_teacher: ce`)

The agent is rewarded once per batch by the student's progress on held-out rows (reward.py: one of the paper's
three rewards) and learns by REINFORCE with a moving-average baseline. The schedule (`RLKD.schedule`),
[reconstructed] from Algorithm 1: `warmup_epochs` of equal weights, then `pretrain_epochs` of policy pre-training
against a student that is put back afterwards, then joint training; the student kept is its best epoch on dev, as
every method's.
A named setting of it (`method: rl_kd` in a section of params.yaml's `methods:`) is a row of its own: the paper's
other rewards, a state with the teacher's identity. The suite's own agent, with a reward, a gate and a fallback
the paper does not have, is `effect_agent` (pipeline/methods/effect_agent.py). The stage `agent` runs both;
docs/rl-kd.md has the fidelity table.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch.optim.lr_scheduler import LambdaLR

from ... import compute, training
from ...schema import Strict
from .. import Method
from ..weighting import Epoch, Extra, Run, Weighting
from .agent import Agent
from .reward import Reward

SCALAR_REWARDS = ("held_out_accuracy", "neg_ce", "neg_ce_kd")  # the paper's: one value per batch
TEACHER_REWARDS = ("held_out_effect", "gradient_alignment")  # one value per instance and teacher (effect_agent)


class AgentSettings(Strict):
    """What every agent of this suite shares: the state, the policy, its learning and the schedule."""

    state: list[Literal["pooled", "probs", "ce", "length", "teacher", "student_probs", "student_ce"]] = Field(
        default=["pooled", "probs", "ce"], min_length=1
    )
    policy: Literal["shared", "per_teacher"] = "shared"
    # an instance with no teacher selected: the gold label alone ([reconstructed] paper), or equal weights
    no_teacher: Literal["equal", "ce"] = "ce"
    weights: Literal["hard", "soft"] = "hard"  # soft is refused below; kept so that its error explains why
    policy_lr: Annotated[float, Field(gt=0, le=10)] = 0.05
    policy_batches: Annotated[int, Field(ge=1, le=1000)] = 1  # student batches per policy update
    scalar_reward: Literal["after", "gain"] = "after"  # the paper's rewards: after the update, or after - before
    baseline_momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9  # scalar and per-instance rewards only
    entropy: Annotated[float, Field(ge=0, le=100)] = 0.0
    warmup_epochs: Annotated[int, Field(ge=0, le=1000)] = 1
    pretrain_epochs: Annotated[int, Field(ge=0, le=100)] = 3

    def unused(self) -> dict[str, bool]:
        """Settings this reward does not read: set by hand, they are refused, so that none is silently ignored."""
        return {
            "baseline_momentum": self.reward in TEACHER_REWARDS,
            "scalar_reward": self.reward not in SCALAR_REWARDS,
            "entropy": self.reward == "held_out_effect",  # its exact expected-reward step has no entropy term
        }

    @model_validator(mode="after")
    def _workable(self):
        if self.weights == "soft":
            raise ValueError(
                "weights: soft makes the student learn from the selection probabilities, so neither "
                "its update nor any reward depends on the sampled selections and the policy gradient "
                "is zero in expectation; use hard"
            )
        twice = sorted({f for f in self.state if self.state.count(f) > 1})
        if twice:
            raise ValueError(f"state: {twice} named more than once; each feature once")
        unused = self.unused()
        for key in sorted(self.model_fields_set):
            if unused.get(key):
                raise ValueError(
                    f"{key} is not used by reward {self.reward} (docs/rl-kd.md says which reward uses it); remove it"
                )
        return self


class Settings(AgentSettings):
    """The paper's RL-KD, `methods.rl_kd` (or a named setting with `method: rl_kd`); docs/rl-kd.md's fidelity
    table says what the paper says of each. The defaults are the paper's procedure as reconstructed."""

    reward: Literal["held_out_accuracy", "neg_ce", "neg_ce_kd"] = "held_out_accuracy"


def rehearsal(run: Run, epochs: int) -> LambdaLR:
    """The learning-rate schedule of pre-training: the rest of the student's own schedule, from where warm-up left
    it to its end, stretched over pre-training's `epochs`. Pre-training rehearses the joint epochs, so its student
    sees their learning rates; running on in the student's own schedule past its end would train the last
    pre-training epochs at learning rate 0, where the student does not move and a reward measured around its
    update is noise."""
    per_epoch = training.schedule_steps(1, len(run.rows), run.cfg.batch_size)
    start = run.scheduler.last_epoch  # the student's steps so far: the warm-up epochs'
    stretch = (training.schedule_steps(run.cfg.epochs, len(run.rows), run.cfg.batch_size) - start) / (
        epochs * per_epoch
    )
    own = run.scheduler.lr_lambdas[0]
    return LambdaLR(run.optimizer, lambda step: own(start + int(step * stretch)))


class RLKD(Weighting):
    """Equal weights for the warm-up epochs, then the agent's selections; the reward measured around each update."""

    def __init__(self, run: Run):
        s, train = run.settings, run.cache["train"]
        self.settings, self.labels, self.fill = s, run.gold["train"], s.no_teacher
        k = len(run.teachers)
        self.equal = torch.full((k,), 1.0 / k)
        # every reward but instance_ce_delta measures the student on the rows no student trains on
        self.held_out = None if s.reward == "instance_ce_delta" else run.held_out
        enc = run.enc["train"]
        lengths = torch.tensor([len(ids) for ids in enc["input_ids"]])
        section = f"methods.{run.method}"
        self.agent = Agent(s, train, run.teachers, run.num_labels, run.seed, lengths, section)
        self.reward = Reward(
            s, run.model, enc, self.labels, run.teacher_logits, run.cfg, run.pad, self.held_out, run.rng, run.acc
        )
        self.active, self.pretraining, self.steps, self.epoch = False, [], [], None
        self.reset()

    def reset(self) -> None:
        self.selected, self.rewards, self.seen, self.skipped = torch.zeros(len(self.equal)), [], 0, 0
        self.none_selected, self.all_selected = 0, 0

    def schedule(self, run: Run):
        """Algorithm 1 ([reconstructed]): equal weights for the warm-up epochs; before the first joint epoch, the
        policy's pre-training; then the agent's selections."""
        s = self.settings
        for epoch in range(1, run.cfg.epochs + 1):
            if epoch == s.warmup_epochs + 1 and s.pretrain_epochs:
                self.pretraining = yield from self.pretrain(run, s.pretrain_epochs)
            self.active, self.epoch = epoch > s.warmup_epochs, epoch
            yield Epoch(epoch, f"{run.method} epoch {epoch}")

    def pretrain(self, run: Run, epochs: int):
        """Train the policy against the student's feedback while the student trains as usual, on the rest of its
        learning-rate schedule (`rehearsal`), then put the student (its optimiser, schedule, weight record and batch
        order) back as it was, so that pre-training teaches the agent without moving the student ([reconstructed]
        from Algorithm 1). Returns each pre-training epoch's record."""
        start, lr = run.snapshot(), rehearsal(run, epochs)
        self.active, self.epoch, stats = True, None, []
        for e in range(1, epochs + 1):
            epoch = Epoch(None, f"policy pre-training {e}", scheduler=lr)
            yield epoch
            stats.append(epoch.stats)
        run.restore(start)
        return stats

    def informative(self) -> bool:
        """Whether the policy steps on this batch's reward: always, in the paper's procedure."""
        return True

    def weigh(self, idx, student_logits):
        if not self.active:
            return self.equal.expand(len(idx), -1)
        return self.agent.act(idx, student_logits, self.labels[idx])

    def before_update(self, idx) -> None:
        self.measured = self.reward.before(idx) if self.active else None  # the student before its update

    def after_update(self, idx, logits, pooled) -> None:
        if not self.active:
            return
        actions = self.agent.last[1]
        reward = self.reward.after(self.measured, idx, logits, pooled, actions.to(logits.device))
        informative = self.informative()
        self.rewards.append(self.agent.learn(reward.cpu(), step=informative))
        self.skipped += not informative
        self.selected += actions.sum(0)
        chosen = actions.sum(1)
        self.none_selected += int((chosen == 0).sum())
        self.all_selected += int((chosen == actions.shape[1]).sum())
        self.seen += len(idx)

    def end_epoch(self) -> dict:
        if not self.active:
            return {}
        if self.epoch is not None:  # a joint epoch: its rewards step by step, for rewards.json
            self.steps += [{"epoch": self.epoch, "reward": r} for r in self.rewards]
        equal_fill = self.settings.no_teacher == "equal"
        stats = {
            "selection_rate": (self.selected / self.seen).tolist(),
            "reward_mean": sum(self.rewards) / len(self.rewards),
            "policy_steps": len(self.rewards) - self.skipped,
            "policy_steps_skipped": self.skipped,  # batches on which the policy did not step (effect_agent's gate)
            "no_teacher_share": self.none_selected / self.seen,  # instances with no teacher selected
            # instances whose weights were exactly equal: every teacher selected, or none with `no_teacher: equal`
            "equal_weights_share": (self.all_selected + equal_fill * self.none_selected) / self.seen,
        }
        print("  selection rate " + " ".join(f"{r:.2f}" for r in stats["selection_rate"]), flush=True)
        self.reset()
        return stats

    def extra(self, run: Run) -> Extra:
        """The final policy's selection probabilities (weights.parquet's `select_<teacher>`), the pre-training
        epochs (metrics.json's `policy_pretraining`) and every joint step's reward (rewards.json)."""
        selection = self.final_selection(run)
        return Extra(
            columns={f"select_{t}": selection[:, k].numpy() for k, t in enumerate(run.teachers)},
            metrics={"policy_pretraining": self.pretraining},
            files={"rewards.json": [{"step": i, **s} for i, s in enumerate(self.steps, 1)]},
        )

    def final_selection(self, run: Run) -> torch.Tensor:
        """The policy's selection probability of every teacher for every training instance, at the end."""
        run.model.eval()
        out = []
        with torch.inference_mode():
            chunks = training.chunks(np.arange(len(self.labels)), run.cfg.eval_batch_size)
            for idx, batch in training.batches(compute.device(run.acc), run.enc["train"], chunks, run.pad):
                with compute.autocast(run.acc):
                    student_logits = run.model(**batch)[0].float().cpu()
                out.append(self.agent.probabilities(idx, student_logits, self.labels[idx]))
        return torch.cat(out)


def check(settings: Settings, params) -> None:
    if settings.reward != "instance_ce_delta" and any(p.held_out_fraction == 0 for p in params.distill.points()):
        raise ValueError(
            f"reward: {settings.reward} measures the student on held-out rows, and "
            "distill.held_out_fraction is 0; set it above 0 (0.1 by default)"
        )
    if settings.warmup_epochs >= params.distill.epochs:
        raise ValueError(
            f"warmup_epochs: {settings.warmup_epochs} leaves no joint training within "
            f"distill.epochs ({params.distill.epochs}); it must be smaller"
        )


def extra_examples(settings: AgentSettings, cfg, sizes: dict) -> float:
    """Pre-training's epochs (3 passes an example) and the reward's forward pass over a held-out batch per step."""
    return 3 * settings.pretrain_epochs * sizes["train"] + cfg.epochs * sizes["train"]


METHOD = Method(
    RLKD, kind="learned", label="the paper's RL-KD", settings=Settings, check=check, stage="agent",
    files=("rewards.json",), extra_examples=extra_examples,
)  # fmt: skip
