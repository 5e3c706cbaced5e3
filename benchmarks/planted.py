"""Benchmark: do the teacher-selecting agents learn which teacher to trust? Teachers with planted, known errors.

Nothing is trained but the student: each design writes a tiny review task and plants its teachers'
logit caches directly, so which teacher is wrong on which training instance is known. Per seed, the
equal-weight student (u_ensemble) is distilled once and an agent once per named setting: a dict written as
params.yaml's section `methods.agent`, whose `method` names the agent's file (`rl_kd`, the paper's RL-KD, or
`effect_agent`, this suite's; effect_agent where it names none). Measured per corrupted teacher: the selection
gap, its mean selection probability (`select_<teacher>` in runs/reviews/agent/SEED/weights.parquet) on its clean
training instances minus on its corrupted ones (met at >= 0.3); and whether the agent's student beats the
equal-weight one on test accuracy.

Designs (700 reviews each; a tiny random-init student; distill.alpha 0.9, temperature 2, 8 epochs):
  coin         `good` right everywhere; `bad_a` and `bad_b` the same logits flipped (confidently wrong)
               on a random half of train (a coin flip per instance), right on dev and test. Equal
               weighting teaches the student the wrong label on that half (two of three teachers).
  specialists  reviews of three kinds by length: 2, 6 or 10 filler words, plus one sentiment word and
               the index (4, 8 or 12 words). Teacher `spec_k` is right and confident on kind k and
               confidently wrong (flipped) on the two other kinds, in every split, as a narrow specialist
               would be. Its corrupted set: its train instances of the other kinds. On every instance
               two of the three teachers are wrong, so equal weighting teaches the wrong label
               everywhere (test accuracy 13-33 % in seeds 1-3, below chance); the right teacher differs
               by kind of input, so no single teacher, and no one rule over teachers, is right. The pooled
               vectors are noise in both designs.
  (An earlier specialists design, uninformative rather than wrong on a third kind, left equal weighting
  unhurt at alpha 0.9: its three soft targets average to uniform and the student learns from gold.)
  noisy        (--design noisy; no target: it misleads the heuristics that read the gold label) the coin
               reviews with NOISE (30%) of the training labels flipped, dev and test clean; `good` knows
               the true label, `echo_a` and `echo_b` learnt the flipped gold labels by heart (confident in
               the gold label on every training instance). best_single and ca_mkd, which trust the teacher
               that agrees with the gold label, follow the echoes exactly where the gold label is wrong.
8 epochs: one equal-weight warm-up epoch and seven with the agent. With 4 (three with the agent) the
tiny student had not recovered from the switch of targets when training ended, and the best-on-dev
epoch of RL-KD was in some seeds the warm-up epoch, before the agent acted (coin, seed 3).

Usage: python -m benchmarks.planted [--seeds 1-10] [--design coin specialists noisy] [--setting NAME=JSON ...]
                                    [--rewards R ...] [--oracle] [--merge] [--out results/planted.json]
Default settings (`default_settings`): this suite's agent with and without its guard and gate, the paper's RL-KD
with each of its rewards, the remedies tried on them, and the states; --setting replaces them all. About 2-3 s a run on
2 cores; the full default is 2 designs x 10 seeds x (4 baselines + 22 settings) runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from pipeline import distill, logits, prepare, splits
from pipeline.io import provenance, write_json

# the agent's rewards, one default setting each; their names change with the agent: edit here
REWARDS = ["held_out_accuracy", "neg_ce", "neg_ce_kd", "instance_ce_delta", "gradient_alignment"]
SCALAR_REWARDS = ("held_out_accuracy", "neg_ce", "neg_ce_kd")  # the paper's
DESIGNS = ("coin", "specialists")  # the agent's targets (tests/test_rl_kd.py holds it to them)
# a design that misleads the gold-label heuristics (best_single, ca_mkd): run with --design noisy; no target
MISLEADING = ("noisy",)
NOISE = 0.3  # noisy: the share of training labels flipped (dev and test stay clean)
TEACHERS = {
    "coin": ["good", "bad_a", "bad_b"],
    "specialists": ["spec_0", "spec_1", "spec_2"],
    "noisy": ["good", "echo_a", "echo_b"],
}
MIN_GAP = 0.3
FAR = 0.05  # a seed ends "far below" equal weights when the agent's test accuracy is more than 5 points under it
# the code column of a row run before rows named their commit: before issue 28's fixes (every student on the same
# rows, pre-training never at learning rate 0), so not comparable with rows that name one
OLD = "before 28"
# the heuristic baselines beside equal weights: the teacher most confident in the gold label (best_single), weights
# by the teachers' CE against it (ca_mkd), fixed weights by dev accuracy (w_ensemble); each run once per seed
BASELINES = ("best_single", "ca_mkd", "w_ensemble")
TASK = "reviews"
OUT = Path("results/planted.json")
AGENT = "agent"  # the section and run name of the agent under test: a named setting of effect_agent or rl_kd


def agent_section(rl: dict | None) -> dict:
    """A setting as params.yaml's `methods.agent`: this suite's agent unless it names another file."""
    return {"method": "effect_agent", **(rl or {})}


POSITIVE = "good great superb lovely moving brilliant fun charming".split()
NEGATIVE = "bad dull awful boring weak tedious messy bland".split()
FILLER = "the film plot actor scene story movie script with a and of".split()
KIND_FILLERS = (2, 6, 10)  # specialists: filler words per kind; a text has 2 more words (sentiment, index)
ALPHA = 0.9  # distill.alpha, the KD loss's weight: high, so that wrong teachers hurt
EPOCHS = 8  # distill.epochs: one equal-weight warm-up epoch, then the agent (module docstring)


# ---- data ---------------------------------------------------------------------------------------


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


def params(design: str, root: Path, rl: dict | None = None) -> dict:
    """Write the design's reviews under root/user_data and return its params dict (`rl`: the agent's section)."""
    if design not in DESIGNS + MISLEADING:
        raise ValueError(f"unknown design {design!r}; one of {DESIGNS + MISLEADING}")
    teachers = TEACHERS[design]
    (root / "user_data").mkdir(parents=True, exist_ok=True)
    frame = kinds_frame(700) if design == "specialists" else sentiment_frame(700)
    frame.to_csv(root / "user_data/reviews.csv", index=False)
    # the longest text: 12 words and [CLS], [SEP]; an index of 3 digits is at most 3 word pieces: 16 <= 24
    teacher = {
        "source": "random",
        "arch": "bert",
        "vocab_size": 300,
        "epochs": 2,
        "max_length": 24,
        "batch_size": 16,
        "lr": 2e-3,
        "warmup_ratio": 0.0,
        "config": {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 64,
        },
    }
    return {
        "seed": 0,
        "run": {
            "tasks": [TASK],
            "teachers": teachers,
            "methods": ["u_ensemble"],
            "single": [],
            "drop": [],
            "agents": [AGENT],
            "seeds": [1],
        },
        "assets": {"dir": "assets", "encoders": [], "corpora": []},
        "tasks": {
            TASK: {
                "source": "file",
                "path": "user_data/reviews.csv",
                "text_a": "review",
                "label": "sentiment",
                "labels": ["neg", "pos"],
                "group": "movie",
                "dev_fraction": 0.2,
                "test_fraction": 0.2,
            }
        },
        "teachers": {t: dict(teacher) for t in teachers},  # never trained: their caches are planted
        "student": {
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
        },
        "distill": {"epochs": EPOCHS, "batch_size": 16, "lr": 3e-3, "alpha": ALPHA, "temperature": 2.0},
        "methods": {"u_ensemble": {}, **{m: {} for m in BASELINES}, AGENT: agent_section(rl)},  # those it runs
        "analysis": {},
        "compute": {"launch": "python -m", "device": "cpu", "precision": "auto"},
    }


def write_params(root: Path, values: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))


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


# ---- planted teacher caches ---------------------------------------------------------------------


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


# ---- runs ---------------------------------------------------------------------------------------


def _run(method: str, seed: str) -> float:
    with contextlib.redirect_stdout(sys.stderr):  # the pipeline's own lines; stdout keeps the table
        distill.main(TASK, method, seed)
    return json.loads((Path("runs") / TASK / method / seed / "metrics.json").read_text())["test_accuracy"]


def gaps(weights: pd.DataFrame, corrupted: dict[str, dict[str, bool]]) -> dict[str, float]:
    """Per corrupted teacher: mean selection probability on its clean train instances minus on its corrupted ones."""
    out = {}
    for teacher, bad in corrupted.items():
        mask = weights.id.map(bad).astype(bool)
        col = weights[f"select_{teacher}"]
        out[teacher] = float(col[~mask].mean() - col[mask].mean())
    return out


def accuracy(r: dict) -> float:
    """A seed's agent test accuracy (rows written before the agents were split called it `rl_kd`)."""
    return r["agent"] if "agent" in r else accuracy(r)


