"""Diagnostic: why an agent fails on a planted design, per batch. Where the truth is known (which teacher is wrong
on which training instance: benchmarks/planted/), it runs an agent once per seed and records, at every policy
step of the joint epochs, what the reward responded to and what the policy selected by:

- `right`: of the batch's selections (instance, teacher), the share where the teacher is right on the instance;
  a reward that teaches selection must rise with it;
- `signal`: what the policy steps on: for a scalar reward (the paper's) its advantage, the reward minus the
  moving-average baseline, one value for the whole batch; for a per-(instance, teacher) reward, the mean over the
  batch of the credit of right selections minus that of wrong ones;
- `r(signal, right)`: their correlation over the run's batches (per-batch credit: the share of batches where right
  selections earned more). Near 0: the policy steps on noise, whatever it then selects;
- the run's end: each corrupted teacher's selection gap (clean minus corrupted instances, planted's measure),
  the policy's weight mass per state feature (what it selects by), and the share of the student's test
  predictions in its most frequent class (1.0: it predicts one class).

Usage: python -m benchmarks.diagnose [--design coin specialists] [--seeds 1-3] [--setting NAME=JSON ...]
Default settings: the paper's RL-KD with each of its rewards and with the gain remedy, and this suite's agent for
contrast. About 10 s a run on 2 cores. Writes results/diagnose.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline import prepare, splits
from pipeline.io import provenance, write_json
from pipeline.methods import rl_kd

from .planted import designs as D
from .planted import runner as R
from .planted import settings as S

OUT = Path("results/diagnose.json")
SETTINGS = {
    "rl_kd:held_out_accuracy": {"method": "rl_kd", "reward": "held_out_accuracy"},
    "rl_kd:neg_ce": {"method": "rl_kd", "reward": "neg_ce"},
    "rl_kd:neg_ce_kd": {"method": "rl_kd", "reward": "neg_ce_kd"},
    # the remedy that did best before: the reward's gain over the same held-out batch, before the update
    "rl_kd:held_out_accuracy+gain": {"method": "rl_kd", "reward": "held_out_accuracy", "scalar_reward": "gain"},
    "effect_agent": {"method": "effect_agent"},
}


class Recorder:
    """Wraps RLKD.after_update: per policy step of the joint epochs, the batch's selections, how many were right,
    and the signal the policy stepped on."""

    def __init__(self, right: np.ndarray):
        self.right, self.steps, self.agent = right, [], None  # right: [N, K] bool, train row order

    def __enter__(self):
        original, recorder = rl_kd.RLKD.after_update, self

        def after_update(weighting, idx, logits, pooled):
            if not weighting.active:
                return original(weighting, idx, logits, pooled)
            baseline = weighting.agent.baseline
            original(weighting, idx, logits, pooled)
            recorder.agent = weighting.agent
            actions = weighting.agent.last[1].numpy().astype(bool)
            right = recorder.right[np.asarray(idx)]
            reward = weighting.rewards[-1]
            if weighting.settings.reward in rl_kd.SCALAR_REWARDS:
                signal = reward - (reward if baseline is None else baseline)
            else:  # per (instance, teacher): the credit right selections earned over wrong ones, this batch
                signal = np.nan
            recorder.steps.append(
                {
                    "selected": int(actions.sum()),
                    "right": float(right[actions].mean()) if actions.any() else np.nan,
                    "signal": float(signal),
                    "reward": float(reward),
                }
            )

        self.patch = (rl_kd.RLKD, "after_update", original)
        rl_kd.RLKD.after_update = after_update
        return self

    def __exit__(self, *exc):
        setattr(*self.patch)


def policy_mass(agent, state: list[str], dims: dict[str, int]) -> dict[str, float]:
    """The share of the (shared) policy's absolute weight on each state feature: what it selects by."""
    layer = agent.policy.linears[0]
    w = layer.weight.detach().abs()[0]
    out, start = {}, 0
    for name in state:
        width = dims[name]
        out[name] = float(w[start : start + width].sum())
        start += width
    total = sum(out.values()) or 1.0
    return {k: round(v / total, 3) for k, v in out.items()}


