"""RL-KD must be shown to work, not only to run: the planted-teacher test.

Three teachers: one good, and two copies of it made confidently wrong on a known half of the
training instances. With a high KD weight, equal weighting teaches the student wrong labels on
that half. The agent must learn to stop selecting the corrupted teachers where they are wrong
(their selection probability clearly lower there than on their clean instances) and its student
must beat the equal-weight student, in every seed.
"""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline import data, distill, logits, params as P, prepare, rl_kd
from tests.conftest import sentiment_frame, tiny_params, tiny_teacher, write_params

SEEDS = ["1", "2", "3"]
TEACHERS = ["good", "bad_a", "bad_b"]


def planted_params(root, **rl):
    params = tiny_params(root)
    sentiment_frame(700).to_csv(root / "user_data/reviews.csv", index=False)
    params["run"] = {"tasks": ["reviews"], "teachers": TEACHERS, "methods": ["u_ensemble"], "seeds": [1]}
    params["teachers"] = {t: tiny_teacher() for t in TEACHERS}  # never trained: their cache is planted below
    params["student"] = {"source": "random", "arch": "bert", "vocab_size": 200, "max_length": 24,
                         "config": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                    "intermediate_size": 32, "max_position_embeddings": 64}}
    params["distill"] = {"epochs": 4, "batch_size": 16, "lr": 3e-3, "alpha": 0.9, "temperature": 2.0}
    params["rl"] = rl  # the agent's defaults
    return params


def plant(root):
    """Write teacher caches: `good` is right everywhere; `bad_a` and `bad_b` are wrong on a known half of train."""
    rng = np.random.default_rng(0)
    corrupted = {}
    for split in data.SPLITS:
        df = data.load_split(root / "data/reviews", split)
        y = torch.tensor(df.label.to_numpy())
        n = len(df)
        right = torch.nn.functional.one_hot(y, 2).float() * 4 - 2 + torch.tensor(rng.normal(0, 0.3, (n, 2))).float()
        flip = torch.tensor(rng.random(n) < 0.5) if split == "train" else torch.zeros(n, dtype=torch.bool)
        wrong = torch.where(flip[:, None], right.flip(-1), right)
        for name, lg in (("good", right), ("bad_a", wrong), ("bad_b", wrong)):
            path = root / "logits/reviews" / name / f"{split}.safetensors"
            path.parent.mkdir(parents=True, exist_ok=True)
            pooled = torch.tensor(rng.normal(0, 1, (n, 8))).float()
            logits.save(path, df, logits.tensors(lg, pooled, y))
        if split == "train":
            corrupted = dict(zip(df.id, flip.numpy()))
    return corrupted


@pytest.fixture
def planted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, planted_params(tmp_path))
    prepare.main("reviews")
    return tmp_path, plant(tmp_path)


def run(root, method, seed):
    rl_kd.main("reviews", seed) if method == "rl_kd" else distill.main("reviews", method, seed)
    return json.loads((root / "runs/reviews" / method / seed / "metrics.json").read_text())


def test_agent_learns_to_avoid_corrupted_teachers_and_beats_equal_weights(planted):
    root, corrupted = planted
    for seed in SEEDS:
        equal, rl = run(root, "u_ensemble", seed), run(root, "rl_kd", seed)
        sel = pd.read_parquet(root / "runs/reviews/rl_kd" / seed / "weights.parquet")
        bad = sel.id.map(corrupted).astype(bool)
        for teacher in ("select_bad_a", "select_bad_b"):
            gap = sel.loc[~bad, teacher].mean() - sel.loc[bad, teacher].mean()
            assert gap >= 0.3, (seed, teacher, gap)
        assert rl["test_accuracy"] > equal["test_accuracy"], (seed, rl["test_accuracy"], equal["test_accuracy"])


def test_rl_kd_writes_its_curves(planted):
    root, _ = planted
    run(root, "rl_kd", "1")
    out = root / "runs/reviews/rl_kd/1"
    history = json.loads((out / "history.json").read_text())
    assert history[0]["selection_rate"] is None  # the warm-up epoch uses equal weights
    assert all(len(h["selection_rate"]) == 3 for h in history[1:])
    rewards = json.loads((out / "rewards.json").read_text())
    assert {r["epoch"] for r in rewards} == {h["epoch"] for h in history[1:]}
    assert len(rewards) > len(history) and all(np.isfinite([r["reward"] for r in rewards]))
    metrics = json.loads((out / "metrics.json").read_text())
    pretraining = metrics["policy_pretraining"]
    assert len(pretraining) == P.RL().pretrain_epochs and "reward_mean" in pretraining[0]
    weights = pd.read_parquet(out / "weights.parquet")
    assert set(weights.columns) == {"id", *TEACHERS, *(f"select_{t}" for t in TEACHERS)}
    assert weights[[f"select_{t}" for t in TEACHERS]].stack().between(0, 1).all()


@pytest.mark.parametrize("rl, message", [
    ({"reward": "bleu"}, "rl.reward"),
    ({"state": ["pooled", "attention"]}, "rl.state.1"),
    ({"policy_lr": 0}, "rl.policy_lr: Input should be greater than 0"),
    ({"policy_lr": -1e-3}, "rl.policy_lr: Input should be greater than 0"),
    ({"warmup_epochs": 4}, "rl.warmup_epochs"),
])
def test_bad_rl_parameters_stop_before_training(tmp_path, monkeypatch, rl, message):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, planted_params(tmp_path, **rl))
    with pytest.raises(P.InputError, match=message):
        rl_kd.main("reviews", "1")
    assert not (tmp_path / "runs").exists()


def test_a_state_feature_the_cache_lacks(planted):
    from pipeline.agent import teacher_features
    root, _ = planted
    df = data.load_split(root / "data/reviews", "train")
    cache = distill.load_teachers("reviews", TEACHERS, {"train": df})["train"]
    del cache["pooled"]
    with pytest.raises(P.InputError, match="rl.state: feature 'pooled' needs the cache field 'pooled'"):
        teacher_features(cache, TEACHERS, ["pooled", "ce"])