def summary(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r]
    met = [all(g >= MIN_GAP for g in r["gaps"].values()) for r in ok]
    won = [accuracy(r) > r["u_ensemble"] for r in ok]
    all_gaps = [g for r in ok for g in r["gaps"].values()]

    def mean(xs):
        return round(float(np.mean(xs)), 4) if xs else None

    return {
        "seeds": len(runs),
        "errors": len(runs) - len(ok),
        "seeds_gap_met": sum(met),
        "seeds_won": sum(won),
        "seeds_both": sum(m and w for m, w in zip(met, won)),
        "mean_gap": mean(all_gaps),
        "min_gap": round(min(all_gaps), 4) if all_gaps else None,
        "mean_min_gap": mean([min(r["gaps"].values()) for r in ok]),
        "mean_acc_diff": mean([accuracy(r) - r["u_ensemble"] for r in ok]),
        "worst_acc_diff": round(min(accuracy(r) - r["u_ensemble"] for r in ok), 4) if ok else None,
        "seeds_far_below": sum(accuracy(r) < r["u_ensemble"] - FAR for r in ok),
        # runs with effect_agent's guard: seeds where it kept the equal-weights run
        "guard_kept_equal": sum(r["guard"] == "equal_weights" for r in ok if "guard" in r)
        if any("guard" in r for r in ok)
        else None,
        # against each heuristic baseline: mean test-accuracy difference and seeds won
        "versus": {
            m: {
                "mean_acc_diff": mean([accuracy(r) - r["baselines"][m] for r in ok if m in r.get("baselines", {})]),
                "seeds_won": sum(accuracy(r) > r["baselines"][m] for r in ok if m in r.get("baselines", {})),
            }
            for m in BASELINES
        },
    }


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_design(
    design: str, seeds, rl_settings: dict[str, dict], workdir: str | Path | None = None, oracle: bool = False
) -> dict[str, dict]:
    """Run the design: u_ensemble once per seed, the agent once per (setting, seed).

    Returns {setting: {"rl": dict, "runs": [per seed: {"seed", "gaps", "agent", "u_ensemble",
    "selection_rate"}], "summary": {...}}}. A run that raises records {"seed", "error"} instead.
    `oracle`: also distil, per seed, a student from the single right teacher (each run's "oracle" accuracy)."""
    seeds = [str(s) for s in seeds]
    owned = workdir is None
    base = Path(tempfile.mkdtemp(prefix="planted-")) if owned else Path(workdir)
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"{design}-", dir=base)).resolve()  # fresh per design
    home = os.getcwd()
    total = len(seeds) * (1 + len(BASELINES) + len(rl_settings) + oracle)
    done = 0
    results = {name: {"rl": dict(rl), "runs": []} for name, rl in rl_settings.items()}
    try:
        os.chdir(root)
        base_params = params(design, root)
        write_params(root, base_params)
        with contextlib.redirect_stdout(sys.stderr):
            prepare.main(TASK)
            if design == "noisy":  # flip a share of the training labels, then prepare again
                add_label_noise(root)
                prepare.main(TASK)
        corrupted = plant(design, root)
        oracle_acc = {}
        if oracle:  # a sibling folder: the same data, one teacher
            sibling = root / "oracle"
            sibling.mkdir()
            shutil.copytree(root / "user_data", sibling / "user_data")
            shutil.copytree(root / "data", sibling / "data")
            os.chdir(sibling)
            write_params(
                sibling,
                {
                    **base_params,
                    "run": {**base_params["run"], "teachers": ["oracle"]},
                    "teachers": {"oracle": base_params["teachers"][TEACHERS[design][0]]},
                },
            )
            plant(design, sibling, oracle=True)
            for seed in seeds:
                start = time.perf_counter()
                oracle_acc[seed] = _run("u_ensemble", seed)
                done += 1
                progress(
                    f"[{done}/{total}] {design} seed {seed} oracle: test {oracle_acc[seed]:.4f} "
                    f"({time.perf_counter() - start:.1f} s)"
                )
            os.chdir(root)
        for seed in seeds:
            write_params(root, base_params)  # the agent's defaults: a setting the agent refuses fails its runs only
            start = time.perf_counter()
            equal = _run("u_ensemble", seed)
            done += 1
            progress(
                f"[{done}/{total}] {design} seed {seed} u_ensemble: test {equal:.4f} "
                f"({time.perf_counter() - start:.1f} s)"
            )
            heuristics = {}
            for method in BASELINES:
                heuristics[method] = _run(method, seed)
                done += 1
                progress(f"[{done}/{total}] {design} seed {seed} {method}: test {heuristics[method]:.4f}")
            for name, rl in rl_settings.items():
                write_params(root, {**base_params, "methods": {**base_params["methods"], AGENT: agent_section(rl)}})
                shutil.rmtree(root / "runs" / TASK / AGENT / seed, ignore_errors=True)
                start = time.perf_counter()
                try:
                    acc = _run(AGENT, seed)
                    sel = pd.read_parquet(root / "runs" / TASK / AGENT / seed / "weights.parquet")
                    history = json.loads((root / "runs" / TASK / AGENT / seed / "history.json").read_text())
                    row = {
                        "seed": seed,
                        "gaps": {t: round(g, 4) for t, g in gaps(sel, corrupted).items()},
                        "agent": acc,
                        "u_ensemble": equal,
                        "baselines": heuristics,
                        "selection_rate": {t: round(float(sel[f"select_{t}"].mean()), 4) for t in TEACHERS[design]},
                        "seconds": round(time.perf_counter() - start, 2),
                    }
                    if "guard" in history[-1]:  # which run the guard kept: the agent's or equal weights'
                        row["guard"] = history[-1]["guard"]["kept"]
                    if oracle:
                        row["oracle"] = oracle_acc[seed]
                    line = f"agent {acc:.4f} (u_ensemble {equal:.4f}), gaps " + ", ".join(
                        f"{t} {g:+.2f}" for t, g in row["gaps"].items()
                    )
                except Exception as err:  # noqa: BLE001 - one failing setting must not lose the others
                    row = {"seed": seed, "error": f"{type(err).__name__}: {err}"}
                    line = f"FAILED: {row['error']}"
                results[name]["runs"].append(row)
                done += 1
                progress(f"[{done}/{total}] {design} seed {seed} {name}: {line} ({time.perf_counter() - start:.1f} s)")
    finally:
        os.chdir(home)
        if owned:
            shutil.rmtree(base, ignore_errors=True)
    for entry in results.values():
        entry["summary"] = summary(entry["runs"])
        if oracle:
            entry["summary"]["mean_oracle"] = round(float(np.mean(list(oracle_acc.values()))), 4)
            entry["summary"]["mean_u_ensemble"] = round(
                float(np.mean([r["u_ensemble"] for r in entry["runs"] if "error" not in r] or [np.nan])), 4
            )
    return results


