"""The decision: the comparisons declared before any number is seen, each with its two-way bootstrap interval,
p and Holm adjustment, the smallest difference it can detect, and its verdict (docs/statistics.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import run_files, stats

FIXED_KD = ("u_ensemble", "w_ensemble", "best_single", "lr_ensemble")  # KD with fixed teacher weights


def comparisons(
    order: list[str],
    references: list[str],
    baseline: str,
    strongest: str | None = None,
    premise: str | None = None,
    table1: tuple[str, str] | None = None,
) -> list[tuple[str, str, str, str]]:
    """(a, b, role, family) for one task, declared before the runs that decide them (docs/statistics.md): per
    agent of `references`, its primary family, the agent against the `strongest` baseline on dev and against
    `baseline` (Holm within the family); KD's premise, the `premise` method (the best fixed-weight KD method on dev)
    against `ce`; Table 1's finding, the best single-teacher student on dev against the strongest teacher's
    (`table1`); then the secondary family: each agent of `references` against every other row, and each other
    fixed-weight KD method against `ce`."""
    out = []
    for ref in (r for r in references if r in order):
        family = dict.fromkeys(b for b in (strongest, baseline) if b in order and b != ref)
        out += [(ref, b, "primary", ref) for b in family]
    if premise in order and "ce" in order and premise not in (*references, "ce"):
        out.append((premise, "ce", "premise", "premise"))
    if table1 is not None and all(m in order for m in table1) and table1[0] != table1[1]:
        out.append((*table1, "table1", "table1"))
    declared = {(a, b) for a, b, *_ in out}
    for ref in (r for r in references if r in order):
        out += [(ref, m, "secondary", "secondary") for m in order if m != ref and (ref, m) not in declared]
    if "ce" in order:
        fixed = [m for m in order if m in FIXED_KD and m not in (*references, premise)]
        out += [(m, "ce", "secondary", "secondary") for m in fixed if (m, "ce") not in declared]
    return out


def best_on_dev(runs: pd.DataFrame) -> str | None:
    """The fixed-weight KD method with the highest mean dev accuracy over its seeds: KD's best baseline, chosen
    on dev so that the premise's test is not chosen by its own test scores."""
    kd = runs[runs.method.isin(FIXED_KD)]
    return None if kd.empty else str(kd.groupby("method").dev_accuracy.mean().idxmax())


def strongest(runs: pd.DataFrame, order: list[str], agents) -> str | None:
    """The strongest baseline: of the rows that are not agents (run.agents), the one with the highest mean dev
    accuracy over its seeds, ties to the first in `order` (Table 2's). Test accuracy never enters."""
    dev = runs[~runs.method.isin(agents)].groupby("method").dev_accuracy.mean()
    ranked = [m for m in order if m in dev.index]
    return max(ranked, key=lambda m: (dev[m], -ranked.index(m))) if ranked else None


def table1_pair(runs: pd.DataFrame, teachers: pd.DataFrame, task: str) -> tuple[str, str] | None:
    """Table 1's finding as a comparison: the single-teacher student with the highest mean dev accuracy against
    the student of the teacher with the highest dev accuracy (both chosen on dev); None with fewer than two."""
    single = runs[runs.method.str.startswith("single_") & (runs.method != "single_dev")]
    dev = single.groupby("method").dev_accuracy.mean()
    t = teachers[teachers.task == task]
    if len(dev) < 2 or t.empty or "dev_accuracy" not in t:
        return None
    strongest_teacher = f"single_{t.loc[t.dev_accuracy.idxmax(), 'teacher']}"
    return (str(dev.idxmax()), strongest_teacher) if strongest_teacher in dev.index else None


