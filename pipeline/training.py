"""Tokenising, batching, the optimiser and batched prediction, shared by the training stages (their loops:
pipeline/finetune.py and pipeline/distill.py, `fit`)."""

from __future__ import annotations

import math
import random
from functools import partial

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from . import compute
from .params_file import InputError

INPUT_KEYS = ("input_ids", "token_type_ids", "attention_mask")


def progress(iterable, desc: str, total: int | None = None):
    """A progress bar on a terminal; none in a log file, where the per-epoch lines say enough."""
    return tqdm(iterable, desc=desc, total=total, unit="batch", leave=False, disable=None)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def encode(tokenizer, df, max_length: int, token_types: bool | None = None) -> dict[str, list]:
    """Tokenise a split once, unpadded; batches are padded to their own longest example. `token_types`
    (models.uses_token_types) asks for segment ids, which ALBERT's and XLNet's tokenizers leave out by default
    although their models read them; None keeps the tokenizer's default."""
    pair = df.text_b.notna().any()
    enc = tokenizer(
        list(df.text_a),
        list(df.text_b.fillna("")) if pair else None,
        truncation=True,
        max_length=max_length,
        return_token_type_ids=token_types,
    )
    out = {k: enc[k] for k in INPUT_KEYS if k in enc}
    out["truncated"] = int(sum(len(ids) >= max_length for ids in out["input_ids"]))
    # how the tokenizer pads (XLNet: on the left, its own pad token type), for `collate`
    out.update(padding_side=tokenizer.padding_side, pad_token_type_id=tokenizer.pad_token_type_id)
    return out


def collate(enc: dict, idx, pad_id: int) -> dict[str, torch.Tensor]:
    """Pad rows `idx` of `enc` to their longest, on the tokenizer's side (right unless `encode` said left)."""
    width = max(len(enc["input_ids"][i]) for i in idx)
    left = enc.get("padding_side") == "left"
    fills = {"input_ids": pad_id, "token_type_ids": enc.get("pad_token_type_id", 0), "attention_mask": 0}
    batch = {}
    for key in INPUT_KEYS:
        if key in enc:
            rows = [enc[key][i] for i in idx]
            pads = [[fills[key]] * (width - len(row)) for row in rows]
            batch[key] = torch.tensor([pad + row if left else row + pad for row, pad in zip(rows, pads)])
    return batch


def collate_pieces(enc: dict, idx, pad_id: int, pieces: int) -> list[dict[str, torch.Tensor]]:
    """Rows `idx` (sorted by length, `by_length_within`) cut into `pieces` runs, each padded to its own longest."""
    return [collate(enc, part, pad_id) for part in np.array_split(np.asarray(idx), min(pieces, len(idx)))]


def length_argsort(enc: dict, idx) -> np.ndarray:
    """The order that sorts rows `idx` of `enc` shortest first (stable: ties keep their order)."""
    return np.argsort([len(enc["input_ids"][i]) for i in idx], kind="stable")


def by_length_within(enc: dict, idx) -> np.ndarray:
    """A batch's rows, shortest first: the same batch, so the same mean loss and gradient."""
    idx = np.asarray(idx)
    return idx[length_argsort(enc, idx)]


