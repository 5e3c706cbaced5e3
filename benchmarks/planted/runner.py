"""Runs a design: per seed the equal-weight student, the heuristic baselines and each agent setting, measured
against the planted errors (selection gaps, test accuracy against equal weights)."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pipeline import distill, prepare

from .designs import (
    DESIGNS,
    MISLEADING,
    REVIEWS_TASK,
    TASK,
    TEACHERS,
    TINY_STUDENT,
    add_label_noise,
    kinds_frame,
    plant,
    sentiment_frame,
    tiny_teacher,
)
from .settings import AGENT, agent_section

MIN_GAP = 0.3


FAR = 0.05  # a seed ends "far below" equal weights when the agent's test accuracy is more than 5 points under it


# the heuristic baselines beside equal weights: the teacher most confident in the gold label (best_single), weights
# by the teachers' CE against it (ca_mkd), fixed weights by dev accuracy (w_ensemble); each run once per seed
BASELINES = ("best_single", "ca_mkd", "w_ensemble")


ALPHA = 0.9  # distill.alpha, the KD loss's weight: high, so that wrong teachers hurt


EPOCHS = 8  # distill.epochs: one equal-weight warm-up epoch, then the agent (module docstring)


def params(design: str, root: Path, rl: dict | None = None) -> dict:
    """Write the design's reviews under root/user_data and return its params dict (`rl`: the agent's section)."""
    if design not in DESIGNS + MISLEADING:
        raise ValueError(f"unknown design {design!r}; one of {DESIGNS + MISLEADING}")
    teachers = TEACHERS[design]
    (root / "user_data").mkdir(parents=True, exist_ok=True)
    frame = kinds_frame(700) if design == "specialists" else sentiment_frame(700)
    frame.to_csv(root / "user_data/reviews.csv", index=False)
    teacher = tiny_teacher()
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
        "tasks": {TASK: dict(REVIEWS_TASK)},
        "teachers": {t: dict(teacher) for t in teachers},  # never trained: their caches are planted
        "student": copy.deepcopy(TINY_STUDENT),
        "distill": {"epochs": EPOCHS, "batch_size": 16, "lr": 3e-3, "alpha": ALPHA, "temperature": 2.0},
        "methods": {"u_ensemble": {}, **{m: {} for m in BASELINES}, AGENT: agent_section(rl)},  # those it runs
        "analysis": {},
        "compute": {"launch": "python -m", "device": "cpu", "precision": "auto"},
    }


def write_params(root: Path, values: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False))


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
