"""The report's prose: results/report.md, reading each table and figure in sentences made from its numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from pipeline import methods

from . import agents, tables
from .verdict import read_power, read_significance, read_verdict


def read_teachers(t1: pd.DataFrame) -> str:
    out = []
    for task, df in t1.groupby("task", sort=False):
        if df.minus_ce.notna().all():
            same = (df.test_examples == df.student_examples).all()
            out.append(
                f"On `{task}` every teacher is at least {df.minus_ce.min():.1f} points above the `ce` student's mean "
                f"(the weakest: `{df.loc[df.minus_ce.idxmin(), 'teacher']}`), "
                + (
                    "on the students' test examples."
                    if same
                    else "the teachers scored on a sample of the students' test examples (teachers.NAME.max_test)."
                )
            )
        if df.student_test.isna().all():
            out.append(f"On `{task}` no single-teacher student was run (add the teacher to run.single).")
            continue
        best_t, best_s = df.loc[df.teacher_test.idxmax()], df.loc[df.student_test.idxmax()]
        same = best_t.teacher == best_s.teacher
        out.append(
            f"On `{task}` the strongest teacher is `{best_t.teacher}` ({100 * best_t.teacher_test:.1f}); the "
            f"best single-teacher student learns from `{best_s.teacher}` ({100 * best_s.student_test:.1f})"
            + (" - the same teacher." if same else " - a stronger teacher did not give a stronger student.")
        )
        if df.student_test.notna().sum() > 1:
            spread = 100 * (df.student_test.max() - df.student_test.min())
            noise = (
                f", against a student standard deviation over seeds of up to {100 * df.student_std.max():.1f}"
                if df.student_std.notna().any()
                else ""
            )  # one seed: no standard deviation
            out.append(f"The single-teacher students span {spread:.1f} points{noise}.")
    if t1.paper_teacher.notna().any():
        out.append("The paper's Table 1 numbers stand beside ours where task and teacher match.")
    return " ".join(out)


def read_main(runs: pd.DataFrame, tasks: list[str], ref: str, baseline: str) -> str:
    out = []
    for task in tasks:
        m = runs[runs.task == task].groupby("method").test_accuracy.agg(["mean", "std"])
        ranked = m["mean"].sort_values(ascending=False)
        rank = list(ranked.index).index(ref) + 1
        against = [
            f"{100 * (m.loc[ref, 'mean'] - m.loc[b, 'mean']):+.1f} points against `{b}`"
            for b in dict.fromkeys((baseline, "ce"))
            if b in m.index
        ]
        out.append(
            f"On `{task}` the best mean is `{ranked.index[0]}` ({100 * ranked.iloc[0]:.1f}); `{ref}` ranks "
            f"{rank} of {len(ranked)} ({tables.pm(m.loc[ref, 'mean'], m.loc[ref, 'std'])})"
            + (", " + " and ".join(against) if against else "")
            + "."
        )
        if m["std"].notna().any() and ranked.max() - ranked.min() < 3 * m["std"].mean():
            out.append(f"All of `{task}`'s methods lie within three mean seed standard deviations of each other.")
    return " ".join(out)


def read_selection(sel: pd.DataFrame) -> str:
    """Per (task, teacher): the agent's mean final selection probability where the teacher is right and where it is
    wrong, and their difference per seed with its 95% t interval over seeds; "less where wrong" only where that
    interval lies below 0."""
    parts, fewer, pairs = [], 0, 0
    for (task, teacher), t in sel.groupby(["task", "teacher"], sort=False):
        gap = (t.wrong - t.right).dropna()
        head = f"`{task}`/`{teacher}` {t.right.mean():.2f} right v " + (
            f"{t.wrong.mean():.2f} wrong" if len(gap) else "- wrong (never wrong)"
        )
        if len(gap) > 1:
            half = stats.t.ppf(0.975, len(gap) - 1) * gap.std(ddof=1) / np.sqrt(len(gap))
            head += f" (wrong - right {gap.mean():+.3f} [{gap.mean() - half:+.3f}, {gap.mean() + half:+.3f}])"
            pairs += 1
            fewer += int(gap.mean() + half < 0)
        elif len(gap) == 1:
            head += f" (wrong - right {gap.iloc[0]:+.3f}, one seed)"
        parts.append(head)
    verdict = (
        f" The interval over seeds lies below 0, so the agent selects a teacher less where it is wrong, for {fewer} "
        f"of {pairs} (task, teacher) pairs."
        if pairs
        else " With one seed there is no interval over seeds, and no claim."
    )
    return (
        "Mean final selection probability where the teacher is right and where it is wrong on the training instance, "
        f"and the difference per seed with its 95% interval: {'; '.join(parts)}." + verdict
    )


def read_compression(comp: pd.DataFrame) -> str:
    out = []
    for task, df in comp.groupby("task", sort=False):
        teachers = df[df.model != "student"]
        small = teachers.loc[teachers.parameters.idxmin()]
        out.append(
            f"On `{task}` the student is {small.size_ratio:.1f}x smaller than the smallest teacher "
            f"(`{small.model}`) and {small.speedup_batch32:.1f}x faster at batch 32 "
            f"({small.speedup_batch1:.1f}x at batch 1)."
        )
    return " ".join(out)


def report_markdown(params, cfg, sets, n_runs, md, shown, *, runs, t1, sig, power, t4, sel, t5=None) -> str:
    """results/report.md: the verdict first, then each table and figure with the sentences that read it."""
    tasks = params.run.tasks
    return "\n".join(
        [
            "# Results",
            "",
            f"Written by `python -m analysis.analyze` (the `analyze` stage) from {n_runs} runs: tasks "
            f"{', '.join(f'`{t}`' for t in tasks)}"
            + (f" (evaluation sets {', '.join(f'`{s}`' for s in sets)})" if sets != tasks else "")
            + f", seeds {params.run.seeds}, teachers {', '.join(params.run.teachers)}.",
            "",
            "## Verdict",
            "",
            read_verdict(sig, cfg, {m: methods.module_of(m, params.methods) for m in params.run.agents}),
            "",
            "## Table 1: teachers and single-teacher students",
            "",
            md["teachers"],
            "",
            read_teachers(t1),
            "",
            "![teacher vs student](figures/teacher_vs_student.png)",
            "",
            "## Table 2: main comparison",
            "",
            md["main"],
            "",
            read_main(runs, sets, cfg.reference, cfg.baseline),
            "",
            "![main results](figures/main_results.png)",
            "",
            "## Table 3: the decision",
            "",
            md["significance"],
            "",
            read_significance(sig, cfg),
            "",
            "## Power",
            "",
            md["power"],
            "",
            read_power(power, cfg),
            "",
            *(["![power](figures/power.png)", ""] if "power" in shown else []),
            "## Table 4: compression",
            "",
            md["compression"],
            "",
            read_compression(t4),
            "",
            *(
                [
                    "## Table 5: the agents",
                    "",
                    md["agents"],
                    "",
                    agents.sentences(t5, params.run.teachers, cfg.baseline),
                    "",
                ]
                if "agents" in md
                else []
            ),
            f"## The agent `{cfg.reference}`: what it selects",
            "",
            "![selection](figures/rl_selection.png)",
            "",
            "![selection vs correctness](figures/selection_vs_correctness.png)",
            "",
            read_selection(sel),
            "",
            "## Learning curves",
            "",
            "![learning curves](figures/learning_curves.png)",
            "",
            "Tables are also in `tables/` as LaTeX (booktabs) and CSV; figures in `figures/` as PNG and PDF.",
            "",
        ]
    )
