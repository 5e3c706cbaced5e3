import math

import numpy as np
import pytest
import torch

from pipeline import methods
from pipeline import schema as P
from pipeline.methods import mtkd_rl
from pipeline.methods.ae_kd import min_norm_weights
from pipeline.methods.weighting import Run

TEACHERS = ["a", "b", "c"]


def build_method(name, teachers, cache, gold, cfg, rng, seed=0, **settings):
    """A method's weighting as a run builds it (weighting.Run), with only what weights need."""
    method = methods.load(name)
    run = Run(
        method=name, teachers=teachers, settings=method.settings(**settings), cfg=cfg, seed=seed, rng=rng,
        model=None, enc={}, pad=0, gold=gold, cache=cache, teacher_logits=None, rows=np.arange(0),
        held_out=np.arange(0), optimizer=None, scheduler=None, weight_sum=None, dev_accuracy=None,
    )  # fmt: skip
    return method.weighting(run)


@pytest.fixture
def cache():
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 1, 0])
    # teacher a is right everywhere, b on three of four (most confident on the last), c never
    logits = torch.tensor(
        [
            [[3.0, 0.0], [2.0, 0.0], [0.0, 3.0]],
            [[0.0, 3.0], [2.0, 0.0], [3.0, 0.0]],
            [[0.0, 2.0], [0.0, 1.0], [1.0, 0.0]],
            [[2.0, 0.0], [3.0, 0.0], [0.0, 1.0]],
        ]
    )
    ce = torch.nn.functional.cross_entropy(
        logits.reshape(-1, 2), labels.repeat_interleave(3), reduction="none"
    ).reshape(4, 3)
    return {"logits": logits, "ce": ce}, labels


def build(name, cache, fixed=None, seed=0):
    split, labels = cache
    return build_method(
        name,
        TEACHERS,
        {"train": split, "dev": split},
        {"train": labels, "dev": labels},
        P.Distill(),
        np.random.default_rng(seed),
        **({"fixed_weights": fixed} if fixed is not None else {}),
    )


IDX = np.array([0, 1, 2, 3])


def test_static_methods(cache):
    assert torch.equal(build("ce", cache).weigh(IDX, None), torch.zeros(4, 3))
    assert torch.equal(build("single_b", cache).weigh(IDX, None), torch.tensor([[0.0, 1.0, 0.0]] * 4))
    assert torch.allclose(build("u_ensemble", cache).weigh(IDX, None), torch.full((4, 3), 1 / 3))


def test_w_ensemble_is_proportional_to_dev_accuracy_or_given(cache):
    static = build("w_ensemble", cache).static
    assert torch.allclose(static, torch.tensor([1.0, 0.75, 0.0]) / 1.75)
    static = build("w_ensemble", cache, fixed={"a": 1.0, "b": 3.0, "c": 0.0}).static
    assert torch.allclose(static, torch.tensor([0.25, 0.75, 0.0]))


@pytest.mark.slow
def test_lr_ensemble_prefers_the_reliable_teacher(cache):
    weighting = build("lr_ensemble", cache)
    weigh, static = weighting.weigh, weighting.static
    assert static.sum().item() == pytest.approx(1.0)
    assert static[0] > static[1] and static[2] == 0
    assert torch.allclose(weigh(IDX, None), static.expand(4, -1))


def test_best_single_picks_the_most_confident_correct_teacher(cache):
    w = build("best_single", cache).weigh(IDX, None)
    assert torch.equal(w.argmax(-1), torch.tensor([0, 0, 0, 1]))
    assert torch.equal(w.sum(-1), torch.ones(4))


def test_ca_mkd_follows_the_published_weights():
    # worked by hand from w_k = (1 - e^CE_k / sum_j e^CE_j) / (K - 1): e^0.1, e^1, e^2 = 1.10517, 2.71828,
    # 7.38906 (sum 11.21251); softmax 0.09857, 0.24243, 0.65900; (1 - softmax) / 2 = 0.45072, 0.37879, 0.17050
    weigh = build_method(
        "ca_mkd", TEACHERS, {"train": {"ce": torch.tensor([[0.1, 1.0, 2.0]])}}, {}, P.Distill(), None
    ).weigh
    assert torch.allclose(weigh(np.array([0]), None), torch.tensor([[0.45072, 0.37879, 0.17050]]), atol=1e-5)


def test_ca_mkd_with_two_teachers_is_a_softmax_over_negative_ce():
    # K = 2: 1 - e^a / (e^a + e^b) = e^-a / (e^-a + e^-b); CE [0, ln 3] -> [3/4, 1/4]
    weigh = build_method(
        "ca_mkd", ["a", "b"], {"train": {"ce": torch.tensor([[0.0, math.log(3)]])}}, {}, P.Distill(), None
    ).weigh
    assert torch.allclose(weigh(np.array([0]), None), torch.tensor([[0.75, 0.25]]))


