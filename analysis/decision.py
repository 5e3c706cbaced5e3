"""The decision: the comparisons declared before any number is seen, each with its two-way bootstrap interval,
p and Holm adjustment, the smallest difference it can detect, and its verdict (docs/statistics.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import run_files, stats

FIXED_KD = ("u_ensemble", "w_ensemble", "best_single", "lr_ensemble")  # KD with fixed teacher weights


def comparisons(
    order: list[str], reference: str, baseline: str, premise: str | None = None
) -> list[tuple[str, str, str]]:
    """(a, b, role) for one task, declared before any number is seen: the primary comparison, reference against
    baseline, and KD's premise, the `premise` method (the best fixed-weight KD method on dev) against `ce`: two
    questions, each tested at the full level; then the secondary ones, one Holm family: reference against every
    other method, and each other fixed-weight KD method against `ce`."""
    out = [(reference, baseline, "primary")] if baseline in order and baseline != reference else []
    has_premise = premise in order and "ce" in order and premise not in (reference, "ce")
    out += [(premise, "ce", "premise")] if has_premise else []
    out += [(reference, m, "secondary") for m in order if m not in (reference, baseline)]
    if "ce" in order and reference != "ce":
        out += [(m, "ce", "secondary") for m in order if m in FIXED_KD and m not in (reference, premise)]
    return out


def best_on_dev(runs: pd.DataFrame) -> str | None:
    """The fixed-weight KD method with the highest mean dev accuracy over its seeds: KD's best baseline, chosen
    on dev so that the premise's test is not chosen by its own test scores."""
    kd = runs[runs.method.isin(FIXED_KD)]
    return None if kd.empty else str(kd.groupby("method").dev_accuracy.mean().idxmax())


POWER_SEEDS = (3, 5, 10, 20, 30)
POWER_EXAMPLES = (0.5, 1, 2)  # multiples of the test set: seeds, not examples, are the lever


def significance_table(tree: run_files.Runs, runs: pd.DataFrame, order: list[str], tasks: list[str], cfg, groups: dict):
    """Every declared comparison per task, decided by `stats.crossed_test` (seeds crossed with test units, a t
    test on S - 1 degrees of freedom): the difference with its CI and p, Holm within the secondary family, which
    the primary comparison gates (tested only once the primary one rejects; KD's premise is tested on its own, at
    the full level, like the primary one); the smallest difference it could
    detect (cfg.power) with its upper confidence bound, and its power to see cfg.gap points. The paired t-test
    and Wilcoxon on per-seed accuracies stand beside it, reported, not deciding. `tree`: the runs of `runs`, whose
    predictions it reads; `groups`: per task (evaluation set), its test examples' groups in id order (rt: movies),
    the unit that test sampling draws."""
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

        ran = [m for m in order if m in acc]
        for a, b, role in comparisons(ran, cfg.reference, cfg.baseline, best_on_dev(t_runs)):
            seeds = sorted(set(acc[a].index) & set(acc[b].index))
            ca, cb = correctness(a, seeds), correctness(b, seeds)
            row = {"task": task, "a": a, "b": b, "role": role, "seeds": len(seeds), "examples": ca.shape[1]}
            row |= {
                "diff": float((ca - cb).mean()),
                "p_t": stats.paired_t(acc[a][seeds], acc[b][seeds]),
                "p_wilcoxon": stats.wilcoxon(acc[a][seeds], acc[b][seeds], cfg.wilcoxon_min_seeds),
                "d_z": stats.cohens_dz(acc[a][seeds], acc[b][seeds]),
            }
            if len(seeds) > 1:  # one seed: training randomness unmeasured, nothing to decide with
                test = stats.crossed_test(ca, cb, groups.get(task))
                row["ci_low"], row["ci_high"] = test.ci(cfg.confidence)
                row["mdd"], row["mdd_upper"] = test.detectable(cfg.significance, cfg.power)
                row |= {
                    "units": test.units,
                    "p": test.p(),
                    "power": test.power(cfg.significance, cfg.gap / 100),
                    "seed_term": test.seed_term,
                    "unit_term": test.unit_term,
                    "residual_term": test.residual_term,
                }
            rows.append(row)
    numbers = pd.DataFrame(rows)
    if numbers.empty:  # the reference ran alone (run.methods: [])
        numbers = pd.DataFrame(columns=["task", "a", "b", "role", "seeds", "diff", "verdict"])
        return numbers, numbers, numbers
    for column in ("p", "ci_low", "ci_high", "mdd", "mdd_upper", "power", "units"):
        if column not in numbers:
            numbers[column] = np.nan
    numbers["p_adjusted"] = numbers.p
    numbers["gate"] = "open"
    for task in tasks:
        primary = numbers[(numbers.task == task) & (numbers.role == "primary")]
        secondary = (numbers.role == "secondary") & (numbers.task == task)
        numbers.loc[secondary, "p_adjusted"] = stats.holm(numbers.p[secondary])
        if len(primary) and primary.p.iloc[0] >= cfg.significance:  # the gatekeeper was tested and did not reject
            numbers.loc[secondary, "gate"] = "closed"
    numbers["verdict"] = [verdict(r, cfg) for _, r in numbers.iterrows()]

    fmt_p = lambda p: "n/a" if p is None or pd.isna(p) else (f"{p:.3f}" if p >= 0.001 else "<0.001")  # noqa: E731
    pp = lambda v: "n/a" if pd.isna(v) else f"{100 * v:.1f}"  # noqa: E731
    shown = pd.DataFrame(
        {
            "task": numbers.task,
            "comparison": numbers.a + " - " + numbers.b,
            "role": numbers.role,
            f"difference (pp) [{100 * cfg.confidence:.0f}% CI]": [
                f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]" if pd.notna(lo) else f"{100 * d:+.1f}"
                for d, lo, hi in zip(numbers["diff"], numbers.ci_low, numbers.ci_high)
            ],
            "p (Holm)": [
                fmt_p(p) if r in ("primary", "premise") else f"{fmt_p(p)} ({fmt_p(h)})"
                for p, h, r in zip(numbers.p, numbers.p_adjusted, numbers.role)
            ],
            f"detectable (pp, {100 * cfg.power:.0f}% power) [95% upper]": [
                f"{pp(m)} [{pp(u)}]" for m, u in zip(numbers.mdd, numbers.mdd_upper)
            ],
            f"power at {cfg.gap:g} pp": numbers.power.map(lambda v: "n/a" if pd.isna(v) else f"{v:.2f}"),
            "paired t p": numbers.p_t.map(fmt_p),
            f"Wilcoxon p (>= {cfg.wilcoxon_min_seeds} seeds)": numbers.p_wilcoxon.map(fmt_p),
            "d_z": numbers.d_z.map(lambda v: "n/a" if pd.isna(v) else f"{v:+.2f}"),
            "verdict": numbers.verdict,
        }
    ).set_index(["task", "comparison"])
    bold = pd.DataFrame(False, index=shown.index, columns=shown.columns)
    bold["verdict"] = numbers.verdict.str.startswith(("better", "worse")).to_numpy()
    return numbers, shown, bold


