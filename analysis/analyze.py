"""Stage `analyze`: every run into the paper's tables, significance tests, figures and a report.

Usage: python -m analysis.analyze   (writes results/: tables/*.{md,tex,csv}, figures/*.{png,pdf},
metrics.json, report.md). It reads only what earlier stages wrote; it never trains anything.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline import methods as registry
from pipeline.io import atomic_path, provenance, write_json
from pipeline.params_file import InputError, reported_errors
from pipeline.schema import Params, load

from . import collect, decision, figures, tables
from .report import report_markdown
from .settings import Analysis as Settings
from .settings import settings

RESULTS = Path("results")
PAPER = Path(__file__).with_name("paper_results.csv")


def methods_of(params: Params) -> list[str]:
    # the stage distill's, the stage single's, and rl_kd, which runs in a stage of its own, always
    return [*params.run.methods, *(f"single_{t}" for t in params.run.single), "rl_kd"]


def check_runs(runs: pd.DataFrame, params: Params, cfg: Settings) -> None:
    """Every (task, method, seed) of params.yaml must have a run, before anything is written."""
    methods = methods_of(params)
    have = set(zip(runs.run_task, runs.method, runs.seed))
    missing = [
        f"runs/{t}/{m}/{s}/metrics.json"
        for t in params.run.tasks
        for m in methods
        for s in params.run.seeds
        if (t, m, s) not in have
    ]
    if missing:
        raise InputError(f"{len(missing)} run(s) missing, e.g. {missing[:3]}; run `dvc repro` first")
    if cfg.reference not in methods:
        raise InputError(
            f"analysis.reference: {cfg.reference!r} is not a method of this run; expected one of {methods}"
        )
    known = registry.names(params.run.teachers)  # a baseline that did not run: no primary comparison
    if cfg.baseline not in known:
        raise InputError(f"analysis.baseline: {cfg.baseline!r} is not a method; expected one of {known}")


def latencies(tasks: list[str], root: Path = Path(".")) -> list[dict]:
    return [json.loads((root / RESULTS / "latency" / f"{t}.json").read_text()) for t in tasks]


@dataclass
class Analysis:
    """The analyze stage's result: the tables (stem -> caption and table), figures, metrics and report."""

    tables: dict[str, tuple[str, tuple]]
    figures: dict[str, object]
    metrics: dict
    report: str
    runs: int


