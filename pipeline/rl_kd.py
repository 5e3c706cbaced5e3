"""Stage `rl_kd`: RL-KD, the distill stage's training loop with the agent's selections as teacher weights.

Usage: python -m pipeline.rl_kd TASK SEED   (writes runs/TASK/rl_kd/SEED/, like `pipeline.distill`)
A stage and a module of its own, so that a change to an `rl` parameter or to the agent reruns the
RL-KD runs only, never the baselines.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from . import distill
from . import params as P
from .agent import Agent, Reward


def data_rows_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows): a seeded `fraction` of train kept out for the reward's batches."""
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, int(round(fraction * n)))
    return np.sort(order[cut:]), np.sort(order[:cut])


def setup(
    params: P.Params,
    cfg: P.Distill,
    model,
    enc: dict,
    gold,
    cache: dict,
    teacher_logits,
    pad: int,
    rng,
    acc,
    seed: int,
    num_labels: int,
):
    """The student's training rows, the agent and its reward, for `distill.fit`."""
    rows, held_out = np.arange(len(gold)), None
    if params.rl.reward != "instance_ce_delta":  # every other reward measures the student on held-out rows
        rows, held_out = data_rows_split(len(gold), params.rl.held_out_fraction, params.seed)
    lengths = torch.tensor([len(ids) for ids in enc["input_ids"]])
    agent = Agent(params.rl, cache, params.run.teachers, num_labels, seed, lengths)
    reward = Reward(params.rl, model, enc, gold, teacher_logits, cfg, pad, held_out, rng, acc)
    return rows, agent, reward


def main(task: str, seed: str, params_path: str = "params.yaml") -> None:
    distill.main(task, "rl_kd", seed, params_path, rl_setup=setup)


if __name__ == "__main__":
    with P.reported_errors():
        main(*sys.argv[1:])
