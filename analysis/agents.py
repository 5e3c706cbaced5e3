"""Table 5: what each agent did. Per agent row of run.agents (the paper's RL-KD and its named settings, this suite's
agent with and without its guard): its test accuracy against U-Ensemble with the deciding test's interval, and
what its policy did, read from its runs' history.json and metrics.json:

- the guard's choice per seed (effect_agent's `guard: equal_weights`: the agent's student or U-Ensemble's);
- policy steps taken and skipped per run over the joint epochs (effect_agent's gate skips a step where its reward
  cannot tell teachers apart; the paper's procedure steps on every batch);
- in the last epoch, the share of instances with exactly equal weights (every teacher selected, or none with
  `no_teacher: equal`) and with no teacher selected (CE alone with `no_teacher: ce`);
- each teacher's mean weight over the training instances and epochs (metrics.json `teacher_weights`) and its
  selection rate in the last epoch.
An agent whose weights are equal weights for most instances is U-Ensemble for most instances, whatever its name.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.io import read_json

from . import decision, run_files

STEPS = ("policy_steps", "policy_steps_skipped")
SHARES = ("equal_weights_share", "no_teacher_share")


def records(tree: run_files.Runs, agents: list[str], teachers: list[str]) -> pd.DataFrame:
    """One row per (task, agent, seed), the agents in the order of `agents`: the guard's choice, the policy's
    steps, the last epoch's shares and selection rates, and each teacher's mean weight. A field an older run did
    not record is NaN."""
    rows = []
    for key in sorted((k for k in tree.keys if k[1] in agents), key=lambda k: (k[0], agents.index(k[1]), k[2])):
        task, agent, seed = key
        joint = [h for h in run_files.epochs(tree, key) if h.get("selection_rate") is not None]
        metrics = read_json(tree.path(key, "metrics.json"), tree.stage(key))
        last = joint[-1] if joint else {}
        guard = next((h["guard"]["kept"] for h in joint if isinstance(h.get("guard"), dict)), None)
        row = {"task": task, "method": agent, "seed": int(seed), "guard": guard}
        row |= {k: float(sum(h.get(k) or 0 for h in joint)) if joint and k in last else np.nan for k in STEPS}
        row |= {k: float(last[k]) if k in last else np.nan for k in SHARES}
        rates = last.get("selection_rate") or [np.nan] * len(teachers)
        weights = metrics.get("teacher_weights") or {}
        for t, rate in zip(teachers, rates):
            row[f"select_{t}"], row[f"weight_{t}"] = rate, weights.get(t, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def agent_table(recs: pd.DataFrame, versus: pd.DataFrame, teachers: list[str], baseline: str):
    """Table 5 from `records` and `versus` (per task and agent, the deciding test against `baseline`)."""
    if recs.empty:
        empty = pd.DataFrame()
        return empty, empty, empty
    g = recs.groupby(["task", "method"], sort=False)
    numbers = g[[*STEPS, *SHARES, *(f"{p}_{t}" for p in ("weight", "select") for t in teachers)]].mean()
    numbers["seeds"] = g.seed.nunique()
    numbers["guard_kept_equal"] = g.guard.apply(lambda s: int((s == "equal_weights").sum()) if s.notna().any() else -1)
    numbers["guard_seeds"] = g.apply(
        lambda d: " ".join(str(s) for s in sorted(d.seed[d.guard == "equal_weights"])), include_groups=False
    )
    numbers = numbers.join(versus.set_index(["task", "method"]))

    def share(v):
        return "" if pd.isna(v) else f"{100 * v:.0f}%"

    shown = pd.DataFrame(index=numbers.index)
    shown[f"- {baseline} (pp) [95% CI]"] = [interval(r) for _, r in numbers.iterrows()]
    shown["guard kept U-Ensemble's student"] = [
        "no guard" if k < 0 else f"{k} of {n}" for k, n in zip(numbers.guard_kept_equal, numbers.seeds)
    ]
    shown["policy steps taken / skipped a run"] = [
        "" if pd.isna(a) else f"{a:.0f} / {b:.0f}" for a, b in zip(numbers.policy_steps, numbers.policy_steps_skipped)
    ]
    shown["equal weights"] = numbers.equal_weights_share.map(share)
    shown["no teacher"] = numbers.no_teacher_share.map(share)
    shown["mean weight (" + " / ".join(teachers) + ")"] = [
        " / ".join(f"{r[f'weight_{t}']:.2f}" for t in teachers) for _, r in numbers.iterrows()
    ]
    shown["selection rate (" + " / ".join(teachers) + ")"] = [
        " / ".join(f"{r[f'select_{t}']:.2f}" for t in teachers) for _, r in numbers.iterrows()
    ]
    return numbers.reset_index(), shown, pd.DataFrame(False, index=shown.index, columns=shown.columns)


def interval(r) -> str:
    """The difference with its interval; one seed has none."""
    if pd.isna(r.get("diff")):
        return ""
    if pd.isna(r.get("ci_low")):
        return f"{100 * r['diff']:+.1f} (one seed)"
    return f"{100 * r['diff']:+.1f} [{100 * r.ci_low:+.1f}, {100 * r.ci_high:+.1f}]"


def versus(tree, runs: pd.DataFrame, agents: list[str], baseline: str, tasks: list[str], cfg, groups) -> pd.DataFrame:
    """Per task and agent: the deciding test of the agent against `baseline` (decision.compare)."""
    rows = []
    for task in tasks:
        ran = set(runs[runs.task == task].method)
        for agent in (a for a in agents if a in ran and baseline in ran and a != baseline):
            rows.append(
                {"task": task, "method": agent, **decision.compare(tree, runs, task, agent, baseline, cfg, groups)}
            )
    return pd.DataFrame(rows, columns=["task", "method", "diff", "ci_low", "ci_high", "p"])


def sentences(numbers: pd.DataFrame, teachers: list[str], baseline: str) -> str:
    """Table 5 read per agent, in numbers."""
    if numbers.empty:
        return "No agent ran."
    out = []
    for _, r in numbers.iterrows():
        said = f"`{r.method}` on `{r.task}`"
        if pd.notna(r.get("diff")):
            said += f": {interval(r)} points against `{baseline}`"
        if pd.notna(r.policy_steps):
            said += (
                f"; its policy stepped {r.policy_steps:.0f} times a run and skipped {r.policy_steps_skipped:.0f}; "
                f"in the last epoch {100 * r.equal_weights_share:.0f}% of the instances got exactly equal weights and "
                f"{100 * r.no_teacher_share:.0f}% no teacher"
            )
        said += "; mean weights " + ", ".join(f"`{t}` {r[f'weight_{t}']:.2f}" for t in teachers)
        if r.guard_kept_equal >= 0:
            said += f"; its guard kept U-Ensemble's student in {r.guard_kept_equal} of {r.seeds} seeds" + (
                f" ({r.guard_seeds})" if r.guard_seeds else ""
            )
        out.append(said + ".")
    return " ".join(out)
