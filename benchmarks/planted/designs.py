"""The planted benchmark's designs: tiny review tasks, and teachers whose logit caches are planted with known
errors (which teacher is wrong on which training instance). benchmarks/planted/__init__.py describes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline import logits, splits

DESIGNS = ("coin", "specialists")  # the agent's targets (tests/test_rl_kd.py holds it to them)


# a design that misleads the gold-label heuristics (best_single, ca_mkd): run with --design noisy; no target
MISLEADING = ("noisy",)


NOISE = 0.3  # noisy: the share of training labels flipped (dev and test stay clean)


TEACHERS = {
    "coin": ["good", "bad_a", "bad_b"],
    "specialists": ["spec_0", "spec_1", "spec_2"],
    "noisy": ["good", "echo_a", "echo_b"],
}


# the tiny random student of the designs (and of the tests' tiny profile): a student that learns in seconds
TINY_STUDENT = {
    "source": "random",
    "arch": "bert",
    "vocab_size": 200,
    "max_length": 24,
    "config": {
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "max_position_embeddings": 64,
    },
}
TASK = "reviews"
# its section in params.yaml: sentiment_frame's columns, written to user_data/reviews.csv
REVIEWS_TASK = {
    "source": "file",
    "path": "user_data/reviews.csv",
    "text_a": "review",
    "label": "sentiment",
    "labels": ["neg", "pos"],
    "group": "movie",
    "dev_fraction": 0.2,
    "test_fraction": 0.2,
}


def tiny_teacher(hidden: int = 32, layers: int = 2, **overrides) -> dict:
    """A tiny random BERT teacher (of the designs and of the tests' tiny profile): `hidden` wide, `layers` deep;
    the longest text of the designs, 12 words and [CLS], [SEP] (an index of 3 digits is at most 3 word pieces),
    fits its 24 positions."""
    return {
        "source": "random",
        "arch": "bert",
        "vocab_size": 300,
        "epochs": 2,
        "max_length": 24,
        "batch_size": 16,
        "lr": 2e-3,
        "warmup_ratio": 0.0,
        "config": {
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": 2,
            "intermediate_size": 2 * hidden,
            "max_position_embeddings": 64,
        },
    } | overrides


POSITIVE = "good great superb lovely moving brilliant fun charming".split()


NEGATIVE = "bad dull awful boring weak tedious messy bland".split()


FILLER = "the film plot actor scene story movie script with a and of".split()


KIND_FILLERS = (2, 6, 10)  # specialists: filler words per kind; a text has 2 more words (sentiment, index)


def sentiment_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Short 'reviews' whose label is carried by one sentiment word among 5 filler words (coin design)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = int(rng.integers(2))
        words = list(rng.choice(FILLER, size=5)) + [rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        rows.append({"review": " ".join(words) + f" {i}", "sentiment": ["neg", "pos"][label], "movie": f"m{i % 40}"})
    return pd.DataFrame(rows)


def kinds_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Reviews of three kinds, told apart by length: 2, 6 or 10 filler words, one sentiment word, the index."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label, kind = int(rng.integers(2)), int(rng.integers(3))
        words = list(rng.choice(FILLER, size=KIND_FILLERS[kind])) + [rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        rows.append({"review": " ".join(words) + f" {i}", "sentiment": ["neg", "pos"][label], "movie": f"m{i % 40}"})
    return pd.DataFrame(rows)


def kind_of(texts: pd.Series) -> np.ndarray:
    """The kind of a specialists review, read back from its number of words."""
    words = texts.str.split().str.len().to_numpy()
    by_words = {f + 2: k for k, f in enumerate(KIND_FILLERS)}
    return np.array([by_words[w] for w in words])


def add_label_noise(root: Path) -> None:
    """noisy: flip NOISE of the training examples' labels in the task's file (dev and test stay clean); the true
    label stays in a column of its own. The split is by movie, so a second `prepare` puts every example in the
    split it was in."""
    path = root / "user_data/reviews.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    train_movies = set(splits.load_split(root / "data" / TASK, "train").group)
    rng = np.random.default_rng(0)
    flip = frame.movie.isin(train_movies).to_numpy() & (rng.random(len(frame)) < NOISE)
    frame["true_sentiment"] = frame.sentiment
    frame.loc[flip, "sentiment"] = frame.sentiment[flip].map({"neg": "pos", "pos": "neg"})
    frame.to_csv(path, index=False)


def _save(root: Path, teacher: str, split: str, df: pd.DataFrame, lg: torch.Tensor, pooled, y) -> None:
    path = root / "logits" / TASK / teacher / f"{split}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    logits.save(path, df, logits.tensors(lg, pooled, y), task=TASK, teacher=teacher)


def _right(y: torch.Tensor, rng) -> torch.Tensor:
    """Confident, right logits: +2 on the gold label, -2 on the other, plus N(0, 0.3) noise."""
    n = len(y)
    return torch.nn.functional.one_hot(y, 2).float() * 4 - 2 + torch.tensor(rng.normal(0, 0.3, (n, 2))).float()


def plant(design: str, root: Path, oracle: bool = False) -> dict[str, dict[str, bool]]:
    """Write the teachers' caches for the prepared task in root; return, per corrupted teacher, id -> corrupted.

    `oracle`: write instead a single teacher `oracle`, right everywhere (the right teacher per instance)."""
    rng = np.random.default_rng(0)
    corrupted = {}
    for split in splits.SPLITS:
        df = splits.load_split(root / "data" / TASK, split)
        y = torch.tensor(df.label.to_numpy())
        n = len(df)
        if oracle:
            _save(root, "oracle", split, df, _right(y, rng), torch.tensor(rng.normal(0, 1, (n, 8))).float(), y)
            continue
        if design == "coin":  # the original planted-teacher test's draws, in the same order
            right = _right(y, rng)
            flip = torch.tensor(rng.random(n) < 0.5) if split == "train" else torch.zeros(n, dtype=torch.bool)
            wrong = torch.where(flip[:, None], right.flip(-1), right)
            for name, lg in (("good", right), ("bad_a", wrong), ("bad_b", wrong)):
                _save(root, name, split, df, lg, torch.tensor(rng.normal(0, 1, (n, 8))).float(), y)
            if split == "train":
                corrupted = {t: dict(zip(df.id, flip.numpy().tolist())) for t in ("bad_a", "bad_b")}
        elif design == "noisy":  # `good` knows the true label; the echoes learnt the flipped gold labels by heart
            truth = pd.read_csv(root / "user_data/reviews.csv", dtype=str).set_index("review").true_sentiment
            true_y = torch.tensor((df.text_a.map(truth) == "pos").astype(int).to_numpy())
            flipped = true_y != y
            good, echo = _right(true_y, rng), _right(y, rng)
            for name, lg in (("good", good), ("echo_a", echo), ("echo_b", echo)):
                _save(root, name, split, df, lg, torch.tensor(rng.normal(0, 1, (n, 8))).float(), y)
            if split == "train":
                corrupted = {t: dict(zip(df.id, flipped.numpy().tolist())) for t in ("echo_a", "echo_b")}
        else:
            kind = torch.tensor(kind_of(df.text_a))
            for k, name in enumerate(TEACHERS["specialists"]):
                right = _right(y, rng)
                lg = torch.where((kind == k)[:, None], right, right.flip(-1))
                _save(root, name, split, df, lg, torch.tensor(rng.normal(0, 1, (n, 8))).float(), y)
                if split == "train":
                    corrupted[name] = dict(zip(df.id, (kind != k).numpy().tolist()))
    return corrupted