# ---- command ------------------------------------------------------------------------------------


def parse_seeds(tokens: list[str]) -> list[str]:
    """`1-10`, `1,2,5`, `1-3 7` -> seed strings."""
    seeds = []
    for token in tokens:
        for part in token.split(","):
            if "-" in part:
                lo, hi = part.split("-")
                seeds.extend(str(s) for s in range(int(lo), int(hi) + 1))
            elif part:
                seeds.append(str(int(part)))
    return list(dict.fromkeys(seeds))


def parse_setting(text: str) -> tuple[str, dict]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--setting {text!r}: expected NAME=JSON, e.g. effect_agent={{}}")
    try:
        rl = json.loads(value)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"--setting {text!r}: {err}") from None
    if not isinstance(rl, dict):
        raise argparse.ArgumentTypeError(f"--setting {text!r}: the JSON must be an object (the rl section)")
    return name, rl


def default_settings(rewards=REWARDS) -> dict[str, dict]:
    """This suite's agent with its guard, without it and without its gate; the paper's RL-KD with each of its
    rewards as published (no guard, no gate), and the remedies tried on them (the reward's gain over the same
    held-out batch before the update, 8 student batches per policy step, 6 pre-training epochs); this suite's
    agent with its other rewards; and states and policies that can express "this teacher on this kind of input"
    (input length, teacher identity, a policy per teacher)."""
    guarded = {"method": "effect_agent", "guard": "equal_weights"}
    settings = {"effect_agent_ue_guard": guarded, "effect_agent": {}, "no_gate": {**guarded, "gate": 0.0}}
    for reward in rewards:
        if reward in SCALAR_REWARDS:  # the paper's
            paper = {"method": "rl_kd", "reward": reward}
            settings[f"rl_kd:{reward}"] = paper
            settings[f"rl_kd:{reward}+gain"] = {**paper, "scalar_reward": "gain"}
            settings[f"rl_kd:{reward}+gain+batches8"] = {**paper, "scalar_reward": "gain", "policy_batches": 8}
            settings[f"rl_kd:{reward}+gain+pretrain6"] = {**paper, "scalar_reward": "gain", "pretrain_epochs": 6}
        else:
            settings[reward] = {"reward": reward}
    settings["rl_kd:teacher"] = {"method": "rl_kd", "state": ["pooled", "probs", "ce", "teacher"]}
    settings["pooled"] = {"state": ["pooled", "probs", "ce"]}
    # states and policies that can tell kinds of input or teachers apart
    settings["length"] = {"state": ["probs", "ce", "length"]}
    settings["teacher"] = {"state": ["probs", "ce", "teacher"]}
    settings["per_teacher"] = {"policy": "per_teacher", "state": ["probs", "ce", "length"]}
    return settings