def verdict(r, cfg) -> str:
    """`better` or `worse` when the (Holm-corrected, for a secondary comparison) p is below the level; `equivalent`
    when the whole confidence interval lies within +-cfg.gap points (a "no difference" must be shown, not
    presumed from a p above the level); otherwise `inconclusive`. A secondary comparison is tested only when its
    task's primary one rejected (the primary comparison is the gatekeeper of the secondary family); the primary
    comparison and KD's premise are each tested at the full level."""
    if pd.isna(r.p):
        return "not tested (one seed)"
    if r.role == "secondary" and r.gate == "closed":
        return "not tested (primary did not reject)"
    if r.p_adjusted < cfg.significance:
        return "better" if r["diff"] > 0 else "worse"
    if -cfg.gap / 100 < r.ci_low and r.ci_high < cfg.gap / 100:
        return f"equivalent (within ±{cfg.gap:g} pp)"
    return f"inconclusive (CI wider than ±{cfg.gap:g} pp)"


def power_table(runs: pd.DataFrame, tasks: list[str], cfg, sig: pd.DataFrame):
    """The primary comparison's smallest detectable difference (at cfg.power, the full level) and its 95% upper
    confidence bound, for more seeds and larger test sets, projected from the variance terms that the
    significance table measured, with the training minutes each seed costs (every method's mean training time on
    the task, summed). Seeds, not test examples, are the lever where the seed term dominates."""
    rows = []
    for task in tasks:
        primary = sig[(sig.task == task) & (sig.role == "primary")]
        if primary.empty or pd.isna(primary.p.iloc[0]):  # one seed: the seed-to-seed variance is unknown
            continue
        r = primary.iloc[0]
        test = stats.Crossed(
            float(r["diff"]),
            int(r.seeds),
            int(r.units),
            int(r.examples),
            r.seed_term,
            r.unit_term,
            r.residual_term,
        )
        minutes = runs[runs.task == task].groupby("method").train_seconds.mean().sum() / 60
        for s in sorted({*POWER_SEEDS, test.seeds}):  # the measured seed count too: the report reads its row
            for k in POWER_EXAMPLES:
                mdd, upper = test.detectable(cfg.significance, cfg.power, s, round(k * test.examples))
                rows.append(
                    {
                        "task": task,
                        "comparison": f"{r.a} - {r.b}",
                        "seeds": s,
                        "multiple": k,
                        "examples": round(k * test.examples),
                        "mdd": mdd,
                        "mdd_upper": upper,
                        "minutes": s * minutes,
                        "measured": s == test.seeds and k == 1,
                    }
                )
    numbers = pd.DataFrame(rows)
    if numbers.empty:
        return numbers, numbers, numbers
    here = numbers[numbers.multiple == 1].set_index(["task", "seeds"])  # this test set
    shown = pd.DataFrame(
        {
            "training minutes": here.minutes.map(lambda v: f"{v:.0f}"),
            "test examples": here.examples.map(lambda v: f"{v:,}"),
        },
        index=here.index,
    )
    for k in POWER_EXAMPLES:
        at = numbers[numbers.multiple == k].set_index(["task", "seeds"]).loc[here.index]
        shown["this test set" if k == 1 else f"{k:g}x test"] = [
            f"{100 * m:.1f} [{100 * u:.1f}]" for m, u in zip(at.mdd, at.mdd_upper)
        ]
    return numbers, shown, pd.DataFrame(False, index=shown.index, columns=shown.columns)
