"""`effect_agent`: this suite's own teacher selector, beyond the paper. RL-KD's agent and schedule
(pipeline/methods/rl_kd/) with three departures, each a setting and each measured in docs/rl-kd.md:

- the reward `held_out_effect` (pipeline/methods/rl_kd/reward.py): per instance j and teacher k, the first-order
  decrease of held-out CE that a step on instance j's loss would make with k selected minus with k left out, the
  other selections as sampled; the policy ascends its expectation exactly;
- a gate (`gate`): no policy step on a batch where fewer than this share of instances' held-out view favours their
  own gold label, since the reward then cannot tell teachers apart (docs/rl-kd.md, "When the agent fails");
- a guard (`guard: equal_weights`, off by default): the joint epochs also run from the same student with equal
  weights, and the student keeps the agent's epochs only if they score at least as well on dev. The guarded run
  falls back to U-Ensemble's student, so it is a row of its own whose name says so (`effect_agent_ue_guard` in
  params-study.yaml), never the row compared with U-Ensemble as the agent.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field

from . import Method, rl_kd
from .rl_kd import RLKD, AgentSettings
from .weighting import Epoch, Run


class Settings(AgentSettings):
    """`methods.effect_agent` (or a named setting with `method: effect_agent`)."""

    reward: Literal["held_out_effect", "gradient_alignment", "instance_ce_delta"] = "held_out_effect"
    state: list[Literal["pooled", "probs", "ce", "length", "teacher", "student_probs", "student_ce"]] = Field(
        default=["probs", "ce"], min_length=1
    )
    no_teacher: Literal["equal", "ce"] = "equal"
    # held_out_effect: the policy steps only on batches where at least this share of instances' held-out view
    # favours their own gold label (reward.agreement); below it the reward carries no per-teacher signal. 0: always
    gate: Annotated[float, Field(ge=0, le=1)] = 0.6
    # the joint epochs raced against equal weights from the same student, on dev; the better one kept
    guard: Literal["equal_weights", "none"] = "none"

    def unused(self) -> dict[str, bool]:
        return {**super().unused(), "gate": self.reward != "held_out_effect"}


class EffectAgent(RLKD):
    """RL-KD's agent with the held-out-effect reward, its gate and, where asked, the equal-weights guard."""

    def __init__(self, run: Run):
        super().__init__(run)
        self.rival, self.run = None, run

    def schedule(self, run: Run):
        """RL-KD's schedule; with the guard, its rival run before the first joint epoch."""
        s = self.settings
        for epoch in super().schedule(run):
            if epoch.number == s.warmup_epochs + 1 and s.guard == "equal_weights":
                self.rival = yield from self.equal_weights_run(run, epoch.number)
                self.agent_best, self.active = -1.0, True
            yield epoch

    def informative(self) -> bool:
        agreement = self.reward.agreement
        return agreement is None or agreement >= self.settings.gate

    def end_epoch(self) -> dict:
        stats = super().end_epoch()
        if stats and self.rival is not None:
            guarded = self.guard(self.run, self.epoch)
            if guarded:
                stats["guard"] = guarded
        return stats

    def equal_weights_run(self, run: Run, first: int):
        """The guard's rival: the joint epochs `first`.. trained with equal weights from the student as it is
        (the same batches), its best epoch on dev kept aside; the student is then put back for the agent."""
        start, best = run.snapshot(), {"dev_accuracy": -1.0}
        self.active = False
        with untraced_rng():  # the agent's run sees the dropout it would have seen without the guard
            for epoch in range(first, run.cfg.epochs + 1):
                yield Epoch(None, f"epoch {epoch}, equal weights (guard)")
                accuracy = run.dev_accuracy()
                if accuracy > best["dev_accuracy"]:
                    best = {"dev_accuracy": accuracy, "epoch": epoch, "state": run.snapshot()}
        run.restore(start)
        return best

    def guard(self, run: Run, epoch: int) -> dict | None:
        """After each joint epoch: the agent's best dev accuracy so far; after the last, if the equal-weights
        rival did better on dev, the student becomes the rival's best (so that it is the run's best epoch)."""
        self.agent_best = max(self.agent_best, run.dev_accuracy())
        if epoch < run.cfg.epochs:
            return None
        rival, self.rival = self.rival, None
        kept = "agent" if self.agent_best >= rival["dev_accuracy"] else "equal_weights"
        if kept == "equal_weights":
            run.restore(rival["state"])
            # the record held the rival's epochs 1..e: scaled to the run's epochs, each instance's weights per
            # epoch still sum to one (the run's record divides by distill.epochs)
            run.weight_sum.mul_(run.cfg.epochs / rival["epoch"])
        print(
            f"  guard kept {kept} (dev: agent {self.agent_best:.4f}, equal weights {rival['dev_accuracy']:.4f})",
            flush=True,
        )
        return {
            "agent_dev_accuracy": self.agent_best,
            "equal_weights_dev_accuracy": rival["dev_accuracy"],
            "equal_weights_epoch": rival["epoch"],
            "kept": kept,
        }


def untraced_rng():
    """torch's random state (dropout's) put back after the block, on the CPU and the current GPU."""
    return torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else [])


def extra_examples(settings: Settings, cfg, sizes: dict) -> float:
    """RL-KD's, and with the guard its rival run of the joint epochs (with their dev passes)."""
    guard = (cfg.epochs - settings.warmup_epochs) * (3 * sizes["train"] + sizes["dev"])
    return rl_kd.extra_examples(settings, cfg, sizes) + (guard if settings.guard == "equal_weights" else 0)


METHOD = Method(
    EffectAgent, kind="learned", label="this suite's agent (beyond the paper)", settings=Settings,
    check=rl_kd.check, stage="agent", files=("rewards.json",), extra_examples=extra_examples,
)  # fmt: skip
