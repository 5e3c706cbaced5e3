"""Table 5: the RL-KD ablations that were run as DVC experiments.

Usage: python -m analysis.ablation [--params PATH]   (after e.g. `dvc exp run -S methods.rl_kd.reward=neg_ce`)
Writes results/ablation.{md,tex,csv}.
Reads `dvc exp show --json -A`: for every experiment, the `methods.rl_kd` settings that differ from params.yaml's
and RL-KD's mean test accuracy from that experiment's results/metrics.json; the first row is the
workspace (params.yaml as it is). Not a DVC stage: experiments live in git refs, not in the workspace.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd

from pipeline import methods
from pipeline.io import read_json
from pipeline.params_file import InputError, arguments, reported_errors
from pipeline.schema import load

from . import tables


def experiments(exp_show: list) -> list[dict]:
    """Name, `rl` params and RL-KD test accuracy per task of every experiment in `dvc exp show --json` output."""
    out = []
    for baseline in exp_show:
        for exp in baseline.get("experiments") or []:
            rev = exp["revs"][0]
            data = rev.get("data") or {}
            params = data.get("params", {}).get("params.yaml", {}).get("data", {})
            metrics = data.get("metrics", {}).get("results/metrics.json", {}).get("data", {})
            accuracy = metrics.get("test_accuracy", {}).get("rl_kd")
            rl = (params.get("methods") or {}).get("rl_kd")
            if rl is not None and accuracy:
                out.append({"name": exp.get("name") or rev["rev"][:7], "rl": rl, "accuracy": accuracy})
    return out


def table(base_rl: dict, base_accuracy: dict, exps: list[dict], tasks: list[str]):
    rows = [{"setting": "params.yaml", "experiment": "workspace", **base_accuracy}]
    for e in exps:
        changed = {k: v for k, v in e["rl"].items() if base_rl.get(k) != v}
        label = ", ".join(f"methods.rl_kd.{k}={v}" for k, v in changed.items()) or "same methods.rl_kd settings"
        rows.append({"setting": label, "experiment": e["name"], **e["accuracy"]})
    numbers = pd.DataFrame(rows).set_index("setting")
    columns = [c for c in [*tasks, "average"] if c in numbers]
    shown = pd.DataFrame(
        {
            "experiment": numbers.experiment,
            **{c: numbers[c].map(lambda v: "" if pd.isna(v) else f"{100 * v:.1f}") for c in columns},
        }
    )
    bold = pd.DataFrame(False, index=shown.index, columns=shown.columns)
    for c in columns:
        bold[c] = numbers[c] == numbers[c].max()
    return numbers, shown, bold


def main(params_path: str = "params.yaml") -> None:
    params = load(params_path)
    metrics = Path("results/metrics.json")
    base = read_json(metrics, "dvc repro analyze", keys=("test_accuracy",))["test_accuracy"]
    if not isinstance(base, dict) or not isinstance(base.get("rl_kd"), dict):
        raise InputError(f"{metrics}: no test_accuracy of rl_kd; rerun `dvc repro analyze`")
    base = base["rl_kd"]
    try:
        done = subprocess.run(["dvc", "exp", "show", "--json", "-A"], capture_output=True, text=True)
    except FileNotFoundError:
        raise InputError("dvc: not found on PATH; run this in the project's environment (make setup)") from None
    if done.returncode != 0:
        raise SystemExit(f"dvc exp show failed: {done.stderr.strip()}")
    try:
        shown = json.loads(done.stdout)
    except json.JSONDecodeError as err:
        raise SystemExit(f"dvc exp show --json: not JSON ({err})") from None
    exps = experiments(shown)
    md = tables.write(
        Path("results"),
        "ablation",
        "Table 5: RL-KD test accuracy (%, mean over seeds) under each ablation run as a DVC experiment.",
        table(methods.settings(params, "rl_kd", params_path).model_dump(), base, exps, params.run.tasks),
    )
    print(md)


if __name__ == "__main__":
    args = arguments(__spec__.name, __doc__)
    with reported_errors():
        main(args.params)
