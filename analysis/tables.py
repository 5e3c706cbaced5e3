"""The paper's tables as DataFrames, and one writer for Markdown, LaTeX (booktabs) and CSV.

Each builder returns (numbers, shown, bold): `numbers` for the CSV, `shown` the formatted cells
(strings) for Markdown and LaTeX, `bold` a same-shaped mask of cells to mark (the best per column).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.io import atomic_path

from . import collect, stats


def pm(mean: float, std: float) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if np.isfinite(std) else f"{100 * mean:.1f}"


def method_order(methods, teachers: list[str], listed: list[str] = ()) -> list[str]:
    """No KD, each single teacher, the methods in the order of `listed` (run.methods), then RL-KD, then the rest."""
    fixed = list(dict.fromkeys(["ce", *(f"single_{t}" for t in teachers), *listed, "rl_kd"]))
    present = set(methods)
    return [m for m in fixed if m in present] + sorted(present - set(fixed))


def main_table(runs: pd.DataFrame, order: list[str], tasks: list[str]):
    """Test accuracy per method (rows) and task (columns) with the average over tasks (per seed first)."""
    g = runs.groupby(["method", "task"]).test_accuracy
    mean, std = g.mean().unstack()[tasks], g.std().unstack()[tasks]
    per_seed = runs[runs.task.isin(tasks)].groupby(["method", "seed"]).test_accuracy.mean().groupby("method")
    complete = runs.groupby("method").task.nunique() == len(tasks)  # an average needs every task
    mean["average"] = per_seed.mean().where(complete)
    std["average"] = per_seed.std().where(complete)
    mean, std = mean.loc[order], std.loc[order]
    seeds = runs.groupby("method").seed.nunique().loc[order]
    numbers = pd.concat({"mean": mean, "std": std}, axis=1)
    numbers.columns = [f"{task}_{stat}" for stat, task in numbers.columns]
    numbers["seeds"] = seeds
    shown = pd.DataFrame(
        {
            c: [pm(mean.loc[m, c], std.loc[m, c]) if pd.notna(mean.loc[m, c]) else "" for m in order]
            for c in mean.columns
        },
        index=pd.Index(order, name="method"),
    )
    shown["seeds"] = seeds.astype(str)
    bold = pd.DataFrame(False, index=shown.index, columns=shown.columns)
    for c in mean.columns:
        bold[c] = mean[c] == mean[c].max()
    return numbers, shown, bold


def teacher_table(teachers: pd.DataFrame, runs: pd.DataFrame, paper: pd.DataFrame):
    """Table 1: each teacher, and the student distilled from it alone; the paper's numbers beside ours
    where the task and teacher are the paper's (the paper profile)."""
    single = runs[runs.method.str.startswith("single_")].assign(teacher=lambda d: d.method.str[len("single_") :])
    s = single.groupby(["task", "teacher"]).test_accuracy.agg(["mean", "std"]).reset_index()
    df = teachers.merge(s, on=["task", "teacher"], how="left").rename(
        columns={"test_accuracy": "teacher_test", "mean": "student_test", "std": "student_std"}
    )
    df = df.merge(
        paper.rename(columns={"teacher_accuracy": "paper_teacher", "student_accuracy": "paper_student"}),
        on=["task", "teacher"],
        how="left",
    )
    for who in ("teacher", "student"):
        df[f"{who}_minus_paper"] = 100 * df[f"{who}_test" if who == "teacher" else "student_test"] - df[f"paper_{who}"]
    numbers = df[
        [
            "task",
            "teacher",
            "parameters",
            "teacher_test",
            "test_examples",
            "student_test",
            "student_std",
            "paper_teacher",
            "paper_student",
            "teacher_minus_paper",
            "student_minus_paper",
        ]
    ]
    shown = pd.DataFrame(
        {
            "task": df.task,
            "teacher": df.teacher,
            "parameters (M)": (df.parameters / 1e6).map("{:.1f}".format),
            "teacher test": (100 * df.teacher_test).map("{:.1f}".format),
            # a teacher may be scored on a sample of the test set (teachers.NAME.max_test); the students on all of it
            "teacher test examples": [f"{int(n):,}" if pd.notna(n) else "" for n in df.test_examples],
            "student (single teacher) test": [
                pm(m, s) if pd.notna(m) else "" for m, s in zip(df.student_test, df.student_std)
            ],
        }
    )
    if df.paper_teacher.notna().any():
        fmt = lambda v: "" if pd.isna(v) else f"{v:.1f}"  # noqa: E731
        shown["paper teacher"], shown["paper student"] = df.paper_teacher.map(fmt), df.paper_student.map(fmt)
        shown["ours - paper (teacher / student)"] = [
            "" if pd.isna(a) else f"{a:+.1f} / {b:+.1f}" for a, b in zip(df.teacher_minus_paper, df.student_minus_paper)
        ]
    bold = pd.DataFrame(False, index=shown.index, columns=shown.columns)
    for column, value in (("teacher test", "teacher_test"), ("student (single teacher) test", "student_test")):
        bold[column] = df[value] == df.groupby("task")[value].transform("max")
    return (
        numbers,
        shown.set_index(["task", "teacher"]),
        bold.set_index([df.task, df.teacher]).drop(columns=["task", "teacher"]),
    )


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