def batches(device: torch.device, enc: dict, chunks: list, pad_id: int, workers: int = 0, pieces: int = 1):
    """Yield (rows, padded batch on `device`) for each chunk of rows, in order; `workers` loader processes
    collate them, into pinned memory on a GPU. `pieces` > 1: a chunk's rows come back sorted by length and
    its batch is a list of that many pieces, each padded to its own longest (`forward` runs them)."""
    if pieces > 1:
        chunks = [by_length_within(enc, c) for c in chunks]
        collate_fn = partial(collate_pieces, enc, pad_id=pad_id, pieces=pieces)
    else:
        collate_fn = partial(collate, enc, pad_id=pad_id)
    # its own generator: a loader draws a seed when it starts, which must not move the global one (dropout)
    loader = DataLoader(
        chunks,
        batch_size=None,
        shuffle=False,
        collate_fn=collate_fn,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator(),
    )
    for idx, batch in zip(chunks, loader):
        if isinstance(batch, list):
            yield idx, [{k: v.to(device, non_blocking=True) for k, v in piece.items()} for piece in batch]
        else:
            yield idx, {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def forward(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's logits and pooled vectors on a padded batch, or on a batch's pieces (`batches(pieces=)`),
    concatenated in row order: one graph, so one backward pass gives the whole batch's gradient. On a CPU a
    shuffled batch of short texts is about half padding (docs/design.md); pieces cut most of it without
    changing which examples share a batch."""
    if isinstance(batch, dict):
        return model(**batch)
    outs = [model(**piece) for piece in batch]
    return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])


def length_order(enc: dict) -> np.ndarray:
    return np.argsort([len(ids) for ids in enc["input_ids"]], kind="stable")


def chunks(order, size: int):
    return [order[i : i + size] for i in range(0, len(order), size)]


def training_batches(rows, enc: dict, size: int, rng: np.random.Generator, by_length: bool) -> list:
    """One epoch's batches of `rows` in a random order. `by_length`: each run of 50 batches' worth of rows is
    sorted by length before it is cut, and the batches are then shuffled, so that a batch is padded to its
    own length rather than to the longest of a random draw (on short texts about half of the tokens
    otherwise). A batch then holds examples of one length from one window: where length tells inputs
    apart, each batch is one kind of input (docs/design.md, "An open question"). The same grouping as
    transformers' `group_by_length` (its LengthGroupedSampler), with batches rather than examples shuffled."""
    order = rng.permutation(rows)
    if not by_length:
        return chunks(order, size)
    lengths = np.array([len(enc["input_ids"][i]) for i in order])
    window = 50 * size
    parts = []
    for start in range(0, len(order), window):
        group = order[start : start + window]
        parts += chunks(group[np.argsort(-lengths[start : start + window], kind="stable")], size)
    return [parts[i] for i in rng.permutation(len(parts))]


def finite(loss: torch.Tensor, desc: str, step: int) -> float:
    """The loss's value; a run whose loss is NaN or infinite stops here, before that step's update, with
    nothing written (every stage writes its outputs only at its end)."""
    value = loss.item()
    if not math.isfinite(value):
        raise InputError(
            f"{desc}: the training loss is {value} at batch {step}; stopped, nothing written (lower "
            "the learning rate, or check the temperature and teacher weights in params.yaml)"
        )
    return value


def schedule_steps(epochs: int, rows: int, batch_size: int) -> int:
    """The optimiser steps of `epochs` epochs over `rows` training rows: what the learning-rate schedule spans."""
    return epochs * -(-rows // batch_size)


def optimiser(model, spec, rows: int):
    """AdamW and a linear schedule with warm-up over `spec.epochs` epochs of `rows` training rows."""
    steps = schedule_steps(spec.epochs, rows, spec.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    return optimizer, get_linear_schedule_with_warmup(optimizer, int(spec.warmup_ratio * steps), steps)


@torch.inference_mode()
def predict(
    model, enc, batch_size: int, pad_id: int, desc: str = "predict", acc=None, workers: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and pooled vectors in the split's order, on the CPU in fp32, computed in length-sorted batches
    on `acc`'s device under its autocast (the CPU without one)."""
    model.eval()
    order = length_order(enc)
    parts = chunks(order, batch_size)
    device = compute.device(acc)
    logits, pooled = [None] * len(order), [None] * len(order)
    for idx, batch in progress(batches(device, enc, parts, pad_id, workers), desc, total=len(parts)):
        with compute.autocast(acc):
            lo, po = model(**batch)
        lo, po = lo.float().cpu(), po.float().cpu()
        for j, i in enumerate(idx):
            logits[i], pooled[i] = lo[j], po[j]
    return torch.stack(logits), torch.stack(pooled)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(-1) == labels).float().mean())
