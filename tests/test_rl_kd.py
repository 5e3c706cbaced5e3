"""This suite's agent (effect_agent) must be shown to work, not only to run: the planted-teacher test, a 3-seed CI
version of `python -m benchmarks.planted` (which says how the teachers are planted).

Two designs. `coin`: one good teacher and two copies of it made confidently wrong on a known half of the
training instances. `specialists`: three teachers, each right on one kind of review (told apart by length)
and confidently wrong on the two others. Equal weighting teaches the student wrong labels; the agent, without
its guard, must learn to stop selecting a teacher where it is wrong (its selection probability clearly lower
there than on its clean instances) and its student must beat the equal-weight student, in every seed. The
paper's RL-KD is not held to this: how it fares is measured and reported (results/planted.md, docs/rl-kd.md).
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.planted import designs as D
from benchmarks.planted import runner as R
from benchmarks.planted import settings as S
from pipeline import distill, prepare
from pipeline import schema as P
from pipeline.methods.rl_kd import Settings as RL
from tests.conftest import write_params

pytestmark = pytest.mark.slow  # trains models or runs DVC: out of the fast tier

SEEDS = ["1", "2", "3"]
TEACHERS = D.TEACHERS["coin"]


@pytest.fixture
def planted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, R.params("coin", tmp_path))
    prepare.main("reviews")
    return tmp_path, D.plant("coin", tmp_path)


def run(root, method, seed):
    distill.main("reviews", method, seed)
    return json.loads((root / "runs/reviews" / method / seed / "metrics.json").read_text())


@pytest.mark.parametrize("design", D.DESIGNS)
def test_agent_learns_to_avoid_corrupted_teachers_and_beats_equal_weights(tmp_path, design):
    runs = R.run_design(design, SEEDS, {"effect_agent": {}}, tmp_path)["effect_agent"]["runs"]
    assert [r["seed"] for r in runs] == SEEDS and all("error" not in r for r in runs), runs
    failed = []
    for r in runs:
        assert set(r["gaps"]) == ({"bad_a", "bad_b"} if design == "coin" else set(D.TEACHERS[design]))
        failed += [(r["seed"], f"gap {t}", g) for t, g in r["gaps"].items() if g < R.MIN_GAP]
        if not r["agent"] > r["u_ensemble"]:
            failed.append((r["seed"], "effect_agent <= u_ensemble", (r["agent"], r["u_ensemble"])))
    assert not failed, (design, failed)  # every seed's every check, to read at once


def test_rl_kd_writes_its_curves(planted):
    root, _ = planted
    write_params(root, R.params("coin", root, {"method": "rl_kd"}))  # the paper's RL-KD
    run(root, S.AGENT, "1")
    out = root / "runs/reviews" / S.AGENT / "1"
    history = json.loads((out / "history.json").read_text())
    assert history[0]["selection_rate"] is None  # the warm-up epoch uses equal weights
    assert all(len(h["selection_rate"]) == 3 for h in history[1:])
    rewards = json.loads((out / "rewards.json").read_text())
    assert {r["epoch"] for r in rewards} == {h["epoch"] for h in history[1:]}
    assert len(rewards) > len(history) and all(np.isfinite([r["reward"] for r in rewards]))
    metrics = json.loads((out / "metrics.json").read_text())
    pretraining = metrics["policy_pretraining"]
    assert len(pretraining) == RL().pretrain_epochs and "reward_mean" in pretraining[0]
    # the paper's procedure steps the policy on every batch: nothing skipped
    assert all(h["policy_steps_skipped"] == 0 and h["policy_steps"] > 0 for h in history[1:])
    weights = pd.read_parquet(out / "weights.parquet")
    assert set(weights.columns) == {"id", *TEACHERS, *(f"select_{t}" for t in TEACHERS)}
    assert weights[[f"select_{t}" for t in TEACHERS]].stack().between(0, 1).all()


@pytest.mark.parametrize(
    "rl, message",
    [
        # the schema's and the cross-section checks, as the stage meets them (the rest: tests/test_params.py)
        ({"state": ["pooled", "attention"]}, "methods.agent.state.1"),
        ({"warmup_epochs": R.EPOCHS}, "methods.agent.warmup_epochs"),  # no epoch left for the agent
    ],
)
def test_bad_rl_parameters_stop_before_training(tmp_path, monkeypatch, rl, message):
    """An agent's run stops at its own check of its section, before anything is trained or written."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, R.params("coin", tmp_path, rl))
    with pytest.raises(P.InputError, match=message):
        distill.main("reviews", S.AGENT, "1")
    assert not (tmp_path / "runs").exists()


def test_guard_changes_nothing_when_the_agent_wins(planted):
    """The guard's equal-weights run leaves no trace (batches, dropout, student) on the agent's run, so a run the
    agent wins on dev is the run without the guard, number for number."""
    root, _ = planted
    write_params(root, R.params("coin", root, {"guard": "none"}))
    unguarded = run(root, S.AGENT, "1")
    write_params(root, R.params("coin", root, {"guard": "equal_weights"}))
    guarded = run(root, S.AGENT, "1")
    history = json.loads((root / "runs/reviews" / S.AGENT / "1/history.json").read_text())
    assert history[-1]["guard"]["kept"] == "agent"
    assert guarded["test_accuracy"] == unguarded["test_accuracy"]
    assert guarded["dev_accuracy"] == unguarded["dev_accuracy"]


def test_guard_keeps_equal_weights_where_the_agent_fails(planted, monkeypatch):
    """An agent made to fail (the student taught by the two corrupted teachers alone, wrong on half of train):
    without the guard the student ends below equal weights on dev; with it, the run keeps its equal-weights
    run, whose best dev accuracy is the run's."""
    from pipeline.methods.rl_kd.agent import Agent

    root, _ = planted
    act = Agent.act

    def saboteur(self, idx, student_logits, labels):
        act(self, idx, student_logits, labels)  # the policy samples and learns as usual
        return torch.tensor([[0.0, 0.5, 0.5]]).expand(len(idx), -1)  # good, bad_a, bad_b

    monkeypatch.setattr(Agent, "act", saboteur)
    write_params(root, R.params("coin", root, {"guard": "none"}))
    failed = run(root, S.AGENT, "1")
    write_params(root, R.params("coin", root, {"guard": "equal_weights"}))
    guarded = run(root, S.AGENT, "1")
    guard = json.loads((root / "runs/reviews" / S.AGENT / "1/history.json").read_text())[-1]["guard"]
    assert guard["kept"] == "equal_weights", guard
    assert guarded["dev_accuracy"] == guard["equal_weights_dev_accuracy"] > guard["agent_dev_accuracy"]
    assert guarded["dev_accuracy"] > failed["dev_accuracy"]
    # the kept student's record: each instance's weights per epoch, over the epochs behind it, sum to one
    assert sum(guarded["teacher_weights"].values()) == pytest.approx(1.0)