def table(designs: dict) -> str:
    rows = [
        "| design | setting | seeds gap met | seeds won | both | mean min-gap | mean acc diff | worst | far below | "
        "guard kept equal | " + " | ".join(f"v {m}: diff, won" for m in BASELINES) + " | code |",
        "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(BASELINES) + "---|",
    ]

    def fmt(x, spec):
        return "-" if x is None else format(x, spec)

    for design, settings in designs.items():
        for name, entry in settings.items():
            s = entry["summary"]
            n = f"/{s['seeds']}" + (f" ({s['errors']} failed)" if s["errors"] else "")
            versus = s.get("versus", {})
            against = [
                f"{fmt(versus[m]['mean_acc_diff'], '+.4f')}, {versus[m]['seeds_won']}/{s['seeds']}"
                if versus.get(m, {}).get("mean_acc_diff") is not None
                else "-"
                for m in BASELINES
            ]
            rows.append(
                f"| {design} | {name} | {s['seeds_gap_met']}{n} | {s['seeds_won']}/{s['seeds']} | "
                f"{s['seeds_both']}/{s['seeds']} | {fmt(s['mean_min_gap'], '.3f')} | "
                f"{fmt(s['mean_acc_diff'], '+.4f')} | {fmt(s.get('worst_acc_diff'), '+.4f')} | "
                f"{fmt(s.get('seeds_far_below'), 'd')} | {fmt(s.get('guard_kept_equal'), 'd')} | "
                + " | ".join(against)
                + f" | {entry.get('commit', OLD)} |"
            )
    return "\n".join(rows)


