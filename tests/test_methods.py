import numpy as np
import pytest
import torch

from pipeline import methods

TEACHERS = ["a", "b", "c"]


@pytest.fixture
def cache():
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 1, 0])
    # teacher a is right everywhere, b on three of four (most confident on the last), c never
    logits = torch.tensor([
        [[3.0, 0.0], [2.0, 0.0], [0.0, 3.0]],
        [[0.0, 3.0], [2.0, 0.0], [3.0, 0.0]],
        [[0.0, 2.0], [0.0, 1.0], [1.0, 0.0]],
        [[2.0, 0.0], [3.0, 0.0], [0.0, 1.0]],
    ])
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 2), labels.repeat_interleave(3),
                                           reduction="none").reshape(4, 3)
    return {"logits": logits, "ce": ce}, labels


def build(name, cache, fixed=None, seed=0):
    split, labels = cache
    return methods.build(name, TEACHERS, split, split, labels, fixed, np.random.default_rng(seed))


IDX = np.array([0, 1, 2, 3])


def test_static_methods(cache):
    assert torch.equal(build("ce", cache)[0](IDX), torch.zeros(4, 3))
    assert torch.equal(build("single_b", cache)[0](IDX), torch.tensor([[0.0, 1.0, 0.0]] * 4))
    assert torch.allclose(build("u_ensemble", cache)[0](IDX), torch.full((4, 3), 1 / 3))


def test_w_ensemble_is_proportional_to_dev_accuracy_or_given(cache):
    _, static = build("w_ensemble", cache)
    assert torch.allclose(static, torch.tensor([1.0, 0.75, 0.0]) / 1.75)
    _, static = build("w_ensemble", cache, fixed={"a": 1.0, "b": 3.0, "c": 0.0})
    assert torch.allclose(static, torch.tensor([0.25, 0.75, 0.0]))


def test_lr_ensemble_prefers_the_reliable_teacher(cache):
    weigh, static = build("lr_ensemble", cache)
    assert static.sum().item() == pytest.approx(1.0)
    assert static[0] > static[1] and static[2] == 0
    assert torch.allclose(weigh(IDX), static.expand(4, -1))


def test_best_single_picks_the_most_confident_correct_teacher(cache):
    w = build("best_single", cache)[0](IDX)
    assert torch.equal(w.argmax(-1), torch.tensor([0, 0, 0, 1]))
    assert torch.equal(w.sum(-1), torch.ones(4))


def test_ca_mkd_is_a_softmax_over_negative_ce(cache):
    split, _ = cache
    w = build("ca_mkd", cache)[0](IDX)
    assert torch.allclose(w, (-split["ce"]).softmax(-1))
    assert (w[:, 0] > w[:, 2]).all()


def test_rand_single_draws_one_teacher_per_batch_reproducibly(cache):
    draws = [build("rand_single", cache, seed=5)[0] for _ in range(2)]
    first = [draws[0](IDX) for _ in range(20)]
    second = [draws[1](IDX) for _ in range(20)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    for w in first:
        assert (w == w[0]).all() and w[0].sum() == 1
    assert len({int(w[0].argmax()) for w in first}) == 3


def test_unknown_method(cache):
    with pytest.raises(ValueError, match="unknown method"):
        build("magic", cache)
