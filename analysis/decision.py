"""The decision: the comparisons declared before any number is seen, each with its two-way bootstrap interval,
p and Holm adjustment, the smallest difference it can detect, and its verdict (docs/statistics.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import run_files, stats

FIXED_KD = ("u_ensemble", "w_ensemble", "best_single", "lr_ensemble")  # KD with fixed teacher weights


def comparisons(order: list[str], reference: str, baseline: str) -> list[tuple[str, str, str]]:
    """(a, b, role) for one task, declared before any number is seen: the primary comparison, reference against
    baseline (tested at the full level); then the secondary ones, one Holm family: reference against every
    other method, and the paper's premise, each fixed-weight KD method against `ce` (KD helps at all)."""
    out = [(reference, baseline, "primary")] if baseline in order and baseline != reference else []
    out += [(reference, m, "secondary") for m in order if m not in (reference, baseline)]
    if "ce" in order and reference != "ce":
        out += [(m, "ce", "secondary") for m in order if m in FIXED_KD and m != reference]
    return out


POWER_SEEDS = (1, 2, 3, 5, 10, 20)
POWER_EXAMPLES = (1, 2, 5, 10)  # multiples of the test set


def significance_table(tree: run_files.Runs, runs: pd.DataFrame, order: list[str], tasks: list[str], cfg):
    """Every declared comparison per task: the difference with its two-way bootstrap CI and p (seeds and test
    examples resampled: the verdict's test), the smallest difference it could detect (cfg.power) and its power
    to see cfg.gap points; the paired t-test, Wilcoxon and McNemar beside it, reported, not deciding (McNemar
    pools the seeds' predictions as if they were independent draws). `tree`: the runs of `runs`, whose
    predictions it reads."""
    rows = []
    for task in tasks:
        t_runs = runs[runs.task == task]
        where = dict(task=t_runs.run_task.iloc[0], eval_set=t_runs.eval_set.iloc[0])  # MNLI-m: a part of mnli's runs
        acc = {m: df.set_index("seed").test_accuracy for m, df in t_runs.groupby("method")}
        correct = {}  # read once per method, compared with all

        def correctness(method, seeds):
            if method not in correct:
                correct[method] = (
                    sorted(acc[method].index),
                    run_files.correctness(tree, method=method, seeds=sorted(acc[method].index), **where),
                )
            have, c = correct[method]
            return c[[have.index(s) for s in seeds]]

        declared = comparisons([m for m in order if m in acc], cfg.reference, cfg.baseline)
        family = sum(role == "secondary" for *_, role in declared)
        for a, b, role in declared:
            seeds = sorted(set(acc[a].index) & set(acc[b].index))
            ca, cb = correctness(a, seeds), correctness(b, seeds)
            boot = stats.bootstrap_diffs(ca, cb, cfg.bootstrap)
            tail = (1 - cfg.confidence) / 2
            lo, hi = np.quantile(boot, [tail, 1 - tail])
            level = cfg.significance if role == "primary" else cfg.significance / family  # Holm's first step
            var = stats.variance_components(ca, cb)
            only_a, only_b, p_mc = stats.mcnemar(ca, cb)
            rows.append(
                {
                    "task": task,
                    "a": a,
                    "b": b,
                    "role": role,
                    "seeds": len(seeds),
                    "examples": ca.shape[1],
                    "diff": float((ca - cb).mean()),
                    "ci_low": lo,
                    "ci_high": hi,
                    "p": stats.bootstrap_p(boot),
                    "mdd": stats.min_detectable(var, len(seeds), ca.shape[1], level, cfg.power),
                    "power": stats.power_at(var, len(seeds), ca.shape[1], level, cfg.gap / 100),
                    "p_t": stats.paired_t(acc[a][seeds], acc[b][seeds]),
                    "p_wilcoxon": stats.wilcoxon(acc[a][seeds], acc[b][seeds], cfg.wilcoxon_min_seeds),
                    "only_a_right": only_a,
                    "only_b_right": only_b,
                    "p_mcnemar": p_mc,
                    "d_z": stats.cohens_dz(acc[a][seeds], acc[b][seeds]),
                    "var_seed": var.seed,
                    "var_example": var.example,
                    "var_residual": var.residual,
                }
            )
    numbers = pd.DataFrame(rows)
    if numbers.empty:  # the reference ran alone (run.methods: [])
        numbers = pd.DataFrame(columns=["task", "a", "b", "role", "seeds", "diff", "verdict"])
        return numbers, numbers, numbers
    secondary = numbers.role == "secondary"
    numbers["p_adjusted"] = numbers.p
    for task in tasks:
        rows = secondary & (numbers.task == task)
        numbers.loc[rows, "p_adjusted"] = stats.holm(numbers.p[rows])
    numbers["verdict"] = [verdict(r, cfg) for _, r in numbers.iterrows()]

    fmt_p = lambda p: "n/a" if p is None or pd.isna(p) else (f"{p:.3f}" if p >= 0.001 else "<0.001")  # noqa: E731
    pp = lambda v: "n/a" if pd.isna(v) else f"{100 * v:.1f}"  # noqa: E731
    shown = pd.DataFrame(
        {
            "task": numbers.task,
            "comparison": numbers.a + " - " + numbers.b,
            "role": numbers.role,
            f"difference (pp) [{100 * cfg.confidence:.0f}% CI]": [
                f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                for d, lo, hi in zip(numbers["diff"], numbers.ci_low, numbers.ci_high)
            ],
            "bootstrap p (Holm)": [
                fmt_p(p) if r == "primary" else f"{fmt_p(p)} ({fmt_p(h)})"
                for p, h, r in zip(numbers.p, numbers.p_adjusted, numbers.role)
            ],
            f"detectable (pp, {100 * cfg.power:.0f}% power)": numbers.mdd.map(pp),
            f"power at {cfg.gap:g} pp": numbers.power.map(lambda v: "n/a" if pd.isna(v) else f"{v:.2f}"),
            "paired t p": numbers.p_t.map(fmt_p),
            f"Wilcoxon p (>= {cfg.wilcoxon_min_seeds} seeds)": numbers.p_wilcoxon.map(fmt_p),
            "McNemar b / c, p (pooled)": [
                f"{a} / {b}, {fmt_p(p)}"
                for a, b, p in zip(numbers.only_a_right, numbers.only_b_right, numbers.p_mcnemar)
            ],
            "d_z": numbers.d_z.map(lambda v: "n/a" if pd.isna(v) else f"{v:+.2f}"),
            "verdict": numbers.verdict,
        }
    ).set_index(["task", "comparison"])
    bold = pd.DataFrame(False, index=shown.index, columns=shown.columns)
    bold["verdict"] = numbers.verdict.str.startswith(("better", "worse")).to_numpy()
    return numbers, shown, bold


