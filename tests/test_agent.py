"""RL-KD's agent (pipeline/methods/rl_kd/): the policy, its state, its update and its rewards.

Expected values are worked out independently of the code under test: by hand (2-class examples in
the comments), or by a different computation (autograd and an actual small step of the student's head).
The run tests use the planted `coin` design of benchmarks/planted/ with short schedules.
"""

import copy
import math
import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel, get_linear_schedule_with_warmup

from benchmarks.planted import designs as D
from benchmarks.planted import runner as R
from benchmarks.planted import settings as S
from pipeline import distill, prepare, training
from pipeline import schema as P
from pipeline.losses import student_loss
from pipeline.methods import effect_agent, rl_kd
from pipeline.methods.rl_kd.agent import Agent, Policy
from pipeline.methods.rl_kd.reward import Reward
from pipeline.methods.weighting import Run
from pipeline.models import Classifier
from pipeline.task_data import student_rows
from tests.conftest import write_params


def RL(**settings):
    """An agent's settings: the paper's RL-KD's for its rewards, else this suite's agent's (the agent and reward
    modules serve both; effect_agent's defaults are those these tests were written against)."""
    paper = settings.get("reward") in rl_kd.SCALAR_REWARDS
    return (rl_kd.Settings if paper else effect_agent.Settings)(**settings)


N, K = 64, 2
LN3 = math.log(3)


def cache():
    torch.manual_seed(0)
    ce = torch.stack([torch.rand(N) * 0.1, torch.linspace(0, 3, N)], 1)  # teacher 1 is wrong on the later rows
    return {"ce": ce, "probs": torch.rand(N, K, 2).softmax(-1), "pooled": [torch.randn(N, 4), torch.randn(N, 6)]}


def lengths(n=N):
    return torch.arange(n) % 7 + 3


def agent_of(cfg: RL, c=None, teachers=("a", "b"), seed=0, n=N) -> Agent:
    return Agent(cfg, cache() if c is None else c, list(teachers), num_labels=2, seed=seed, lengths=lengths(n))