@pytest.mark.parametrize(
    "g, cap, expected",
    [
        # two teachers: a_1 = clip(((g2 - g1) . g2) / |g1 - g2|^2, 1 - C, C) = clip(4 / 5, ...)
        ([[1, 0], [0, 2]], 1.0, [0.8, 0.2]),
        ([[1, 0], [0, 2]], 0.6, [0.6, 0.4]),
        # g3 = (2, 2): with a_3 = t, a_1 = a_2 = (1 - t) / 2 the norm is (1 + 3t)^2 / 2, least at t = 0; under
        # C = 0.4, (1 - t) / 2 <= 0.4 forces t = 0.2
        ([[1, 0], [0, 1], [2, 2]], 1.0, [0.5, 0.5, 0.0]),
        ([[1, 0], [0, 1], [2, 2]], 0.4, [0.4, 0.4, 0.2]),
        # a third, long gradient takes nothing; the cap moves weight from the short g1 to g2 only
        ([[1, 0], [0, 2], [3, 3]], 0.6, [0.6, 0.4, 0.0]),
        # the origin is in the hull: a_1 - a_3 = a_2 - a_3 = 0
        ([[1, 0], [0, 1], [-1, -1]], 1.0, [1 / 3, 1 / 3, 1 / 3]),
    ],
)
def test_ae_kd_min_norm_weights_worked_by_hand(g, cap, expected):
    assert torch.allclose(min_norm_weights(torch.tensor(g, dtype=torch.float), cap), torch.tensor(expected), atol=1e-5)


def test_ae_kd_weighs_the_whole_batch_of_logits():
    # T = 2, student p_s = (0.5, 0.5) on three instances; teacher logits T ln p give these p, so g = p_s - p:
    #   instance 1: a (0.9, 0.1) -> (-0.4, 0.4);  b (0.7, 0.3) -> (-0.2, 0.2)
    #   instance 2: a (0.5, 0.5) -> (0, 0);       b (0.2, 0.8) -> (0.3, -0.3)
    #   instance 3: a (0.3, 0.7) -> (0.2, -0.2);  b (0.5, 0.5) -> (0, 0)
    # over the batch: |g_a|^2 = 0.40, |g_b|^2 = 0.26, g_a . g_b = 0.16, so
    # a_a = (|g_b|^2 - g_a . g_b) / |g_a - g_b|^2 = 0.10 / 0.34 = 5/17. (The authors' batch means,
    # (-0.0667, 0.0667) and (0.0333, -0.0333), would give 1/3.)
    p = torch.tensor([[[0.9, 0.1], [0.7, 0.3]], [[0.5, 0.5], [0.2, 0.8]], [[0.3, 0.7], [0.5, 0.5]]])
    for cap, a in ((1.0, 5 / 17), (0.6, 0.4)):
        weigh = build_method(
            "ae_kd",
            ["a", "b"],
            {"train": {"logits": 2 * p.log()}},
            {},
            P.Distill(temperature=2.0),
            None,
            tolerance=cap,
        ).weigh
        w = weigh(np.array([0, 1, 2]), torch.zeros(3, 2))
        assert torch.allclose(w, torch.tensor([[a, 1 - a]] * 3), atol=1e-5)


def tiny_mtkd_rl(labels):
    """Two identical rows, two teachers: a's logits (ln 9, 0), b's (0, 0); CE [0, ln 3]; pooled of width 1."""
    logits = torch.tensor([[[math.log(9), 0.0], [0.0, 0.0]]] * 2)
    train = {"logits": logits, "ce": torch.tensor([[0.0, math.log(3)]] * 2), "pooled": [torch.ones(2, 1)] * 2}
    cfg = P.Distill(temperature=1.0, alpha=0.5)
    weigher = build_method(
        "mtkd_rl", ["a", "b"], {"train": train}, {"train": torch.tensor(labels)}, cfg, np.random.default_rng(0)
    )
    agent = weigher.agent
    with torch.no_grad():  # the agent's own softmax is its head's bias: softmax(ln 3, 0) = (0.75, 0.25)
        agent.stem.weight.zero_()
        agent.head.weight.zero_()
        agent.head.bias.copy_(torch.tensor([math.log(3), 0.0]))
    return weigher


