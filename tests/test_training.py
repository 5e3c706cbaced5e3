"""Batching for training: training.training_batches."""
import numpy as np

from pipeline import training as T


def test_training_batches_group_lengths_within_windows_and_cover_every_row_once():
    # 130 rows of lengths 0..129 in a shuffled order; batches of 2: a window is 50 batches = 100 rows
    lengths = np.random.default_rng(0).permutation(130)
    enc = {"input_ids": [[1] * n for n in lengths]}
    rows = np.arange(130)
    parts = T.training_batches(rows, enc, 2, np.random.default_rng(1), by_length=True)
    assert sorted(np.concatenate(parts).tolist()) == list(range(130))  # each row once
    assert len(parts) == 65 and all(len(p) == 2 for p in parts)
    # rng.permutation(rows) with seed 1 decides the windows: the first 100 rows drawn, then the last 30
    order = np.random.default_rng(1).permutation(rows)
    window_of = {int(r): i // 100 for i, r in enumerate(order)}
    for p in parts:  # a batch never mixes windows, and holds two neighbours in its window's length order
        assert window_of[int(p[0])] == window_of[int(p[1])]
        w = window_of[int(p[0])]
        ranked = sorted((int(r) for r in order[w * 100:(w + 1) * 100]), key=lambda r: -lengths[r])
        assert abs(ranked.index(int(p[0])) - ranked.index(int(p[1]))) == 1
    # the batches are shuffled: not in the windows' descending length order
    firsts = [lengths[p[0]] for p in parts]
    assert firsts != sorted(firsts, reverse=True)
    # without grouping: the plain permutation cut in order
    plain = T.training_batches(rows, enc, 2, np.random.default_rng(1), by_length=False)
    assert [p.tolist() for p in plain] == [order[i:i + 2].tolist() for i in range(0, 130, 2)]