def analyze(params: Params, root: Path = Path(".")) -> Analysis:
    """Every run of `params` under `root` (runs/, models/, results/latency/) into tables, figures, metrics and
    a report; nothing is written. Refuses, naming what is missing, when a run that `params` asks for is not there."""
    cfg, tasks, names = settings(params), params.run.tasks, params.run.teachers
    runs_dir = root / "runs"
    runs = collect.runs(runs_dir)
    # only what params.yaml asks for: runs left over from other settings stay out of the tables
    runs = runs[runs.run_task.isin(tasks) & runs.seed.isin(params.run.seeds) & runs.method.isin(methods_of(params))]
    check_runs(runs, params, cfg)
    # the tables' columns: a task's evaluation sets (MNLI's one training run gives mnli_m and mnli_mm), else the task
    sets = [s for t in tasks for s in dict.fromkeys(runs[runs.run_task == t].task)]
    n_runs = len(runs.drop_duplicates(["run_task", "method", "seed"]))
    order = tables.method_order(runs.method.unique(), names, params.run.methods)
    hist = collect.histories(runs_dir)
    paper = pd.read_csv(PAPER)

    t1 = tables.teacher_table(collect.teachers(root / "models", tasks, names), runs, paper)
    t2 = tables.main_table(runs, order, sets)
    t3 = decision.significance_table(runs_dir, runs, order, sets, cfg)
    power = decision.power_table(runs, sets, cfg, t3[0])
    t4 = tables.compression_table(latencies(tasks, root))
    sel = pd.concat(
        [
            collect.selection_vs_correctness(t, names, params.run.seeds, runs_dir, root / "data", root / "logits")
            for t in tasks
        ],
        ignore_index=True,
    )
    spread = "mean ± std over seeds" if len(params.run.seeds) > 1 else "one seed"
    made = {
        "teachers": (
            "table1_teachers",
            f"Table 1: teachers and the student distilled from each alone (test accuracy, %; student {spread}).",
            t1,
        ),
        "main": ("table2_main", f"Table 2: test accuracy (%) of every method, {spread}; best per column in bold.", t2),
        "significance": (
            "table3_significance",
            f"Table 3: the declared comparisons, per task: the "
            f"primary one ({cfg.reference} - {cfg.baseline}) and the secondary ones (Holm); b / c: "
            "test predictions only the first / only the second got right, over all seeds.",
            t3,
        ),
        "power": (
            "table3_power",
            f"Power: the smallest difference (pp) that the primary comparison "
            f"detects with {100 * cfg.power:.0f}% power at {cfg.significance}, by seeds and test-set size, "
            "from its measured variance.",
            power,
        ),
        "compression": (
            "table4_compression",
            "Table 4: model size and CPU inference latency (forward pass on test inputs).",
            t4,
        ),
    }
    md = {k: tables.to_markdown(t[1], t[2]) for k, (_, _, t) in made.items()}
    shown = {
        "main_results": figures.main_results(runs, order, sets, cfg.confidence, cfg.reference),
        "rl_selection": figures.rl_selection(collect.policy_curve(runs_dir), collect.rewards(runs_dir), names, tasks),
        "selection_vs_correctness": figures.selection_vs_correctness(sel, names, tasks),
        "teacher_vs_student": figures.teacher_vs_student(t1[0]),
        "learning_curves": figures.learning_curves(hist[hist.task.isin(tasks)], order, tasks, cfg.reference),
    }
    if not power[0].empty:
        shown["power"] = figures.power(power[0], cfg.gap, cfg.power)

    main_numbers, sig = t2[0], t3[0]
    metrics = {
        "test_accuracy": {
            m: {
                c: round(float(main_numbers.loc[m, f"{c}_mean"]), 4)
                for c in [*sets, "average"]
                if pd.notna(main_numbers.loc[m, f"{c}_mean"])
            }
            for m in order
        },
        f"{cfg.reference}_significant_wins": int(((sig.a == cfg.reference) & (sig.verdict == "better")).sum()),
        f"{cfg.reference}_significant_losses": int(((sig.a == cfg.reference) & (sig.verdict == "worse")).sum()),
        "comparisons": [
            {
                k: (None if pd.isna(r[k]) else round(float(r[k]), 4))
                if k not in ("task", "a", "b", "role", "verdict")
                else r[k]
                for k in (
                    "task",
                    "a",
                    "b",
                    "role",
                    "diff",
                    "ci_low",
                    "ci_high",
                    "p",
                    "p_adjusted",
                    "mdd",
                    "power",
                    "verdict",
                )
            }
            for _, r in sig.iterrows()
        ],
        "seeds": params.run.seeds,
    }
    report = report_markdown(
        params, cfg, sets, n_runs, md, shown, runs=runs, t1=t1[0], sig=sig, power=power[0], t4=t4[0], sel=sel
    )
    return Analysis({stem: (caption, t) for stem, caption, t in made.values()}, shown, metrics, report, n_runs)


def write(analysis: Analysis, params: Params, folder: Path = RESULTS) -> None:
    """`folder`/tables/*.{md,tex,csv}, figures/*.{png,pdf}, metrics.json, report.md and provenance.json."""
    for stem, (caption, table) in analysis.tables.items():
        tables.write(folder / "tables", stem, caption, table)
    for stem, fig in analysis.figures.items():
        figures.save(fig, folder / "figures", stem)
    write_json(folder / "metrics.json", analysis.metrics)
    with atomic_path(folder / "report.md") as tmp:
        tmp.write_text(analysis.report)
    write_json(
        folder / "provenance.json",
        provenance(params.seed, {"analysis": settings(params).model_dump(), "run": params.run.model_dump()}),
    )


def main(params_path: str = "params.yaml") -> None:
    params = load(params_path)
    analysis = analyze(params)
    write(analysis, params)
    n_tables, n_figures = len(analysis.tables), len(analysis.figures)
    print(f"analyze: {analysis.runs} runs -> {RESULTS}/report.md, {n_tables} tables, {n_figures} figures", flush=True)


if __name__ == "__main__":
    with reported_errors():
        main(*sys.argv[1:])
