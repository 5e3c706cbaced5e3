"""Batching for training: training.training_batches, batches in length-sorted pieces."""

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertModel

from pipeline import training
from pipeline.models import Classifier


def test_training_batches_group_lengths_within_windows_and_cover_every_row_once():
    # 130 rows of lengths 0..129 in a shuffled order; batches of 2: a window is 50 batches = 100 rows
    lengths = np.random.default_rng(0).permutation(130)
    enc = {"input_ids": [[1] * n for n in lengths]}
    rows = np.arange(130)
    parts = training.training_batches(rows, enc, 2, np.random.default_rng(1), by_length=True)
    assert sorted(np.concatenate(parts).tolist()) == list(range(130))  # each row once
    assert len(parts) == 65 and all(len(p) == 2 for p in parts)
    # rng.permutation(rows) with seed 1 decides the windows: the first 100 rows drawn, then the last 30
    order = np.random.default_rng(1).permutation(rows)
    window_of = {int(r): i // 100 for i, r in enumerate(order)}
    for p in parts:  # a batch never mixes windows, and holds two neighbours in its window's length order
        assert window_of[int(p[0])] == window_of[int(p[1])]
        w = window_of[int(p[0])]
        ranked = sorted((int(r) for r in order[w * 100 : (w + 1) * 100]), key=lambda r: -lengths[r])
        assert abs(ranked.index(int(p[0])) - ranked.index(int(p[1]))) == 1
    # the batches are shuffled: not in the windows' descending length order
    firsts = [lengths[p[0]] for p in parts]
    assert firsts != sorted(firsts, reverse=True)
    # without grouping: the plain permutation cut in order
    plain = training.training_batches(rows, enc, 2, np.random.default_rng(1), by_length=False)
    assert [p.tolist() for p in plain] == [order[i : i + 2].tolist() for i in range(0, 130, 2)]


def test_pieces_sort_a_batch_by_length_and_pad_each_piece_to_its_own_longest():
    enc = {"input_ids": [[5] * 4, [6] * 2, [7] * 9, [8] * 3], "attention_mask": [[1] * n for n in (4, 2, 9, 3)]}
    [(idx, batch)] = list(training.batches(torch.device("cpu"), enc, [np.array([0, 1, 2, 3])], pad_id=0, pieces=2))
    assert idx.tolist() == [1, 3, 0, 2]  # lengths 2, 3, 4, 9
    assert [b["input_ids"].shape for b in batch] == [(2, 3), (2, 9)]  # not 4 rows x 9
    assert batch[0]["input_ids"].tolist() == [[6, 6, 0], [8, 8, 8]]
    assert batch[1]["attention_mask"].tolist() == [[1] * 4 + [0] * 5, [1] * 9]
    [(same, whole)] = list(training.batches(torch.device("cpu"), enc, [np.array([0, 1, 2, 3])], pad_id=0))
    assert same.tolist() == [0, 1, 2, 3] and whole["input_ids"].shape == (4, 9)


def test_pieces_give_the_whole_batchs_outputs_and_gradient():
    """A BERT in eval mode on one padded batch, and on the same rows in 3 pieces: outputs and the gradient
    of the mean loss agree to float rounding (padding is masked out)."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    model = Classifier(BertModel(config, add_pooling_layer=False), 2).eval()
    lengths = [7, 3, 12, 5, 9, 4]
    rng = np.random.default_rng(0)
    enc = {
        "input_ids": [rng.integers(5, 50, n).tolist() for n in lengths],
        "attention_mask": [[1] * n for n in lengths],
    }
    labels = torch.tensor([0, 1, 1, 0, 1, 0])
    grads, outs = [], []
    for pieces in (1, 3):
        [(idx, batch)] = list(training.batches(torch.device("cpu"), enc, [np.arange(6)], pad_id=0, pieces=pieces))
        logits, _ = training.forward(model, batch)
        model.zero_grad()
        F.cross_entropy(logits, labels[idx]).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
        outs.append(logits[np.argsort(idx)])  # back to row order
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    assert torch.allclose(grads[0], grads[1], atol=1e-5)
