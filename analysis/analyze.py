"""Stage `analyze`: every run into the paper's tables, significance tests, figures and a report.

Usage: python -m analysis.analyze [--params PATH]   (writes results/: tables/*.{md,tex,csv},
figures/*.{png,pdf}, metrics.json, report.md, provenance.json, as one set: all of them or, on any error, none).
It reads only what earlier stages wrote, each file through a check; it never trains anything.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline import methods as registry
from pipeline.io import provenance, write_json
from pipeline.params_file import InputError, arguments, reported_errors
from pipeline.schema import Params, load

from . import agents as agents_of
from . import collect, decision, figures, run_files, selection, tables
from .report import report_markdown
from .settings import Analysis as Settings
from .settings import settings
from .verdict import agreement, verdict_sentences

RESULTS = Path("results")
# what the stage writes under results/ (dvc.yaml's analyze outs and metrics); results/ holds other stages' too
OUTS = ("tables", "figures", "metrics.json", "report.md", "provenance.json")
STAGING = ".analyze.partial"  # beside them: the new set is written here whole, then moved into place
PAPER = Path(__file__).with_name("paper_results.csv")


def methods_of(params: Params) -> list[str]:
    """The rows that ran: every student stage's (the registry's `rows`)."""
    return list(dict.fromkeys(registry.rows(params)))


def runs_of(params: Params, root: Path = Path(".")) -> run_files.Runs:
    """Exactly the runs that params.yaml asks for, every (task, method, seed): every table and figure is made of
    these, and runs left in runs/ by other settings (another seed, a method since dropped) are not even read."""
    run = params.run
    keys = [(t, m, s) for t in run.tasks for m in methods_of(params) for s in run.seeds]
    return run_files.Runs.of(root / "runs", keys, registry.listed(params))


def check_runs(tree: run_files.Runs, params: Params, cfg: Settings) -> None:
    """Every (task, method, seed) of params.yaml must have a run, before anything is read or written."""
    methods = methods_of(params)
    missing = [k for k in tree.keys if not tree.path(k, "metrics.json").is_file()]
    if missing:
        named = "; ".join(f"{tree.path(k, 'metrics.json')} (`{tree.stage(k)}`)" for k in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise InputError(f"{len(missing)} run(s) missing: {named}{more}; run `dvc repro` first")
    if not cfg.references:
        raise InputError("analysis.references: no agent to test (run.agents is empty); name the rows it tests")
    for reference in cfg.references:
        if reference not in methods:
            raise InputError(
                f"analysis.references: {reference!r} is not a method of this run; expected one of {methods}"
            )
    known = registry.names(params.run.teachers, params.methods)  # a baseline that did not run: no primary comparison
    if cfg.baseline not in known:
        raise InputError(f"analysis.baseline: {cfg.baseline!r} is not a method; expected one of {known}")


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
    a report; nothing is written. Refuses, naming what is missing, when a run that `params` asks for is not there,
    and, naming the file and the stage that writes it, when a file it reads is missing, damaged or disagrees
    with another (a run's metrics.json with its predictions)."""
    cfg, tasks, names = settings(params), params.run.tasks, params.run.teachers
    tree = runs_of(params, root)
    check_runs(tree, params, cfg)
    tree = selection.choose(tree, params.run)  # the baselines at their strongest: chosen per seed on dev
    # every input read and checked before anything is computed; every table and figure from the runs of `tree`
    runs = run_files.runs(tree)
    hist = collect.histories(tree)
    policy, steps = collect.policy_curve(tree, names, cfg.reference), collect.rewards(tree, cfg.reference)
    teachers = collect.teachers(root / "models", tasks, names)
    latency = collect.latencies(root, tasks, names)
    sel = pd.concat(
        [
            collect.selection_vs_correctness(
                t,
                names,
                params.run.seeds,
                tree,
                cfg.reference,
                root / "data",
                root / "logits",
                max_train=params.distill.max_train,
                seed=params.seed,
            )
            for t in tasks
        ],
        ignore_index=True,
    )
    # the tables' columns: a task's evaluation sets (MNLI's one training run gives mnli_m and mnli_mm), else the task
    sets = [s for t in tasks for s in dict.fromkeys(runs[runs.run_task == t].task)]
    n_runs = len(runs.drop_duplicates(["run_task", "method", "seed"]))
    order = tables.method_order(runs.method.unique(), names, params.run.methods, params.run.agents)
    paper = pd.read_csv(PAPER)

    groups = {  # per evaluation set, its test examples' groups in id order (rt: movies), as the runs predicted them
        s: collect.test_groups(root / "data", *runs[runs.task == s][["run_task", "eval_set"]].iloc[0]) for s in sets
    }
    majority = {
        s: collect.majority(root / "data", *runs[runs.task == s][["run_task", "eval_set"]].iloc[0]) for s in sets
    }
    degenerate = collect.degenerate(teachers, majority)
    t1 = tables.teacher_table(teachers, runs, paper, {s: len(g) for s, g in groups.items()}, majority)
    t2 = tables.main_table(runs, order, sets)
    agents = params.run.agents
    t3 = decision.significance_table(tree, runs, order, sets, cfg, groups, agents, teachers, degenerate)
    power = decision.power_table(runs, sets, cfg, t3[0])
    agent_runs = agents_of.records(tree, agents, names)
    t5 = agents_of.agent_table(
        agent_runs, agents_of.versus(tree, runs, agents, cfg.baseline, sets, cfg, groups), names, cfg.baseline
    )
    t4 = tables.compression_table(latency)
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
            f"Table 3: the declared comparisons, per task: the primary one ({cfg.reference} - {cfg.baseline}), "
            "which gates the secondary ones (Holm); a t test over seeds that counts test sampling, 'equivalent' "
            "only by a confidence interval within the gap (docs/statistics.md).",
            t3,
        ),
        "power": (
            "table3_power",
            f"Power: the smallest difference (pp) that the primary comparison "
            f"detects with {100 * cfg.power:.0f}% power at {cfg.significance}, by seeds and test-set size, "
            "from its measured variance, with its one-sided 95% upper bound in brackets.",
            power,
        ),
        "compression": (
            "table4_compression",
            "Table 4: model size and CPU inference latency (forward pass on test inputs).",
            t4,
        ),
        "agents": (
            "table5_agents",
            f"Table 5: what each agent did (means over seeds): its difference from {cfg.baseline} with the deciding "
            "test's interval, the guard's choices, the policy's steps, the last epoch's share of instances with "
            "equal weights and with no teacher, each teacher's mean weight and selection rate.",
            t5,
        ),
    }
    if t5[0].empty:  # no agent ran
        del made["agents"]
    md = {k: tables.to_markdown(t[1], t[2]) for k, (_, _, t) in made.items()}
    shown = {
        "main_results": figures.main_results(runs, order, sets, cfg.confidence, cfg.reference),
        "rl_selection": figures.rl_selection(policy, steps, names, tasks),
        "selection_vs_correctness": figures.selection_vs_correctness(sel, names, tasks),
        "teacher_vs_student": figures.teacher_vs_student(t1[0]),
        "learning_curves": figures.learning_curves(hist, order, tasks, cfg.reference),
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
                    "mdd_upper",
                    "power",
                    "verdict",
                )
            }
            for _, r in sig.iterrows()
        ],
        "seeds": params.run.seeds,
        # the verdict's answers in sentences with their numbers: README's "What it finds" quotes the study's
        "findings": [
            s
            for task, t in sig.groupby("task", sort=False)
            for s in verdict_sentences(
                task, t, cfg, {m: registry.module_of(m, params.methods) for m in params.run.agents}, brief=True
            )
        ]
        + agreement(sig, cfg.baseline),
    }
    report = report_markdown(
        params, cfg, sets, n_runs, md, shown, runs=runs, t1=t1[0], sig=sig, power=power[0], t4=t4[0], sel=sel, t5=t5[0]
    )
    return Analysis({stem: (caption, t) for stem, caption, t in made.values()}, shown, metrics, report, n_runs)