def verdict(r, cfg) -> str:
    """`better` or `worse` when the (Holm-corrected, for a secondary comparison) bootstrap p is below the level;
    otherwise whether the experiment could have seen a difference of cfg.gap points: a null result counts only
    if it could."""
    if r.p_adjusted < cfg.significance:
        return "better" if r["diff"] > 0 else "worse"
    if pd.notna(r.power) and r.power >= cfg.power:
        return f"no difference (could see {cfg.gap:g} pp)"
    return f"inconclusive (could not see {cfg.gap:g} pp)"


def power_table(runs: pd.DataFrame, tasks: list[str], cfg, sig: pd.DataFrame):
    """The primary comparison's smallest detectable difference (at cfg.power, the full level) for more seeds and
    larger test sets, from the variance components that the significance table measured, with the training
    minutes each seed costs (every method's mean training time on the task, summed)."""
    rows = []
    for task in tasks:
        primary = sig[(sig.task == task) & (sig.role == "primary")]
        if primary.empty:
            continue
        r = primary.iloc[0]
        t_runs = runs[runs.task == task]
        var = stats.Variance(r.var_seed, r.var_example, r.var_residual)
        if np.isnan(var.seed):  # one seed: the seed-to-seed variance is unknown, so is the power
            continue
        minutes = t_runs.groupby("method").train_seconds.mean().sum() / 60
        for s in POWER_SEEDS:
            for k in POWER_EXAMPLES:
                rows.append(
                    {
                        "task": task,
                        "comparison": f"{r.a} - {r.b}",
                        "seeds": s,
                        "multiple": k,
                        "examples": k * int(r.examples),
                        "mdd": stats.min_detectable(var, s, k * int(r.examples), cfg.significance, cfg.power),
                        "minutes": s * minutes,
                        "var_seed": var.seed,
                        "var_example": var.example,
                        "var_residual": var.residual,
                        "measured": s == r.seeds and k == 1,
                    }
                )
    numbers = pd.DataFrame(rows)
    if numbers.empty:
        return numbers, numbers, numbers
    wide = numbers.pivot_table(index=["task", "seeds"], columns="multiple", values="mdd", sort=False)
    first = numbers.groupby(["task", "seeds"], sort=False).first()
    shown = pd.DataFrame(
        {
            "training minutes": first.minutes.map(lambda v: f"{v:.0f}"),
            "test examples": first.examples.map(lambda v: f"{v:,}"),
        },
        index=wide.index,
    )
    for k in wide.columns:
        shown[f"{k}x test" if k > 1 else "this test set"] = wide[k].map(lambda v: f"{100 * v:.1f}")
    return numbers, shown, pd.DataFrame(False, index=shown.index, columns=shown.columns)