def per_seed(designs: dict, setting: str = "effect_agent_ue_guard") -> str:
    """One row per design and seed for `setting`: each corrupted teacher's gap, the agent and equal weights."""
    rows = [
        "| design | seed | gaps (corrupted teachers) | agent | equal weights | "
        + " | ".join(BASELINES)
        + " | guard kept |",
        "|---|---|---|---|---|" + "---|" * len(BASELINES) + "---|",
    ]
    for design, settings in designs.items():
        for r in settings.get(setting, {}).get("runs", []):
            if "error" in r:
                rows.append(f"| {design} | {r['seed']} | failed: {r['error']} | | |")
                continue
            gaps_text = " / ".join(f"{g:.2f}" for g in r["gaps"].values())
            base = [f"{100 * r['baselines'][m]:.1f}" if m in r.get("baselines", {}) else "-" for m in BASELINES]
            rows.append(
                f"| {design} | {r['seed']} | {gaps_text} | {100 * accuracy(r):.1f} | {100 * r['u_ensemble']:.1f} | "
                + " | ".join(base)
                + f" | {r.get('guard', '-')} |"
            )
    return "\n".join(rows)


def markdown(designs: dict, command: str) -> str:
    """The page results/planted.md: written by this command, never edited by hand."""
    return (
        f"# Planted-teacher benchmark\n\nWritten by `{command}` (benchmarks/planted.py; docs/rl-kd.md "
        f"explains the designs and the settings). A seed meets the gap when every corrupted teacher's "
        f"selection gap is >= {MIN_GAP}; it is won when the agent's test accuracy beats equal weights'. The `v` "
        f"columns compare the agent with the heuristic baselines {', '.join(BASELINES)} (mean test-accuracy "
        f"difference, seeds won); `worst`: the agent's worst seed against equal weights; `far below`: seeds more "
        f"than {100 * FAR:.0f} points under equal weights; `guard kept equal`: seeds where effect_agent's guard kept "
        "its equal-weights run "
        "(a dash: run without the guard). A dash elsewhere: not run with this setting's rows. `code`: the commit "
        f"a row ran at; `{OLD}`: an older run, "
        "before every student trained on the same rows and pre-training was fixed, not comparable with the others."
        "\n\n"
        f"{table(designs)}\n\n## Per seed, setting `effect_agent_ue_guard`\n\n{per_seed(designs)}\n"
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", default=["1-10"], help="e.g. 1-10, or 1 2 5")
    ap.add_argument("--design", nargs="+", default=list(DESIGNS), choices=DESIGNS + MISLEADING)
    ap.add_argument(
        "--setting",
        nargs="+",
        type=parse_setting,
        default=None,
        metavar="NAME=JSON",
        help="rl sections to run (replace the defaults), e.g. effect_agent={} lr='{\"policy_lr\": 0.1}'",
    )
    ap.add_argument("--rewards", nargs="+", default=REWARDS, help="the rewards of the default settings")
    ap.add_argument("--oracle", action="store_true", help="also distil from the single right teacher per seed")
    ap.add_argument("--merge", action="store_true", help="keep the out file's other designs and settings")
    ap.add_argument("--workdir", default=None, help="where the runs go (default: a temporary folder, removed)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    settings = dict(args.setting) if args.setting else default_settings(args.rewards)
    start = time.perf_counter()
    designs = {d: run_design(d, seeds, settings, args.workdir, args.oracle) for d in args.design}
    seconds = time.perf_counter() - start
    runs = len(args.design) * len(seeds) * (1 + len(BASELINES) + len(settings) + args.oracle)
    merged = {}
    if args.merge and args.out.is_file():
        merged = json.loads(args.out.read_text()).get("designs", {})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    for design, entries in designs.items():
        merged.setdefault(design, {}).update({k: {**v, "commit": commit or "?"} for k, v in entries.items()})
    write_json(
        args.out,
        {
            "designs": merged,
            "min_gap": MIN_GAP,
            "last_run": {
                "designs": args.design,
                "settings": list(settings),
                "seeds": seeds,
                "runs": runs,
                "seconds": round(seconds, 1),
                "seconds_per_run": round(seconds / runs, 2),
            },
            "provenance": provenance(),
        },
    )
    args.out.with_suffix(".md").write_text(
        markdown(merged, "python -m benchmarks.planted " + " ".join(argv if argv is not None else sys.argv[1:]))
    )
    print(table({d: merged[d] for d in designs}))
    progress(f"\n{runs} runs in {seconds:.0f} s ({seconds / runs:.1f} s a run); written to {args.out}")


if __name__ == "__main__":
    main()