def params_of(agent: Agent) -> list[torch.Tensor]:
    return [p.detach().clone() for p in agent.policy.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


class TableModel(nn.Module):
    """A stand-in student: row i of train has the fixed pooled vector table[i]; logits = head(dropout(pooled)).
    Its input is one token per row, the row's index (see `row_enc`)."""

    def __init__(self, table: torch.Tensor, num_labels: int, dropout: float = 0.0):
        super().__init__()
        self.register_buffer("table", table.float())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(table.shape[1], num_labels)

    def forward(self, input_ids, **_):
        pooled = self.table[input_ids[:, 0]]
        return self.head(self.dropout(pooled)), pooled


class LogitModel(nn.Module):
    """A stand-in student whose logits on row i are fixed: table[i]."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.register_buffer("table", table.float())

    def forward(self, input_ids, **_):
        return self.table[input_ids[:, 0]], torch.zeros(len(input_ids), 1)


def row_enc(n: int) -> dict:
    return {"input_ids": [[i] for i in range(n)]}


def spy_rows(reward: Reward) -> list:
    """Record the held-out rows each of the reward's measurements draws."""
    drawn, draw = [], reward.held_out_rows
    reward.held_out_rows = lambda size: drawn.append(draw(size)) or drawn[-1]
    return drawn


def reward_of(rl, model, n, labels, teacher_logits, held_out, cfg=None, seed=0) -> Reward:
    cfg = cfg or P.Distill(alpha=0.5, temperature=2.0)
    held = None if held_out is None else np.asarray(held_out)
    return Reward(
        rl,
        model,
        row_enc(n),
        torch.as_tensor(labels),
        torch.as_tensor(teacher_logits).float(),
        cfg,
        0,
        held,
        np.random.default_rng(seed),
    )


# ---- the policy ---------------------------------------------------------------------------------


def test_policy_starts_indifferent_and_pads_narrow_states():
    """A shared policy takes states of different widths (zero-padded) and starts at pi = 1/2 everywhere."""
    policy = Policy([3, 5], shared=True)
    probs = policy([torch.randn(4, 3), torch.randn(4, 5)])
    assert probs.shape == (4, 2) and torch.allclose(probs, torch.full((4, 2), 0.5))


def test_hard_weights_normalise_the_selected_teachers():
    """The student's weights are the sampled selections, normalised: positive exactly where selected, summing to 1."""
    agent = agent_of(RL())
    idx = np.arange(32)
    w = agent.act(idx, torch.randn(32, 2), torch.zeros(32, dtype=torch.long))
    actions = agent.last[1]
    assert torch.equal(w > 0, actions > 0)
    some = actions.sum(-1) > 0
    assert torch.allclose(w.sum(-1)[some], torch.ones(int(some.sum())))
    assert torch.equal(w.sum(-1)[~some], torch.zeros(int((~some).sum())))


def test_per_teacher_reward_teaches_where_a_teacher_hurts():
    """A [B, K] reward that is low where a teacher's CE is high teaches the policy to drop it there."""
    c = cache()
    agent = agent_of(RL(state=["ce"], policy="per_teacher", policy_lr=0.1), c)
    idx = np.arange(N)
    for _ in range(150):
        agent.act(idx, torch.zeros(N, 2), torch.zeros(N, dtype=torch.long))
        agent.learn(-c["ce"] + 1.0)
    p = agent.probabilities(idx, torch.zeros(N, 2), torch.zeros(N, dtype=torch.long))
    assert p[: N // 4, 1].mean() - p[-N // 4 :, 1].mean() > 0.3


def test_same_seed_same_selections():
    """The agent's sampling follows its seed alone."""
    picks = []
    for _ in range(2):
        agent = agent_of(RL(), seed=7)
        agent.act(np.arange(N), torch.zeros(N, 2), torch.zeros(N, dtype=torch.long))
        picks.append(agent.last[1])
    assert torch.equal(*picks)


def test_policy_batches_steps_on_every_second_learn_call():
    """rl.policy_batches: 2 accumulates two batches' gradients per step: the policy's parameters must stay
    put after the 1st and 3rd `learn` and move after the 2nd and 4th (fails if it steps every call or never)."""
    agent = agent_of(RL(state=["ce", "length"], policy_batches=2, reward="gradient_alignment"))
    idx, gen = np.arange(16), torch.Generator().manual_seed(1)
    moved = []
    for _ in range(4):
        before = params_of(agent)
        agent.act(idx, torch.zeros(16, 2), torch.zeros(16, dtype=torch.long))
        agent.learn(torch.randn(16, K, generator=gen))
        moved.append(not same(before, params_of(agent)))
    assert moved == [False, True, False, True]


def test_local_expectation_step_follows_the_sign_of_with_minus_without():
    """A [B, K, 2] reward (effect with the teacher, without it): one `learn` at pi = 1/2 must raise pi where
    with - without > 0 (teacher 0) and lower it where < 0 (teacher 1), on every instance; and, being an
    expectation over the selections, the step must not depend on which selections were sampled (seed)."""
    c = {"ce": torch.rand(N, K)}
    results = []
    for seed in (0, 1):
        agent = agent_of(RL(state=["teacher"], policy="per_teacher", reward="held_out_effect"), c, seed=seed)
        idx = np.arange(N)
        agent.act(idx, torch.zeros(N, 2), torch.zeros(N, dtype=torch.long))
        reward = torch.zeros(N, K, 2)
        reward[:, 0, 0], reward[:, 0, 1] = 0.3, 0.1  # teacher 0 helps: +0.2
        reward[:, 1, 0], reward[:, 1, 1] = 0.1, 0.4  # teacher 1 hurts: -0.3
        agent.learn(reward)
        results.append(agent.probabilities(idx, torch.zeros(N, 2), torch.zeros(N, dtype=torch.long)))
    p = results[0]
    assert (p[:, 0] > 0.5).all() and (p[:, 1] < 0.5).all(), p[:3]
    assert torch.equal(results[0], results[1])


def test_only_a_per_teacher_policy_or_the_teacher_feature_tells_identical_states_apart():
    """Both teachers' states identical (the same CE column) and rewards favouring teacher 0 against teacher 1:
    per_teacher must move their probabilities apart; a shared policy cannot (the same W for both: exactly
    equal), unless the state holds the one-hot `teacher` feature."""
    c = {"ce": torch.rand(N, 1).repeat(1, K)}
    reward = torch.stack([torch.ones(N), -torch.ones(N)], 1)  # [B, K]: good for teacher 0, bad for teacher 1

    def trained(policy, state):
        agent = agent_of(RL(state=state, policy=policy, reward="gradient_alignment", policy_lr=0.1), c)
        idx = np.arange(N)
        for _ in range(10):
            agent.act(idx, torch.zeros(N, 2), torch.zeros(N, dtype=torch.long))
            agent.learn(reward)
        return agent.probabilities(idx, torch.zeros(N, 2), torch.zeros(N, dtype=torch.long))

    per_teacher = trained("per_teacher", ["ce"])
    assert (per_teacher[:, 0] - per_teacher[:, 1] > 0.2).all()
    shared = trained("shared", ["ce"])
    assert torch.equal(shared[:, 0], shared[:, 1])
    with_identity = trained("shared", ["ce", "teacher"])
    assert (with_identity[:, 0] - with_identity[:, 1] > 0.2).all()


# ---- the state ----------------------------------------------------------------------------------


def test_student_features_are_its_probabilities_and_ce():
    """student_probs = softmax of the student's logits, student_ce = CE to the gold label, for every teacher:
    logits [0, ln 3] -> probs [1/4, 3/4], CE to label 0 = ln 4; logits [ln 3, 0] -> [3/4, 1/4], CE to 0 = ln 4/3."""
    agent = agent_of(RL(state=["student_probs", "student_ce"]), {}, n=2)
    states = agent.states(np.arange(2), torch.tensor([[0.0, LN3], [LN3, 0.0]]), torch.tensor([0, 0]))
    expected = torch.tensor([[0.25, 0.75, math.log(4)], [0.75, 0.25, math.log(4 / 3)]])
    assert len(states) == K
    for s in states:
        assert torch.allclose(s, expected, atol=1e-6)


def test_length_is_the_standardised_log_token_count_and_teacher_is_one_hot():
    """Token counts 2, 4, 8: logs ln2 * [1, 2, 3], mean 2 ln2, standard deviation ln2 -> [-1, 0, 1].
    `teacher`: teacher k's state carries e_k on every instance (3 teachers)."""
    c = {"ce": torch.rand(3, 3)}
    agent = Agent(RL(state=["length", "teacher"]), c, ["a", "b", "c"], 2, 0, torch.tensor([2, 4, 8]))
    states = agent.states(np.arange(3), torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))
    for k, s in enumerate(states):
        assert torch.allclose(s[:, 0], torch.tensor([-1.0, 0.0, 1.0]), atol=1e-6)
        assert torch.equal(s[:, 1:], torch.eye(3)[k].repeat(3, 1))


@pytest.mark.parametrize("feature, field", [("ce", "ce"), ("probs", "probs"), ("pooled", "pooled")])
def test_a_cache_field_the_state_needs_is_missing(feature, field):
    """A state feature read from the teacher cache, absent there: an InputError that names feature and field."""
    c = {k: v for k, v in cache().items() if k != field}
    with pytest.raises(P.InputError, match=f"feature '{feature}' needs the cache field '{field}'"):
        agent_of(RL(state=["length", feature]), c)


# ---- rewards ------------------------------------------------------------------------------------

# held_out_effect: the selections of the batch's 3 instances, and per (instance, teacher) the weights the
# student's loss uses with that teacher selected and without it (None: no teacher; `equal` or CE alone)
SELECTIONS = [[0, 0, 0], [1, 0, 1], [0, 1, 0]]
WITH_WITHOUT = {
    (0, 0): ([1, 0, 0], None),
    (0, 1): ([0, 1, 0], None),
    (0, 2): ([0, 0, 1], None),
    (1, 0): ([0.5, 0, 0.5], [0, 0, 1]),
    (1, 1): ([1 / 3, 1 / 3, 1 / 3], [0.5, 0, 0.5]),
    (1, 2): ([0.5, 0, 0.5], [1, 0, 0]),
    (2, 0): ([0.5, 0.5, 0], [0, 1, 0]),
    (2, 1): ([0, 1, 0], None),
    (2, 2): ([0, 0.5, 0.5], [0, 1, 0]),
}


def measured_decrease(model, row, y, teacher_logits, weights, no_teacher, held, held_y, cfg, eps=1e-3):
    """The held-out CE decrease, per unit step, when the head takes one plain gradient step of size eps on
    instance `row`'s loss alone (autograd, float64). weights None: no teacher selected."""
    W = model.head.weight.detach().double().clone().requires_grad_()
    b = model.head.bias.detach().double().clone().requires_grad_()
    z = model.table[[row]].double() @ W.T + b
    y = torch.tensor([y])
    if weights is None and no_teacher == "equal":
        weights = [1 / 3] * 3
    if weights is None:  # CE alone, at full weight
        loss = F.cross_entropy(z, y)
    else:
        loss = student_loss(
            z,
            y,
            teacher_logits[[row]].double(),
            torch.tensor([weights], dtype=torch.float64),
            cfg.alpha,
            cfg.temperature,
            cfg.t2_scaling,
        )
    gW, gb = torch.autograd.grad(loss, (W, b))
    pooled = model.table[held].double()

    def ce(W, b):
        return F.cross_entropy(pooled @ W.T + b, held_y)

    with torch.no_grad():
        return float(ce(W, b) - ce(W - eps * gW, b - eps * gb)) / eps


@pytest.mark.parametrize("t2_scaling", [True, False])
@pytest.mark.parametrize("no_teacher", ["equal", "ce"])
def test_held_out_effect_is_the_measured_first_order_decrease(no_teacher, t2_scaling):
    """after()[j, k, 0] (with teacher k) and [j, k, 1] (without) must match the held-out CE decrease that a
    small step (eps 1e-3) of the head on instance j's loss actually makes, divided by eps, and so must their
    difference, the teacher's credit: an empty selection (equal weights or CE alone), a two-teacher and a
    one-teacher one. Fails on a wrong sign, T factor, alpha weighting, normalisation or no_teacher rule."""
    torch.manual_seed(0)
    n, held = 9, [3, 4, 5, 6, 7, 8]
    model = TableModel(torch.randn(n, 4), 3)
    labels = torch.randint(0, 3, (n,))
    teacher_logits = 2 * torch.randn(n, 3, 3)
    cfg = P.Distill(alpha=0.7, temperature=2.0, t2_scaling=t2_scaling)
    reward = reward_of(RL(no_teacher=no_teacher), model, n, labels, teacher_logits, held, cfg)
    drawn = spy_rows(reward)
    idx = np.arange(3)
    measured = reward.before(idx)
    with torch.no_grad():
        logits, pooled = model(input_ids=torch.tensor(idx)[:, None])
    out = reward.after(measured, idx, logits, pooled, torch.tensor(SELECTIONS, dtype=torch.float))
    assert out.shape == (3, 3, 2) and len(drawn) == 1 and set(drawn[0]) <= set(held) and len(drawn[0]) == 3
    rows = torch.as_tensor(drawn[0])
    for (j, k), (w_with, w_without) in WITH_WITHOUT.items():

        def decrease(weights):
            return measured_decrease(
                model, j, int(labels[j]), teacher_logits, weights, no_teacher, rows, labels[rows], cfg
            )

        with_k, without_k = decrease(w_with), decrease(w_without)
        assert float(out[j, k, 0]) == pytest.approx(with_k, rel=1e-2, abs=1e-4), (j, k)
        assert float(out[j, k, 1]) == pytest.approx(without_k, rel=1e-2, abs=1e-4), (j, k)
        assert float(out[j, k, 0] - out[j, k, 1]) == pytest.approx(with_k - without_k, rel=1e-2, abs=2e-4), (j, k)


@pytest.mark.parametrize("t2_scaling, expected", [(True, 1.5), (False, 0.375)])
def test_gradient_alignment_by_hand(t2_scaling, expected):
    """One feature, 2 classes, head W = 0, b = 0: every logit is 0, every softmax [1/2, 1/2].
    Held-out row: pooled 1, label 0 -> residual softmax - onehot = [-1/2, 1/2]; the held-out CE gradient
    w.r.t. [W | b] is G = residual^T [1, 1] = [[-1/2, -1/2], [1/2, 1/2]].
    Training instance: pooled 2 -> u = [2, 1] G^T = [-3/2, 3/2].
    T = 2. Teacher 0's logits [2 ln3, 0] / T -> targets [3/4, 1/4]; teacher 1's [0, 2 ln3] -> [1/4, 3/4].
    KD gradient w.r.t. the logits: T (softmax(z/T) - targets) = 2 [-1/4, 1/4] = [-1/2, 1/2] for teacher 0
    (with t2_scaling; without, 1/T: [-1/8, 1/8]). Score = kd . u = 3/4 + 3/4 = 1.5 (without: 0.375);
    teacher 1 the opposite."""
    model = TableModel(torch.tensor([[2.0], [1.0]]), 2)
    nn.init.zeros_(model.head.weight)
    nn.init.zeros_(model.head.bias)
    teacher_logits = torch.tensor([[[2 * LN3, 0.0], [0.0, 2 * LN3]], [[0.0, 0.0], [0.0, 0.0]]])
    cfg = P.Distill(alpha=0.5, temperature=2.0, t2_scaling=t2_scaling)
    reward = reward_of(RL(reward="gradient_alignment"), model, 2, [1, 0], teacher_logits, [1], cfg)
    idx = np.array([0])
    measured = reward.before(idx)
    out = reward.after(measured, idx, torch.zeros(1, 2), torch.tensor([[2.0]]), torch.ones(1, 2))
    assert torch.allclose(out, torch.tensor([[expected, -expected]]), atol=1e-6)


def tiny_classifier(n: int, seed: int = 0):
    """A tiny BERT student with dropout 0.5 everywhere, and `n` rows of 3-8 random tokens."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        hidden_dropout_prob=0.5,
        attention_probs_dropout_prob=0.5,
    )
    model = Classifier(BertModel(config), 2, dropout=0.5)
    rng = np.random.default_rng(seed)
    ids = [list(rng.integers(1, 30, size=int(rng.integers(3, 9)))) for _ in range(n)]
    enc = {
        "input_ids": ids,
        "attention_mask": [[1] * len(r) for r in ids],
        "token_type_ids": [[0] * len(r) for r in ids],
    }
    return model, enc


def all_training(model) -> bool:
    return all(m.training for m in model.modules())


@pytest.mark.parametrize("reward, scalar", [("instance_ce_delta", "after"), ("neg_ce", "gain")])
def test_rewards_are_zero_without_an_update_because_they_are_measured_in_eval_mode(reward, scalar):
    """No update between before() and after(): a student with dropout 0.5 measured in eval mode gives
    exactly the same numbers twice, so instance_ce_delta (per instance) and neg_ce gain must be exactly 0.
    In train mode dropout would make them differ (checked, so the test is not vacuous). The model must be
    back in train mode after each call."""
    n, labels = 20, torch.randint(0, 2, (20,), generator=torch.Generator().manual_seed(0))
    model, enc = tiny_classifier(n)
    batch = training.collate(enc, np.arange(8), 0)
    assert not torch.equal(model(**batch)[0], model(**batch)[0])  # dropout is active in train mode
    rl = RL(reward=reward) if scalar == "after" else RL(reward=reward, scalar_reward=scalar)
    held = None if reward == "instance_ce_delta" else np.arange(10, 20)
    r = Reward(rl, model, enc, labels, torch.zeros(n, 2, 2), P.Distill(), 0, held, np.random.default_rng(0))
    idx = np.arange(8)
    measured = r.before(idx)
    assert all_training(model)
    out = r.after(measured, idx, torch.zeros(8, 2), torch.zeros(8, 16), torch.ones(8, 2))
    assert all_training(model)
    assert torch.equal(out, torch.zeros_like(out)) and out.numel() == (8 if reward == "instance_ce_delta" else 1)


def test_neg_ce_is_minus_the_eval_mode_ce_on_the_drawn_held_out_rows():
    """neg_ce after the update = -mean_i -log softmax(z_i)[y_i] over the held-out rows it drew, with the
    student in eval mode (computed here by hand); train mode's dropout would give another value."""
    n, labels = 20, torch.randint(0, 2, (20,), generator=torch.Generator().manual_seed(1))
    model, enc = tiny_classifier(n, seed=1)
    r = Reward(
        RL(reward="neg_ce"),
        model,
        enc,
        labels,
        torch.zeros(n, 2, 2),
        P.Distill(),
        0,
        np.arange(10, 20),
        np.random.default_rng(0),
    )
    drawn = spy_rows(r)
    idx = np.arange(6)
    measured = r.before(idx)
    out = r.after(measured, idx, torch.zeros(6, 2), torch.zeros(6, 16), torch.ones(6, 2))
    assert all_training(model)
    rows = drawn[0]
    assert len(rows) == 6 and set(rows) <= set(range(10, 20))
    batch = training.collate(enc, rows, 0)
    model.eval()
    with torch.no_grad():
        z = model(**batch)[0]
    model.train()
    by_hand = -(-(z.log_softmax(-1)[torch.arange(6), labels[rows]])).mean()
    assert float(out) == pytest.approx(float(by_hand), abs=1e-6)
    with torch.no_grad():
        z_train = model(**batch)[0]
    assert float(F.cross_entropy(z_train, labels[rows])) != pytest.approx(-float(by_hand), abs=1e-4)


# two held-out rows, 2 classes, T = 2, alpha = 1/2, two teachers (equally weighted in neg_ce_kd):
#   row 1: student logits [2 ln3, 0], label 0: softmax [9/10, 1/10] -> right, CE = ln(10/9);
#          at T = 2, [3/4, 1/4]; teachers [2 ln3, 0] -> [3/4, 1/4] and [0, 2 ln3] -> [1/4, 3/4]: their
#          mean [1/2, 1/2], soft CE = -(1/2 ln 3/4 + 1/2 ln 1/4) = 1/2 ln(16/3)
#   row 2: student logits [0, 2 ln3], label 0: softmax [1/10, 9/10] -> wrong, CE = ln 10;
#          at T = 2, [1/4, 3/4]; teachers both [0, 0] -> [1/2, 1/2], soft CE = 1/2 ln(16/3)
# accuracy 1/2; neg_ce = -(ln(10/9) + ln 10) / 2 = -ln(100/9) / 2;
# neg_ce_kd = -mean((1 - alpha) CE + alpha T^2 softCE) = -(ln(100/9) / 4 + ln(16/3))  (without T^2: alpha softCE,
#   -(ln(100/9) / 4 + ln(16/3) / 4))
SCALAR_LOGITS = torch.tensor([[0.0, 0.0], [2 * LN3, 0.0], [0.0, 2 * LN3]])  # row 0: the training instance
SCALAR_TEACHERS = torch.tensor([[[0.0, 0.0]] * 2, [[2 * LN3, 0.0], [0.0, 2 * LN3]], [[0.0, 0.0]] * 2])


@pytest.mark.parametrize(
    "kind, t2_scaling, expected",
    [
        ("held_out_accuracy", True, 0.5),
        ("neg_ce", True, -math.log(100 / 9) / 2),
        ("neg_ce_kd", True, -(math.log(100 / 9) / 4 + math.log(16 / 3))),
        ("neg_ce_kd", False, -(math.log(100 / 9) / 4 + math.log(16 / 3) / 4)),
    ],
)
def test_scalar_rewards_by_hand(kind, t2_scaling, expected):
    """The paper's scalar rewards on the two hand-worked held-out rows above (both drawn: batch of 2)."""
    cfg = P.Distill(alpha=0.5, temperature=2.0, t2_scaling=t2_scaling)
    r = reward_of(RL(reward=kind), LogitModel(SCALAR_LOGITS), 3, [1, 0, 0], SCALAR_TEACHERS, [1, 2], cfg)
    idx = np.array([0, 0])
    out = r.after(r.before(idx), idx, torch.zeros(2, 2), torch.zeros(2, 1), torch.ones(2, 2))
    assert float(out) == pytest.approx(expected, abs=1e-6)


def test_held_out_accuracy_is_the_fraction_right_on_the_rows_drawn():
    """Held-out rows right (1) or wrong (0) by construction; a batch of 2 draws 2 of the 4 rows: the
    accuracy must be the mean of the drawn rows' flags, whichever were drawn (ten draws)."""
    right = {1: 1, 2: 1, 3: 0, 4: 1}
    y = [0, 0, 0, 0, 0]
    logits = torch.tensor([[1.0, 0.0]] + [[1.0, -1.0] if right[i] else [-1.0, 1.0] for i in range(1, 5)])
    r = reward_of(RL(reward="held_out_accuracy"), LogitModel(logits), 5, y, torch.zeros(5, 1, 2), [1, 2, 3, 4])
    drawn = spy_rows(r)
    seen = set()
    for _ in range(10):
        idx = np.array([0, 0])
        value = float(r.after(r.before(idx), idx, torch.zeros(2, 2), torch.zeros(2, 1), torch.ones(2, 1)))
        rows = drawn[-1]
        seen.add(value)
        assert len(set(rows)) == 2 and value == np.mean([right[int(i)] for i in rows])
    assert seen == {0.5, 1.0}  # both kinds of draw occurred


# ---- held-out rows ------------------------------------------------------------------------------


def test_no_held_out_fraction_keeps_every_row():
    train, out = student_rows(5, 0, 0)
    assert list(train) == [0, 1, 2, 3, 4] and len(out) == 0


@pytest.mark.parametrize(
    "n, fraction, seed, held", [(100, 0.1, 0, 10), (7, 0.3, 1, 2), (41, 0.5, 2, 20), (3, 0.1, 0, 1)]
)
def test_student_rows_are_a_seeded_partition(n, fraction, seed, held):
    """Training and held-out rows: disjoint, covering range(n), round(f n) held out (at least 1), sorted,
    the same for the same seed and different for another."""
    train, out = student_rows(n, fraction, seed)
    assert len(out) == held and len(train) == n - held
    assert not set(train) & set(out) and set(train) | set(out) == set(range(n))
    assert list(train) == sorted(train) and list(out) == sorted(out)
    assert np.array_equal(out, student_rows(n, fraction, seed)[1])
    if n >= 41:
        assert not np.array_equal(out, student_rows(n, fraction, seed + 1)[1])


@pytest.fixture(scope="module")
def coin_root(tmp_path_factory):
    """The planted coin task, prepared and its teachers planted once for this module's runs."""
    root = tmp_path_factory.mktemp("coin")
    home = os.getcwd()
    os.chdir(root)
    try:
        write_params(root, R.params("coin", root))
        prepare.main(D.TASK)
        D.plant("coin", root)
    finally:
        os.chdir(home)
    return root


@pytest.fixture
def coin(coin_root, monkeypatch):
    """run(rl) -> the run's folder: an agent on the coin task (this suite's, or the paper's RL-KD for its rewards),
    seed 1, 2 epochs (1 warm-up) and 1 pre-training epoch."""
    monkeypatch.chdir(coin_root)

    def run(rl: dict):
        paper = {"method": "rl_kd"} if rl.get("reward") in rl_kd.SCALAR_REWARDS else {}  # the paper's rewards' file
        values = R.params("coin", coin_root, {"pretrain_epochs": 1, **paper, **rl})
        values["distill"]["epochs"] = 2
        write_params(coin_root, values)
        distill.main(D.TASK, S.AGENT, "1")
        return coin_root / "runs" / D.TASK / S.AGENT / "1"

    return run


def train_size(root) -> int:
    return len(pd.read_parquet(root / "data" / D.TASK / "train.parquet"))


@pytest.mark.slow
@pytest.mark.parametrize("reward", ["held_out_effect", "neg_ce", "instance_ce_delta"])
def test_the_student_never_trains_on_the_rows_the_reward_measures(coin, coin_root, monkeypatch, reward):
    """Spies on the batches of every training epoch (warm-up, pre-training, joint) and on the rows the reward
    runs the student on: the student must train on exactly the rows of task_data.student_rows (every method's
    student does), the reward draw only held-out rows; with instance_ce_delta the same rows train, and no reward
    reads the held-out ones."""
    trained, measured = set(), set()
    order, forward = training.training_batches, Reward.forward

    def spy_order(rows, *args, **kwargs):  # every training epoch's batches are cut from its rows here
        trained.update(int(i) for i in rows)
        return order(rows, *args, **kwargs)

    def spy_forward(self, rows):
        measured.update(int(i) for i in rows)
        return forward(self, rows)

    monkeypatch.setattr(training, "training_batches", spy_order)
    monkeypatch.setattr(Reward, "forward", spy_forward)
    coin({"reward": reward})
    n = train_size(coin_root)
    rows, held = student_rows(n, 0.1, 0)
    if reward == "instance_ce_delta":
        assert trained == set(rows.tolist()) and measured <= trained
        return
    assert len(held) == round(0.1 * n)
    assert trained == set(rows.tolist()) and not trained & set(held.tolist())
    assert measured and measured <= set(held.tolist())


@pytest.mark.slow
def test_no_teacher_equal_gives_every_trained_row_weights_summing_to_one(coin, coin_root):
    """no_teacher: equal fills an empty selection with equal weights: every training row's mean teacher
    weights (weights.parquet) sum to 1; the held-out rows, never trained on, to 0."""
    out = coin({"no_teacher": "equal"})
    w = pd.read_parquet(out / "weights.parquet")[D.TEACHERS["coin"]].sum(axis=1).to_numpy()
    rows, held = student_rows(len(w), 0.1, 0)
    assert np.allclose(w[rows], 1.0, atol=1e-6)
    assert np.array_equal(w[held], np.zeros(len(held)))


@pytest.mark.slow
def test_no_teacher_ce_leaves_some_rows_with_gold_labels_alone(coin, coin_root):
    """no_teacher: ce: an instance with no teacher selected learns from its gold label alone, so its weights
    that epoch are 0 and some training rows' mean weights sum to less than 1 (1/8 of instances per epoch at
    pi = 1/2 for three teachers); none sums to more."""
    out = coin({"no_teacher": "ce", "guard": "none"})  # the agent's weights, whichever run is better on dev
    w = pd.read_parquet(out / "weights.parquet")[D.TEACHERS["coin"]].sum(axis=1).to_numpy()
    rows, _ = student_rows(len(w), 0.1, 0)
    assert (w[rows] < 1 - 1e-6).sum() >= 5 and (w[rows] <= 1 + 1e-6).all()


@pytest.mark.slow
def test_a_per_teacher_policy_runs_with_one_linear_layer_per_teacher(coin, monkeypatch):
    """policy: per_teacher end to end: the run completes, its selection probabilities lie in [0, 1], and the
    agent's policy holds one linear layer per teacher (the shared policy holds one)."""
    agents, make = [], rl_kd.Agent

    def spy_agent(*args, **kwargs):
        agents.append(make(*args, **kwargs))
        return agents[-1]

    monkeypatch.setattr(rl_kd, "Agent", spy_agent)
    out = coin({"policy": "per_teacher"})
    select = pd.read_parquet(out / "weights.parquet")[[f"select_{t}" for t in D.TEACHERS["coin"]]]
    assert select.stack().between(0, 1).all()
    policy = agents[0].policy
    assert not policy.shared and len(policy.linears) == 3
    assert [layer.in_features for layer in policy.linears] == [f.shape[1] for f in agents[0].features]


# ---- policy pre-training ------------------------------------------------------------------------


def run_of(model, optimizer, scheduler, weight_sum, epochs: int) -> Run:
    """A run with what pre-training moves: 12 training rows in batches of 4, `epochs` epochs."""
    return Run(
        method="rl_kd", teachers=[], settings=None, cfg=SimpleNamespace(epochs=epochs, batch_size=4), seed=3,
        rng=np.random.default_rng(3), model=model, enc={}, pad=0, gold={}, cache={}, teacher_logits=None,
        rows=np.arange(12), held_out=np.arange(0), optimizer=optimizer, scheduler=scheduler, weight_sum=weight_sum,
        dev_accuracy=None,
    )  # fmt: skip


def play(schedule, run_epoch):
    """The training loop's part in a method's schedule: run each epoch it yields (`run_epoch(epoch)` -> its
    figures, put into `epoch.stats`); return what the schedule returns."""
    try:
        epoch = next(schedule)
        while True:
            epoch.stats = run_epoch(epoch)
            epoch = next(schedule)
    except StopIteration as done:
        return done.value


def test_pretrain_policy_puts_the_student_back_bit_for_bit():
    """RL-KD's pre-training trains (here: epoch_of really steps the model, its AdamW and its schedule and adds to
    weight_sum) and then must restore parameters, optimiser state, learning rate, schedule and weight_sum
    exactly, and the batch order's generator too; a next step must then equal the step of a twin that was never
    pre-trained."""
    model, enc = tiny_classifier(12, seed=2)
    labels = torch.randint(0, 2, (12,), generator=torch.Generator().manual_seed(2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = get_linear_schedule_with_warmup(optimizer, 2, 21)
    weight_sum = torch.zeros(12, 2)

    def step(m, opt, sched, rows):
        torch.manual_seed(int(rows[0]))  # the same dropout for a twin
        loss = F.cross_entropy(m(**training.collate(enc, rows, 0))[0], labels[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    step(model, optimizer, scheduler, np.arange(6))  # an optimiser with state, a schedule under way
    weight_sum += 0.5
    twin = copy.deepcopy((model, optimizer, scheduler))  # deep-copied together: the twin's optimiser holds its model
    state = copy.deepcopy((model.state_dict(), optimizer.state_dict(), scheduler.state_dict(), weight_sum))
    changed = []

    def epoch_of(epoch, with_agent):  # the loop's part: an epoch's batches, on the epoch's own schedule
        run.rng.permutation(12)  # an epoch's batch order
        for start in (0, 4, 8):
            step(model, optimizer, epoch.scheduler, np.arange(start, start + 4))
            weight_sum[start : start + 4] += 1.0
        changed.append(
            not torch.equal(model.head.weight, state[0]["head.weight"])
            and optimizer.param_groups[0]["lr"] != state[1]["param_groups"][0]["lr"]
            and not torch.equal(weight_sum, state[3])
        )
        return {"reward_mean": 0.0, "desc": epoch.desc, "with_agent": with_agent}

    method = object.__new__(rl_kd.RLKD)  # its hooks alone: no agent is needed to check the restore
    run = run_of(model, optimizer, scheduler, weight_sum, epochs=7)  # 7 epochs of 3 steps: the schedule's 21
    order = np.random.default_rng(3).permutation(12)  # the first batch order after pre-training, had it not run
    stats = play(method.pretrain(run, 2), lambda epoch: epoch_of(epoch, method.active))
    assert [s["with_agent"] for s in stats] == [True, True] and changed == [True, True]
    for key, value in state[0].items():
        assert torch.equal(model.state_dict()[key], value), key
    saved, now = state[1], optimizer.state_dict()
    assert saved["param_groups"] == now["param_groups"]
    for i, s in saved["state"].items():
        assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(now["state"][i][k])) for k, v in s.items()), i
    assert scheduler.state_dict() == state[2] and scheduler.get_last_lr() == twin[2].get_last_lr()
    assert torch.equal(weight_sum, state[3])
    assert np.array_equal(run.rng.permutation(12), order)
    step(model, optimizer, scheduler, np.arange(2, 8))
    step(*twin, np.arange(2, 8))
    for (key, a), b in zip(model.state_dict().items(), twin[0].state_dict().values()):
        assert torch.equal(a, b), key


def test_pre_training_runs_the_rest_of_the_schedule_and_never_at_learning_rate_0():
    """A schedule of 21 steps (warm-up 2: lambda(t) = t / 2, then (21 - t) / 19), warm-up epochs done at step 15,
    3 pre-training epochs of 3 steps: the student's own schedule would run steps 15-23, the last three at
    learning rate 0. The rehearsal stretches the remaining 6 steps over 9: step i at 15 + int(i * 6 / 9), so
    lambda = (21 - [15, 15, 16, 17, 17, 18, 19, 19, 20]) / 19, never 0."""
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, 2, 21)
    for _ in range(15):
        optimizer.step()
        scheduler.step()
    seen = []

    def epoch(e):
        for _ in range(3):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            e.scheduler.step()
        return {}

    run = run_of(model, optimizer, scheduler, torch.zeros(1), epochs=7)
    play(object.__new__(rl_kd.RLKD).pretrain(run, 3), epoch)
    assert seen == pytest.approx([(21 - t) / 19 for t in (15, 15, 16, 17, 17, 18, 19, 19, 20)])
    assert run.scheduler is scheduler and optimizer.param_groups[0]["lr"] == pytest.approx(6 / 19)


def test_agreement_counts_the_instances_whose_held_out_view_favours_their_gold_label():
    """By hand: u_j favours label y when u_j[y] is below u_j's mean over the classes. Two classes:
    [0.1, -0.2] with y 1: -0.2 < -0.05, yes; [0.3, 0.1] with y 0: 0.3 < 0.2, no; [-0.5, 0.5] with y 0: yes.
    Three classes: [0.2, -0.1, 0.5] with y 1: -0.1 < 0.2, yes; with y 2: 0.5 < 0.2, no."""
    from pipeline.methods.rl_kd.reward import agreement

    u = torch.tensor([[0.1, -0.2], [0.3, 0.1], [-0.5, 0.5]])
    assert agreement(u, torch.tensor([1, 0, 0])) == pytest.approx(2 / 3)
    u3 = torch.tensor([[0.2, -0.1, 0.5], [0.2, -0.1, 0.5]])
    assert agreement(u3, torch.tensor([1, 2])) == pytest.approx(1 / 2)


def test_a_gated_batch_leaves_the_policy_as_it_is():
    """learn(step=False), RL-KD's gate below its threshold: no policy step, the reward's mean still returned
    (held_out_effect: the mean effect with each teacher, [..., 0])."""
    agent = agent_of(RL())
    idx = torch.arange(8)
    agent.act(idx, torch.zeros(8, 2), torch.zeros(8, dtype=torch.long))
    before = [p.detach().clone() for p in agent.policy.parameters()]
    reward = torch.stack([torch.full((8, K), 2.0), torch.full((8, K), 1.0)], -1)
    assert agent.learn(reward, step=False) == pytest.approx(2.0)
    assert all(torch.equal(a, b) for a, b in zip(before, agent.policy.parameters()))
    agent.learn(reward + torch.randn(8, K, 2))  # a step that counts does move it
    assert not all(torch.equal(a, b) for a, b in zip(before, agent.policy.parameters()))
