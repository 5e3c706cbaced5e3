"""The agent settings the planted benchmark runs: named, as params.yaml's section `methods.agent`."""

from __future__ import annotations

import argparse
import json

# the agent's rewards, one default setting each; their names change with the agent: edit here
REWARDS = ["held_out_accuracy", "neg_ce", "neg_ce_kd", "instance_ce_delta", "gradient_alignment"]
SCALAR_REWARDS = ("held_out_accuracy", "neg_ce", "neg_ce_kd")  # the paper's
AGENT = "agent"  # the section and run name of the agent under test: a named setting of effect_agent or rl_kd


def agent_section(rl: dict | None) -> dict:
    """A setting as params.yaml's `methods.agent`: this suite's agent unless it names another file."""
    return {"method": "effect_agent", **(rl or {})}


def default_settings(rewards=REWARDS) -> dict[str, dict]:
    """This suite's agent with its guard, without it and without its gate; the paper's RL-KD with each of its
    rewards as published (no guard, no gate), and the remedies tried on them (the reward's gain over the same
    held-out batch before the update, 8 student batches per policy step, 6 pre-training epochs); this suite's
    agent with its other rewards; and states and policies that can express "this teacher on this kind of input"
    (input length, teacher identity, a policy per teacher)."""
    guarded = {"method": "effect_agent", "guard": "equal_weights"}
    settings = {"effect_agent_ue_guard": guarded, "effect_agent": {}, "no_gate": {**guarded, "gate": 0.0}}
    for reward in rewards:
        if reward in SCALAR_REWARDS:  # the paper's
            paper = {"method": "rl_kd", "reward": reward}
            settings[f"rl_kd:{reward}"] = paper
            settings[f"rl_kd:{reward}+gain"] = {**paper, "scalar_reward": "gain"}
            settings[f"rl_kd:{reward}+gain+batches8"] = {**paper, "scalar_reward": "gain", "policy_batches": 8}
            settings[f"rl_kd:{reward}+gain+pretrain6"] = {**paper, "scalar_reward": "gain", "pretrain_epochs": 6}
        else:
            settings[reward] = {"reward": reward}
    settings["rl_kd:teacher"] = {"method": "rl_kd", "state": ["pooled", "probs", "ce", "teacher"]}
    settings["pooled"] = {"state": ["pooled", "probs", "ce"]}
    # states and policies that can tell kinds of input or teachers apart
    settings["length"] = {"state": ["probs", "ce", "length"]}
    settings["teacher"] = {"state": ["probs", "ce", "teacher"]}
    settings["per_teacher"] = {"policy": "per_teacher", "state": ["probs", "ce", "length"]}
    return settings


def parse_seeds(tokens: list[str]) -> list[str]:
    """`1-10`, `1,2,5`, `1-3 7` -> seed strings."""
    seeds = []
    for token in tokens:
        for part in token.split(","):
            if "-" in part:
                lo, hi = part.split("-")
                seeds.extend(str(s) for s in range(int(lo), int(hi) + 1))
            elif part:
                seeds.append(str(int(part)))
    return list(dict.fromkeys(seeds))


def parse_setting(text: str) -> tuple[str, dict]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--setting {text!r}: expected NAME=JSON, e.g. effect_agent={{}}")
    try:
        rl = json.loads(value)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"--setting {text!r}: {err}") from None
    if not isinstance(rl, dict):
        raise argparse.ArgumentTypeError(f"--setting {text!r}: the JSON must be an object (the rl section)")
    return name, rl