def significance_table(root, runs: pd.DataFrame, order: list[str], tasks: list[str], cfg):
    """Every declared comparison per task: the difference with its two-way bootstrap CI and p (seeds and test
    examples resampled: the verdict's test), the smallest difference it could detect (cfg.power) and its power
    to see cfg.gap points; the paired t-test, Wilcoxon and McNemar beside it, reported, not deciding (McNemar
    pools the seeds' predictions as if they were independent draws)."""
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
                    collect.correctness(root, method=method, seeds=sorted(acc[method].index), **where),
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


def compression_table(latency: list[dict]):
    """Each teacher and the student: size, CPU latency at batch 1 and 32, and the student's speed-up."""
    rows = []
    for entry in latency:
        models = {m["model"]: m for m in entry["models"]}
        student = models["student"]
        for name, m in models.items():
            rows.append(
                {
                    "task": entry["task"],
                    "model": name,
                    "parameters": m["parameters"],
                    "weight_mb": m["weight_bytes"] / 2**20,
                    "batch1_ms": m["batch1_ms"],
                    "batch32_ms": m["batch32_ms"],
                    "size_ratio": m["parameters"] / student["parameters"],
                    "speedup_batch1": m["batch1_ms"] / student["batch1_ms"],
                    "speedup_batch32": m["batch32_ms"] / student["batch32_ms"],
                }
            )
    numbers = pd.DataFrame(rows)
    shown = pd.DataFrame(
        {
            "task": numbers.task,
            "model": numbers.model,
            "parameters (M)": (numbers.parameters / 1e6).map("{:.2f}".format),
            "weights (MB)": numbers.weight_mb.map("{:.1f}".format),
            "batch 1 (ms)": numbers.batch1_ms.map("{:.1f}".format),
            "batch 32 (ms)": numbers.batch32_ms.map("{:.0f}".format),
            "x student size": numbers.size_ratio.map("{:.1f}".format),
            "x student time (batch 1 / 32)": [
                f"{a:.1f} / {b:.1f}" for a, b in zip(numbers.speedup_batch1, numbers.speedup_batch32)
            ],
        }
    ).set_index(["task", "model"])
    return numbers, shown, pd.DataFrame(False, index=shown.index, columns=shown.columns)


def to_markdown(shown: pd.DataFrame, bold: pd.DataFrame) -> str:
    cells = shown.where(~bold, "**" + shown.astype(str) + "**")
    return cells.reset_index().to_markdown(index=False)


def to_latex(shown: pd.DataFrame, bold: pd.DataFrame, caption: str, label: str) -> str:
    def tex(v) -> str:
        s = str(v)
        for a, b in (
            ("\\", r"\textbackslash{}"),
            ("_", r"\_"),
            ("%", r"\%"),
            ("&", r"\&"),
            ("#", r"\#"),
            ("±", r"$\pm$"),
            (">=", r"$\geq$"),
            ("<", r"$<$"),
        ):
            s = s.replace(a, b)
        return s

    flat = shown.reset_index()
    marks = bold.reset_index(drop=True).reindex(columns=flat.columns, fill_value=False)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\begin{tabular}{" + "l" * shown.index.nlevels + "r" * shown.shape[1] + "}",
        r"\toprule",
        " & ".join(tex(c) for c in flat.columns) + r" \\",
        r"\midrule",
    ]
    for i, row in flat.iterrows():
        cells = [rf"\textbf{{{tex(v)}}}" if marks.loc[i, c] else tex(v) for c, v in row.items()]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{tex(caption)}}}", rf"\label{{{label}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write(folder: Path, stem: str, caption: str, table) -> str:
    """Write STEM.csv, STEM.md and STEM.tex atomically; return the Markdown."""
    numbers, shown, bold = table
    folder.mkdir(parents=True, exist_ok=True)
    md = to_markdown(shown, bold)
    with atomic_path(folder / f"{stem}.csv") as tmp:
        numbers.to_csv(tmp, index=numbers.index.name is not None, float_format="%.6g")
    with atomic_path(folder / f"{stem}.md") as tmp:
        tmp.write_text(f"{caption}\n\n{md}\n")
    with atomic_path(folder / f"{stem}.tex") as tmp:
        tmp.write_text(to_latex(shown, bold, caption, f"tab:{stem}"))
    return md
