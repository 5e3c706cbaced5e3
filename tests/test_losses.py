"""The student loss against values computed by hand."""

import math

import pytest
import torch

from pipeline.losses import soft_cross_entropy, student_loss


def softmax(xs):
    e = [math.exp(x) for x in xs]
    return [v / sum(e) for v in e]


def test_soft_cross_entropy_by_hand():
    s, t, temp = [1.0, -1.0], [0.5, 2.0], 2.0
    ps, pt = softmax([x / temp for x in s]), softmax([x / temp for x in t])
    expected = -sum(a * math.log(b) for a, b in zip(pt, ps))
    got = soft_cross_entropy(torch.tensor([s]), torch.tensor([[t]]), temp)
    assert got.shape == (1, 1)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_student_loss_by_hand():
    # one instance, two classes, two teachers weighted 0.25 / 0.75, alpha 0.4, T 2, with and without T^2
    s, t1, t2, y, temp, alpha = [0.3, 1.2], [2.0, -1.0], [-0.5, 0.5], 1, 2.0, 0.4
    ce = -math.log(softmax(s)[y])
    ps = softmax([x / temp for x in s])
    kd = [-sum(a * math.log(b) for a, b in zip(softmax([x / temp for x in t]), ps)) for t in (t1, t2)]
    mix = 0.25 * kd[0] + 0.75 * kd[1]
    args = (torch.tensor([s]), torch.tensor([y]), torch.tensor([[t1, t2]]), torch.tensor([[0.25, 0.75]]), alpha, temp)
    assert student_loss(*args, t2_scaling=False).item() == pytest.approx((1 - alpha) * ce + alpha * mix, rel=1e-6)
    assert student_loss(*args, t2_scaling=True).item() == pytest.approx((1 - alpha) * ce + alpha * 4 * mix, rel=1e-6)


def test_no_teacher_means_cross_entropy_alone():
    s = torch.tensor([[0.3, 1.2], [1.0, 0.0]])
    y = torch.tensor([1, 1])
    teachers = torch.tensor([[[5.0, -5.0]], [[5.0, -5.0]]])
    w = torch.tensor([[0.0], [1.0]])
    per = student_loss(s, y, teachers, w, 0.7, 3.0, True, reduction="none")
    ce = torch.nn.functional.cross_entropy(s, y, reduction="none")
    assert per[0].item() == pytest.approx(ce[0].item())
    assert per[1].item() > ce[1].item()  # the teacher disagrees with the gold label: KD adds loss


def test_alpha_zero_ignores_teachers():
    s, y = torch.tensor([[0.3, 1.2]]), torch.tensor([0])
    got = student_loss(s, y, torch.randn(1, 3, 2), torch.full((1, 3), 1 / 3), 0.0, 4.0, True)
    assert got.item() == pytest.approx(torch.nn.functional.cross_entropy(s, y).item())


def test_gradient_flows_to_student_only():
    s = torch.tensor([[0.3, 1.2]], requires_grad=True)
    t = torch.tensor([[[2.0, -1.0]]], requires_grad=True)
    w = torch.ones(1, 1, requires_grad=True)  # as a learning method's weights could be
    student_loss(s, torch.tensor([1]), t, w, 0.5, 2.0, True).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None and w.grad is None
