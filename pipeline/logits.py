"""The teacher logit cache: one safetensors file per split, rows in the split's order.

Only train and dev are cached: distillation reads those, and the test set belongs to the students (a
teacher's test accuracy is the finetune stage's). On the embedded default the test sets are large, for
statistical power, and MPNet reads about 40 examples a second on two cores.

Each file holds logits, probabilities, the pooled vector (the RL agent's state uses it) and the
cross-entropy against the gold label, with the example ids, the split's digest and the tensors' own
digest in its metadata, so a cache can never be silently paired with other data or read damaged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from .params_file import InputError
from .splits import split_hash

FIELDS = ("logits", "probs", "pooled", "ce")
CACHED_SPLITS = ("train", "dev")  # the teachers' outputs are cached for these; test is the students'


def tensors(logits: torch.Tensor, pooled: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "logits": logits,
        "probs": logits.softmax(-1),
        "pooled": pooled,
        "ce": F.cross_entropy(logits, labels, reduction="none"),
    }


def digest(values: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in FIELDS:
        h.update(values[k].contiguous().numpy().tobytes())
    return h.hexdigest()


def save(path: Path, split: pd.DataFrame, values: dict[str, torch.Tensor], **meta) -> None:
    metadata = {
        "ids": list(split.id),
        "split_sha256": split_hash(split),
        "sha256": digest(values),
        **{k: str(v) for k, v in meta.items()},
    }
    # one metadata entry: safetensors writes several in a random order, and the same cache must be the same bytes
    save_file(
        {k: values[k].contiguous() for k in FIELDS}, str(path), metadata={"rlkd": json.dumps(metadata, sort_keys=True)}
    )


def load(path: str | Path, split: pd.DataFrame, **names) -> dict[str, torch.Tensor]:
    """Load a cached split, refusing it unless it was computed on exactly `split` by the teacher and task in
    `names` (task=..., teacher=...; the cache stage writes both into the file's metadata)."""
    path = Path(path)
    rerun = f"rerun `dvc repro cache@{path.parent.parent.name}-{path.parent.name}`"
    if not path.is_file():
        raise InputError(f"{path}: teacher cache not found; {rerun}")
    try:
        with safe_open(str(path), "pt") as f:
            stored = f.metadata() or {}
        if "rlkd" not in stored:
            raise InputError(f"{path}: written by an older cache stage (no rlkd metadata); {rerun}")
        meta = json.loads(stored["rlkd"])
        values = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(f"{path}: unreadable teacher cache ({err}); {rerun}") from None
    for key, expected in names.items():
        if meta.get(key) != expected:
            raise InputError(f"{path}: the cache of {key} {meta.get(key)!r}, not {expected!r}; {rerun}")
    if meta.get("split_sha256") != split_hash(split) or meta.get("ids") != list(split.id):
        raise InputError(
            f"{path}: computed on other data (example ids or split digest differ from the prepared split); {rerun}"
        )
    n = len(split)
    bad = [k for k in FIELDS if k not in values or values[k].shape[0] != n]
    if bad:
        raise InputError(f"{path}: fields {bad} missing or not {n} rows long; {rerun}")
    if meta.get("sha256") != digest(values):
        raise InputError(f"{path}: corrupted (the sha256 of its tensors differs from the one saved with them); {rerun}")
    return values