def test_mtkd_rl_weights_worked_by_hand():
    weighting = tiny_mtkd_rl([0, 1])
    weighting.epoch = 2  # past the warm-up
    student = torch.tensor([[math.log(9), 0.0]] * 2)  # p_s = (0.9, 0.1), teacher a's distribution
    # confidence (1 - softmax(CE)) / (K - 1) = (0.75, 0.25); KL(a || s) = 0, KL(b || s) = 0.5 ln(5/9) + 0.5 ln 5
    # = ln(5/3), so the divergence softmax is (1, 5/3) / (8/3) = (3/8, 5/8); mixed in equal proportions
    # ((0.75, 0.25) + (0.75, 0.25) + (0.375, 0.625)) / 3 = (0.625, 0.375)
    w = weighting.weigh(np.array([0, 1]), student)
    assert torch.allclose(w, torch.tensor([[0.625, 0.375]] * 2), atol=1e-6)
    # rewards: the rows differ in the student's CE only (-ln 0.9 against -ln 0.1), so standardised over
    # the batch they are +-1/sqrt 2, clipped to (0.70711, 0). The agent's loss -mean_ik r_i log w_ik has
    # d/d bias_a = -(0.70711 / 4) sum_k (1 / w_k) (1/3) a_k (delta_ka - a_a) = -(0.70711 / 12) a_a a_b (1/w_a - 1/w_b)
    # = -(0.70711 / 12) * 0.1875 * (1.6 - 2.6667) = 0.0117851; one SGD step at lr 0.1 moves the bias by -0.00117851
    stats = weighting.end_epoch()
    assert stats["reward_mean"] == pytest.approx(0.70711 / 2, abs=1e-5)
    bias = weighting.agent.head.bias.detach()
    assert torch.allclose(bias, torch.tensor([math.log(3) - 0.00117851, 0.00117851]), atol=1e-7)


def test_mtkd_rl_warms_up_with_equal_weights_then_its_agent_weighs(monkeypatch):
    weighting, student = tiny_mtkd_rl([0, 1]), torch.tensor([[math.log(9), 0.0]] * 2)
    assert torch.equal(weighting.weigh(np.array([0, 1]), student), torch.full((2, 2), 0.5))
    assert weighting.end_epoch()["agent_loss"] > 0 and weighting.buffer == []
    assert (weighting.weigh(np.array([0, 1]), student)[:, 0] > 0.55).all()  # (about 0.625, as above)
    weighting.end_epoch()
    before = [p.detach().clone() for p in weighting.agent.parameters()]
    assert weighting.end_epoch()["agent_loss"] == 0  # nothing gathered since: no step
    assert all(torch.equal(a, b) for a, b in zip(before, weighting.agent.parameters()))
    # within an epoch the agent learns every AGENT_STEP batches, from the batches since it last learned
    monkeypatch.setattr(mtkd_rl, "AGENT_STEP", 2)
    for _ in range(3):
        weighting.weigh(np.array([0, 1]), student)
    assert len(weighting.buffer) == 1 and len(weighting.losses) == 2


def test_mtkd_rl_rewards_standardised_and_clipped():
    # alpha = 1, T^2 scaling at T = 1: the loss is sum_k w_k KL_k = 1, 1.5, 3.5 (mean 2, sd sqrt(1.75) = 1.32288);
    # rewards -1, -1.5, -3.5 standardise to 0.75593, 0.37796, -1.13389 and clip to [0, 1]
    kl = torch.tensor([[1.0, 0.0], [1.5, 0.0], [3.5, 0.0]])
    w = torch.tensor([[1.0, 0.0]] * 3)
    r = mtkd_rl.rewards(
        torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), kl, w, P.Distill(alpha=1.0, temperature=1.0)
    )
    assert torch.allclose(r, torch.tensor([0.75593, 0.37796, 0.0]), atol=1e-5)
    # without T^2 scaling the KL (given scaled by T^2 = 4) is divided by it again: the same losses
    unscaled = P.Distill(alpha=1.0, temperature=2.0, t2_scaling=False)
    assert torch.allclose(mtkd_rl.rewards(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), 4 * kl, w, unscaled), r)
    assert torch.equal(
        mtkd_rl.rewards(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), kl[:1], w[:1], P.Distill()), torch.zeros(1)
    )  # one instance: nothing to standardise against


def test_kl_divergence_worked_by_hand():
    # p_s = (0.5, 0.5), p_t = (0.9, 0.1): 0.9 ln 1.8 + 0.1 ln 0.2 = 0.368064; at T = 2 the teacher's logits
    # (2 ln 9, 0) give the same distributions and the value is scaled by T^2 = 4
    teacher = torch.tensor([[[math.log(9), 0.0]]])
    assert mtkd_rl.kl_divergences(torch.zeros(1, 2), teacher, 1.0).item() == pytest.approx(0.368064, abs=1e-6)
    assert mtkd_rl.kl_divergences(torch.zeros(1, 2), 2 * teacher, 2.0).item() == pytest.approx(4 * 0.368064, abs=1e-5)


def test_rand_single_draws_one_teacher_per_batch_reproducibly(cache):
    draws = [build("rand_single", cache, seed=5).weigh for _ in range(2)]
    first = [draws[0](IDX, None) for _ in range(20)]
    second = [draws[1](IDX, None) for _ in range(20)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    for w in first:
        assert (w == w[0]).all() and w[0].sum() == 1
    assert len({int(w[0].argmax()) for w in first}) == 3


def test_unknown_method(tmp_path):
    from tests.conftest import tiny_params, write_params

    path = write_params(tmp_path, tiny_params(tmp_path))
    with pytest.raises(P.InputError, match="unknown method 'magic'"):
        methods.check(P.load(path), ["magic"], path)