def render(analysis: Analysis, params: Params, folder: Path) -> None:
    """`folder`/tables/*.{md,tex,csv}, figures/*.{png,pdf}, metrics.json, report.md and provenance.json."""
    for stem, (caption, table) in analysis.tables.items():
        tables.write(folder / "tables", stem, caption, table)
    for stem, fig in analysis.figures.items():
        figures.save(fig, folder / "figures", stem)
    write_json(folder / "metrics.json", analysis.metrics)
    (folder / "report.md").write_text(analysis.report, encoding="utf-8")
    write_json(
        folder / "provenance.json",
        provenance(params.seed, {"analysis": settings(params).model_dump(), "run": params.run.model_dump()}),
    )


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def publish(staging: Path, folder: Path) -> None:
    """Move the set rendered in `staging`/new into `folder`, each of OUTS in place of the old one (moved aside
    to `staging`/old first: a folder is replaced whole, so no figure of an older set stays among the new ones).
    A failure part-way puts the old ones back."""
    new, old = staging / "new", staging / "old"
    old.mkdir()
    moved = []  # the OUTS whose old version, if they had one, is in old/
    try:
        for name in OUTS:
            target = folder / name
            if target.exists() or target.is_symlink():
                os.replace(target, old / name)
            moved.append(name)
            os.replace(new / name, target)
    except BaseException:
        for name in reversed(moved):
            target = folder / name
            if not (new / name).exists():  # the new one went in: out with it
                remove(target)
            if (old / name).exists() or (old / name).is_symlink():
                os.replace(old / name, target)
        raise


def write(analysis: Analysis, params: Params, folder: Path = RESULTS) -> None:
    """The set of OUTS under `folder`, as one: rendered whole into a hidden staging folder beside them, then
    moved into place. A failure anywhere leaves the old set as it was and no staging folder; the rest of
    `folder` (results/latency/, results/benchmarks.json: other stages' outputs) is never touched."""
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / STAGING
    remove(staging)  # left by a run that was killed
    published = False
    try:
        staging.mkdir()
        render(analysis, params, staging / "new")
        publish(staging, folder)
        published = True
    except OSError as err:  # the machine refused a write (a file-size limit, a full disk): name the output
        if err.filename and str(staging / "new") in str(err.filename):
            err.filename = str(err.filename).replace(str(staging / "new"), str(folder))
        raise
    finally:
        figures.close(analysis.figures.values())  # the ones a failure left unsaved
        old = staging / "old"
        # kept only where putting the old set back failed too: what it could not put back is there
        if published or not (old.is_dir() and any(old.iterdir())):
            remove(staging)


def main(params_path: str = "params.yaml") -> None:
    params = load(params_path)
    analysis = analyze(params)
    write(analysis, params)
    n_tables, n_figures = len(analysis.tables), len(analysis.figures)
    print(f"analyze: {analysis.runs} runs -> {RESULTS}/report.md, {n_tables} tables, {n_figures} figures", flush=True)


if __name__ == "__main__":
    args = arguments(__spec__.name, __doc__)
    with reported_errors():
        main(args.params)