def run(design: str, seeds, settings: dict[str, dict], workdir: Path) -> list[dict]:
    root = Path(tempfile.mkdtemp(prefix=f"{design}-", dir=workdir)).resolve()
    rows = []
    try:
        with contextlib.chdir(root):
            base = R.params(design, root)
            R.write_params(root, base)
            with contextlib.redirect_stdout(sys.stderr):
                prepare.main(D.TASK)
            corrupted = D.plant(design, root)
            train = splits.load_split(root / "data" / D.TASK, "train")
            teachers = D.TEACHERS[design]
            right = np.ones((len(train), len(teachers)), bool)
            for k, t in enumerate(teachers):
                if t in corrupted:
                    right[:, k] = ~train.id.map(corrupted[t]).astype(bool).to_numpy()
            for name, setting in settings.items():
                section = S.agent_section(setting)
                R.write_params(root, {**base, "methods": {**base["methods"], S.AGENT: section}})
                for seed in map(str, seeds):
                    shutil.rmtree(root / "runs" / D.TASK / S.AGENT / seed, ignore_errors=True)
                    with Recorder(right) as rec:
                        accuracy = R._run(S.AGENT, seed)
                    out = root / "runs" / D.TASK / S.AGENT / seed
                    weights = pd.read_parquet(out / "weights.parquet")
                    preds = pd.read_parquet(out / "predictions.parquet")
                    steps = pd.DataFrame(rec.steps)
                    state = rec.agent.cfg.state
                    dims = {"pooled": 8, "probs": 2, "ce": 1, "length": 1, "teacher": len(teachers)}
                    rows.append(
                        {
                            "design": design,
                            "setting": name,
                            "seed": int(seed),
                            "test_accuracy": round(accuracy, 4),
                            "one_class_share": round(float(preds.pred.value_counts(normalize=True).max()), 3),
                            "policy_steps": len(steps),
                            "right_share": round(float(steps.right.mean()), 3),
                            "signal_right_r": correlation(steps.signal, steps.right),
                            "reward_sd": round(float(steps.reward.std()), 4),
                            "gaps": {t: round(g, 3) for t, g in R.gaps(weights, corrupted).items()},
                            "policy_mass": policy_mass(rec.agent, state, dims)
                            if rec.agent.cfg.policy == "shared"
                            else {},
                        }
                    )
                    R.progress(f"diagnose: {design} {name} seed {seed}: {rows[-1]}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def correlation(a: pd.Series, b: pd.Series) -> float | None:
    ok = a.notna() & b.notna()
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return None
    return round(float(np.corrcoef(a[ok], b[ok])[0, 1]), 3)


def markdown(rows: list[dict], command: str) -> str:
    lines = [
        "# Why an agent fails on a planted design, per batch",
        "",
        f"Written by `{command}` (benchmarks/diagnose.py says what each column is). `r(signal, right)`: over the "
        "run's policy steps, the correlation of what the policy stepped on with the share of the batch's selections "
        "that were right (blank for a per-teacher reward, whose signal is not one number a batch).",
        "",
        "| design | setting | seed | test acc. | one-class share | policy steps | right share | r(signal, right) | "
        "reward sd | gaps (corrupted teachers) | policy weight mass |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mass = ", ".join(f"{k} {v:.2f}" for k, v in r["policy_mass"].items())
        gaps = " / ".join(f"{g:+.2f}" for g in r["gaps"].values())
        corr = "" if r["signal_right_r"] is None else f"{r['signal_right_r']:+.3f}"
        lines.append(
            f"| {r['design']} | {r['setting']} | {r['seed']} | {100 * r['test_accuracy']:.1f} | "
            f"{r['one_class_share']:.2f} | {r['policy_steps']} | {r['right_share']:.2f} | {corr} | "
            f"{r['reward_sd']:.4f} | {gaps} | {mass} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.diagnose", description=__doc__.splitlines()[0])
    ap.add_argument("--design", nargs="+", default=list(D.DESIGNS), choices=D.DESIGNS + D.MISLEADING)
    ap.add_argument("--seeds", nargs="+", default=["1-3"])
    ap.add_argument("--setting", nargs="+", type=S.parse_setting, default=None, metavar="NAME=JSON")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    settings = dict(args.setting) if args.setting else SETTINGS
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="diagnose-") as work:
        rows = [r for d in args.design for r in run(d, S.parse_seeds(args.seeds), settings, Path(work))]
    write_json(args.out, {"rows": rows, "provenance": provenance()})
    command = "python -m benchmarks.diagnose " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out.with_suffix(".md").write_text(markdown(rows, command.strip()))
    print(markdown(rows, command.strip()))


if __name__ == "__main__":
    main()