def compare(tree: run_files.Runs, runs: pd.DataFrame, task: str, a: str, b: str, cfg, groups: dict) -> dict:
    """The deciding test of `a` - `b` on one task (evaluation set), over the seeds both ran: the difference, its
    interval at cfg.confidence and its p (no correction: a description, not a declared comparison)."""
    t_runs = runs[runs.task == task]
    where = dict(task=t_runs.run_task.iloc[0], eval_set=t_runs.eval_set.iloc[0])
    seeds = sorted(set(t_runs[t_runs.method == a].seed) & set(t_runs[t_runs.method == b].seed))
    ca, cb = (run_files.correctness(tree, method=m, seeds=seeds, **where) for m in (a, b))
    if len(seeds) < 2:
        return {"diff": float((ca - cb).mean()), "ci_low": np.nan, "ci_high": np.nan, "p": np.nan}
    test = stats.crossed_test(ca, cb, groups.get(task))
    low, high = test.ci(cfg.confidence)
    return {"diff": test.diff, "ci_low": low, "ci_high": high, "p": test.p()}


POWER_SEEDS = (3, 5, 10, 20, 30)
POWER_EXAMPLES = (0.5, 1, 2)  # multiples of the test set: seeds, not examples, are the lever


def significance_table(
    tree: run_files.Runs,
    runs: pd.DataFrame,
    order: list[str],
    tasks: list[str],
    cfg,
    groups: dict,
    agents=(),
    teachers: pd.DataFrame | None = None,
    degenerate: dict | None = None,
):
    """Every declared comparison per task, decided by `stats.crossed_test` (seeds crossed with test units, a t
    test on S - 1 degrees of freedom): the difference with its CI and p, Holm within the secondary family, which
    the primary comparison gates (tested only once the primary one rejects; KD's premise is tested on its own, at
    the full level, like the primary one); the smallest difference it could
    detect (cfg.power) with its upper confidence bound, and its power to see cfg.gap points. The paired t-test
    and Wilcoxon on per-seed accuracies stand beside it, reported, not deciding. `tree`: the runs of `runs`, whose
    predictions it reads; `groups`: per task (evaluation set), its test examples' groups in id order (rt: movies),
    the unit that test sampling draws. `agents`: run.agents, never a baseline; `teachers`: the teachers' records (for
    Table 1's finding); `degenerate`: per task, why its comparisons cannot say anything (its teachers no better than
    the majority class), where that is so."""
    rows, degenerate = [], degenerate or {}
    teachers = pd.DataFrame(columns=["task", "teacher", "dev_accuracy"]) if teachers is None else teachers
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
        declared = comparisons(
            ran,
            cfg.references,
            cfg.baseline,
            strongest(t_runs, ran, agents),
            best_on_dev(t_runs),
            table1_pair(t_runs, teachers, task),
        )
        for a, b, role, family in declared:
            seeds = sorted(set(acc[a].index) & set(acc[b].index))
            ca, cb = correctness(a, seeds), correctness(b, seeds)
            row = {"task": task, "a": a, "b": b, "role": role, "family": family, "seeds": len(seeds)}
            row |= {"examples": ca.shape[1], "degenerate": degenerate.get(task)}
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
                    "var": test.var,
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
        here = numbers.task == task
        for family in numbers[here & (numbers.role == "primary")].family.unique():  # Holm within each agent's family
            members = here & (numbers.role == "primary") & (numbers.family == family)
            numbers.loc[members, "p_adjusted"] = stats.holm(numbers.p[members])
        primary = numbers[here & (numbers.role == "primary")]
        secondary = (numbers.role == "secondary") & here
        numbers.loc[secondary, "p_adjusted"] = stats.holm(numbers.p[secondary])
        # the gatekeepers were tested and none rejected: the secondary family is reported, not tested
        if len(primary) and not (primary.p_adjusted < cfg.significance).any():
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
    """`better` or `worse` when the Holm-corrected p (within an agent's primary family, or the secondary family) is
    below the level; `equivalent` when the whole confidence interval lies within +-cfg.gap points (a "no
    difference" must be shown, not presumed from a p above the level); otherwise `inconclusive`. `degenerate` where
    the comparison cannot say anything: the task's teachers are no better than the majority class, or the two arms'
    correctness never differs across seeds (a zero variance: an interval of [0, 0] is no evidence of equivalence).
    A secondary comparison is tested only when a primary comparison of its task rejected (the gatekeepers);
    KD's premise and Table 1's finding are each tested at the full level."""
    if isinstance(r.get("degenerate"), str):
        return f"degenerate ({r.degenerate})"
    if r.get("var") == 0:
        return "degenerate (no variance: the two arms' correctness differs by the same amount in every seed)"
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
