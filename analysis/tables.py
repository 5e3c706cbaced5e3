"""The paper's tables as DataFrames, and one writer for Markdown, LaTeX (booktabs) and CSV.

Each builder returns (numbers, shown, bold): `numbers` for the CSV, `shown` the formatted cells
(strings) for Markdown and LaTeX, `bold` a same-shaped mask of cells to mark (the best per column).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.io import atomic_path


def pm(mean: float, std: float) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if np.isfinite(std) else f"{100 * mean:.1f}"


def method_order(methods, teachers: list[str], listed: list[str] = (), agents: list[str] = ()) -> list[str]:
    """No KD, each single teacher and the one chosen on dev, the methods in the order of `listed` (run.methods),
    W-Ensemble chosen on dev, U-Ensemble without each teacher, the agents in the order of `agents` (run.agents),
    then the rest."""
    singles, drops = [f"single_{t}" for t in teachers], [f"drop_{t}" for t in teachers]
    fixed = list(dict.fromkeys(["ce", *singles, "single_dev", *listed, "w_ensemble_dev", *drops, *agents]))
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


def teacher_table(
    teachers: pd.DataFrame,
    runs: pd.DataFrame,
    paper: pd.DataFrame,
    examples: dict | None = None,
    majority: dict | None = None,
):
    """Table 1: each teacher (dev and test), its margin over the `ce` student, the majority class's test accuracy,
    and the student distilled from it alone; the paper's numbers beside ours where the task and teacher are the
    paper's (the paper profile). `examples`: per task, the students' test examples (a teacher scored on fewer was
    scored on a sample of them); `majority`: per task, what predicting its most frequent class scores on test."""
    single = runs[runs.method.str.startswith("single_") & (runs.method != "single_dev")]
    single = single.assign(teacher=lambda d: d.method.str[len("single_") :])
    s = single.groupby(["task", "teacher"]).test_accuracy.agg(["mean", "std"]).reset_index()
    df = teachers.merge(s, on=["task", "teacher"], how="left").rename(
        columns={"test_accuracy": "teacher_test", "mean": "student_test", "std": "student_std"}
    )
    df = df.merge(
        paper.rename(columns={"teacher_accuracy": "paper_teacher", "student_accuracy": "paper_student"}),
        on=["task", "teacher"],
        how="left",
    )
    ce = runs[runs.method == "ce"].groupby("task").test_accuracy.mean()  # KD's premise: a teacher must know more
    df["minus_ce"] = 100 * (df.teacher_test - df.task.map(ce))
    df["student_examples"] = df.task.map(examples or {})
    df["majority"] = df.task.map(majority or {})
    for who in ("teacher", "student"):
        df[f"{who}_minus_paper"] = 100 * df[f"{who}_test" if who == "teacher" else "student_test"] - df[f"paper_{who}"]
    numbers = df[
        [
            "task",
            "teacher",
            "parameters",
            "dev_accuracy",
            "teacher_test",
            "test_examples",
            "minus_ce",
            "majority",
            "student_examples",
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
            "teacher dev": (100 * df.dev_accuracy).map("{:.1f}".format),
            "teacher test": (100 * df.teacher_test).map("{:.1f}".format),
            # a teacher may be scored on a sample of the test set (teachers.NAME.max_test); the students on all of it
            "teacher test examples": [f"{int(n):,}" if pd.notna(n) else "" for n in df.test_examples],
            "teacher - ce student (pp)": df.minus_ce.map(lambda v: "" if pd.isna(v) else f"{v:+.1f}"),
            "majority class test": df.majority.map(lambda v: "" if pd.isna(v) else f"{100 * v:.1f}"),
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
    columns = (("teacher dev", "dev_accuracy"), ("teacher test", "teacher_test"))
    for column, value in (*columns, ("student (single teacher) test", "student_test")):
        bold[column] = df[value] == df.groupby("task")[value].transform("max")
    return (
        numbers,
        shown.set_index(["task", "teacher"]),
        bold.set_index([df.task, df.teacher]).drop(columns=["task", "teacher"]),
    )


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
        numbers.to_csv(tmp, index=numbers.index.name is not None, float_format="%.6g", encoding="utf-8")
    with atomic_path(folder / f"{stem}.md") as tmp:
        tmp.write_text(f"{caption}\n\n{md}\n", encoding="utf-8")  # the ± of mean ± std, whatever the locale
    with atomic_path(folder / f"{stem}.tex") as tmp:
        tmp.write_text(to_latex(shown, bold, caption, f"tab:{stem}"), encoding="utf-8")
    return md
