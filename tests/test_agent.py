import numpy as np
import torch

from pipeline import params as P
from pipeline.agent import Agent, Policy

N, K = 64, 2


def cache():
    torch.manual_seed(0)
    ce = torch.stack([torch.rand(N) * 0.1, torch.linspace(0, 3, N)], 1)  # teacher 1 is wrong on the later rows
    return {"ce": ce, "probs": torch.rand(N, K, 2).softmax(-1), "pooled": [torch.randn(N, 4), torch.randn(N, 6)]}


def test_policy_starts_indifferent_and_pads_narrow_states():
    policy = Policy([3, 5], shared=True)
    probs = policy([torch.randn(4, 3), torch.randn(4, 5)])
    assert probs.shape == (4, 2) and torch.allclose(probs, torch.full((4, 2), 0.5))


def test_hard_weights_normalise_the_selected_teachers():
    agent = Agent(P.RL(), cache(), ["a", "b"], num_labels=2, seed=0)
    idx = np.arange(32)
    w = agent.act(idx, torch.randn(32, 2), torch.zeros(32, dtype=torch.long))
    actions = agent.last[1]
    assert torch.equal(w > 0, actions > 0)
    sums = w.sum(-1)
    assert torch.allclose(sums[actions.sum(-1) > 0], torch.ones(int((actions.sum(-1) > 0).sum())))


def test_per_teacher_reward_teaches_where_a_teacher_hurts():
    c = cache()
    agent = Agent(P.RL(state=["ce"], policy="per_teacher", policy_lr=0.1), c, ["a", "b"], 2, seed=0)
    idx = np.arange(N)
    for _ in range(150):
        agent.act(idx, torch.zeros(N, 2), torch.zeros(N, dtype=torch.long))
        agent.learn(-c["ce"] + 1.0)  # a teacher with a high CE on an instance does harm there
    p = agent.probabilities(idx, torch.zeros(N, 2), torch.zeros(N, dtype=torch.long))
    assert p[: N // 4, 1].mean() - p[-N // 4:, 1].mean() > 0.3


def test_same_seed_same_selections():
    picks = []
    for _ in range(2):
        agent = Agent(P.RL(), cache(), ["a", "b"], 2, seed=7)
        agent.act(np.arange(N), torch.zeros(N, 2), torch.zeros(N, dtype=torch.long))
        picks.append(agent.last[1])
    assert torch.equal(*picks)
