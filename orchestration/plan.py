"""What a parameter file will run, printed before anything runs: stages, runs, data sizes, and an
estimate of accelerator hours. Needs no network and no data.

Usage: python -m orchestration.plan [PARAMS] [--base-ex-s N] [--student-ex-s N]
Sizes come from the prepared task card where one exists, else from GLUE's published split sizes,
else from the task's caps. Throughputs are assumptions (flags), not measurements: the estimate is
examples processed divided by them.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from pipeline import methods, user_data
from pipeline.io import remove_stale
from pipeline.params_file import InputError, reported_errors
from pipeline.schema import Params, load
from pipeline.splits import load_card

from . import cluster as cluster_settings
from .stages import WAVES

# GLUE split sizes (train, validation), as published; dev is carved out of train by `dev_fraction`
GLUE_SIZES = {
    "sst2": (67_349, 872),
    "mrpc": (3_668, 408),
    "qqp": (363_846, 40_430),
    "mnli": (392_702, 9_815 + 9_832),
    "mnli_matched": (392_702, 9_815),
    "mnli_mismatched": (392_702, 9_832),
    "qnli": (104_743, 5_463),
    "rte": (2_490, 277),
}
# a task tested on several evaluation sets that share its training set: the sets' sizes
GLUE_EVAL_SIZES = {"mnli": {"mnli_m": 9_815, "mnli_mm": 9_832}}


OUTPUTS = ("data", "models", "logits", "runs", "results")  # where the stages write


def sweep(roots=OUTPUTS) -> list[Path]:
    """Remove what killed stages left in the output folders (io.atomic_path's partials of ended processes)."""
    removed = []
    for root in map(Path, roots):
        folders = [root, *root.rglob("*")] if root.is_dir() else []
        for folder in folders:
            if folder.is_dir():  # not one removed a moment ago
                removed += remove_stale(folder)
    return removed


def task_sizes(name: str, spec) -> dict | None:
    if (Path("data") / name / "card.json").is_file():
        try:
            return load_card(Path("data") / name, spec)["sizes"]
        except InputError:  # damaged or stale: `dvc repro` prepares it again
            pass
    if spec.source == "glue":
        train, test = GLUE_SIZES[spec.name]
        dev = round(train * spec.dev_fraction)
        sizes = {"train": train - dev, "dev": dev, "test": test}
    else:
        sizes = {"train": spec.max_train, "dev": spec.max_dev, "test": spec.max_test}
        if None in sizes.values():
            return None
    caps = {"train": spec.max_train, "dev": spec.max_dev, "test": spec.max_test}
    return {k: min(v, caps[k]) if caps[k] else v for k, v in sizes.items()}


def check(path: str | Path = "params.yaml") -> tuple[Params, dict, object]:
    """Every section of the file, as the stages that read them check it: (params, each method's settings, the
    cluster's). `make repro` runs this first: DVC reads the stages' outputs before any stage's own check runs."""
    from analysis.settings import settings as analysis_settings

    params = load(path)
    user_data.check(Path("user_data"))  # before DVC hashes it: a FIFO there would hang `dvc status`
    chosen = methods.run_methods(params, path)
    analysis_settings(params, path)
    return params, chosen, cluster_settings.settings(path)


def task_hours_by_kind(
    params: Params, sizes: dict, base_ex_s: float, student_ex_s: float, chosen: dict | None = None
) -> dict[str, float]:
    """Accelerator hours of one task by stage kind: every teacher's fine-tuning (with its test pass) and
    caching, every student run (training passes count 3x a forward pass), and what a method's run processes
    beyond that (its registration's `extra_examples`: RL-KD's pre-training and reward passes). `chosen`: every
    run's method and its settings (methods.run_methods'), which it works out where not given."""
    run, d = params.run, params.distill
    chosen = methods.run_methods(params) if chosen is None else chosen
    hours = dict.fromkeys(("finetune", "cache", *methods.stages()), 0.0)
    for teacher in run.teachers:
        t = params.teachers[teacher]
        train = min(sizes["train"], t.max_train or sizes["train"])
        points = len(t.points())
        hours["finetune"] += (
            points * (3 * t.epochs * train + sizes["dev"] * t.epochs + sizes["test"]) / base_ex_s / 3600
        )
        hours["cache"] += points * (sizes["train"] + sizes["dev"]) / base_ex_s / 3600
    train = min(sizes["train"], d.max_train or sizes["train"])
    per_run = 3 * d.epochs * train + d.epochs * sizes["dev"] + sizes["test"]
    scale = len(d.points()) * len(run.seeds) / student_ex_s / 3600
    for name, settings in chosen.items():
        extra = methods.load(name, params.methods).extra_examples
        examples = per_run + (extra(settings, d, {**sizes, "train": train}) if extra else 0)
        hours[methods.stage_of(name, params.methods)] += examples * scale
    return hours


def task_hours(params: Params, sizes: dict, base_ex_s: float, student_ex_s: float, chosen=None) -> float:
    return sum(task_hours_by_kind(params, sizes, base_ex_s, student_ex_s, chosen).values())


def wave_lines(jobs: dict, counts: dict[str, int], hours: dict[str, float], longest: dict[str, float]) -> list[str]:
    """The table of `python -m orchestration.cluster`'s waves: jobs (one a stage on SLURM), each kind's GPUs and
    time limit (cluster.jobs), the estimated hours of the longest job and of the whole wave."""
    lines = [
        f"{'wave':<6}{'stages':<34}{'jobs':>6}{'GPUs/job':>12}{'time limit':>20}{'longest job':>13}{'accel. hours':>14}"
    ]
    short = []
    for number, wave in enumerate(WAVES, 1):
        n = sum(counts.get(k, 0) for k in wave)
        gpus = "/".join(str(jobs[k].gpus) for k in wave)
        limit = "/".join(f"{jobs[k].timeout_min / 60:g}h" for k in wave)
        long = max(longest.get(k, 0.0) for k in wave)
        lines.append(
            f"{number:<6}{' + '.join(wave):<34}{n:>6}{gpus:>12} {limit:>19}{long:>12.1f}h"
            f"{sum(hours.get(k, 0.0) for k in wave):>14.1f}"
        )
        short += [k for k in wave if longest.get(k, 0.0) * 60 > jobs[k].timeout_min]
    if short:
        lines.append(
            f"cluster.jobs: the longest {short} job(s) are estimated to run past their time limit "
            "(timeout_min); SLURM would stop them, and each retry would stop at the same point"
        )
    return lines


def plan(params: Params, base_ex_s: float, student_ex_s: float, chosen=None, cluster=None) -> tuple[list[str], float]:
    """Return the report's lines and the estimated hours (`chosen`: every run's method and its settings;
    `cluster`: the cluster's)."""
    run, cluster, listed = params.run, cluster or cluster_settings.Cluster(), methods.listed(params)
    rows = [m for names in listed.values() for m in names]
    lines = [
        f"tasks {len(run.tasks)}, teachers {len(run.teachers)}, methods {len(rows)} (agents: "
        f"{', '.join(run.agents) or 'none'}), seeds {len(run.seeds)}",
        "",
    ]
    lines.append(f"{'task':<18}{'source':<16}{'train':>10}{'dev':>9}{'test':>9}")
    by_kind, longest, unknown, shared = {}, {}, [], []
    for name in run.tasks:
        spec = params.tasks[name]
        sizes = task_sizes(name, spec)
        label = spec.name if spec.source == "glue" else spec.source
        if sizes is None:
            unknown.append(name)
            lines.append(f"{name:<18}{label:<16}{'unknown until prepared':>28}")
            continue
        lines.append(f"{name:<18}{label:<16}{sizes['train']:>10,}{sizes['dev']:>9,}{sizes['test']:>9,}")
        own = params.for_task(name)  # its teachers' and students' sizes as its stages read them
        per_stage = {"finetune": len(run.teachers), "cache": len(run.teachers)}
        per_stage |= {stage: len(names) * len(run.seeds) for stage, names in listed.items()}
        for k, h in task_hours_by_kind(own, sizes, base_ex_s, student_ex_s, chosen).items():
            by_kind[k] = by_kind.get(k, 0.0) + h
            longest[k] = max(longest.get(k, 0.0), h / max(per_stage[k], 1))
        if spec.source == "glue" and spec.name in GLUE_EVAL_SIZES:
            # what two tasks, one per evaluation set, would cost on top: everything trained a second time
            apart = sum(
                task_hours(own, {**sizes, "test": n}, base_ex_s, student_ex_s, chosen)
                for n in GLUE_EVAL_SIZES[spec.name].values()
            )
            shared.append(
                (
                    name,
                    list(GLUE_EVAL_SIZES[spec.name]),
                    apart - task_hours(own, sizes, base_ex_s, student_ex_s, chosen),
                )
            )
    stages = {
        "assets": 1,
        "prepare": len(run.tasks),
        "finetune": len(run.tasks) * len(run.teachers),
        "cache": len(run.tasks) * len(run.teachers),
        **{stage: len(run.tasks) * len(names) * len(run.seeds) for stage, names in listed.items()},
        "latency": len(run.tasks),
        "analyze": 1,
    }
    lines += ["", "stages: " + ", ".join(f"{k} x{v}" for k, v in stages.items()) + f" ({sum(stages.values())} in all)"]
    hours = sum(by_kind.values())
    grids = {f"teachers.{t}": len(params.teachers[t].points()) for t in run.teachers} | {
        "distill": len(params.distill.points())
    }
    if any(n > 1 for n in grids.values()):
        lines.append(
            "grids (settings trained per run, best on dev): " + ", ".join(f"{k} {n}" for k, n in grids.items() if n > 1)
        )
    encoders = [(f"teachers.{t}", params.teachers[t]) for t in run.teachers] + [("student", params.student)]
    hub = sorted({s.name for _, s in encoders if s.source == "hub"})
    glue = sorted({params.tasks[t].name for t in run.tasks if params.tasks[t].source == "glue"})
    for name, sets, saved in shared:
        per_task = 2 * len(run.teachers) + len(rows) * len(run.seeds) + 2  # finetune, cache, students, prepare, latency
        lines.append(
            f"{name}: {' and '.join(sets)} share one training set: each teacher is fine-tuned and cached once "
            f"and each student trained once, then tested on both ({per_task * (len(sets) - 1)} stages and "
            f"{saved:.1f} accelerator hours fewer than one task per set)"
        )
    if hub or glue:
        lines.append(f"needs a model hub for {hub} and the datasets hub for GLUE {glue} (or local caches of both)")
    lines.append(
        f"estimate: {hours:.1f} accelerator hours at {base_ex_s:g} examples/s for a teacher and "
        f"{student_ex_s:g} for the student (assumed, not measured; set --base-ex-s / --student-ex-s)"
    )
    if unknown:
        lines.append(f"not counted: {unknown} (sizes unknown until `dvc repro prepare`)")
    lines += [
        "",
        "on a cluster (python -m orchestration.cluster; `assets` runs first, on the submitting machine):",
        *wave_lines(cluster.jobs, stages, by_kind, longest),
    ]
    return lines, hours


def speed(text: str) -> float:
    """An examples/s option: a positive, finite number (0 would divide by zero; a negative, negative hours)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of examples per second, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m orchestration.plan", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml", metavar="PATH", help="the parameter file (default: %(default)s)")
    ap.add_argument(
        "--base-ex-s",
        type=speed,
        default=500.0,
        help="teacher forward examples/s (default: a guess for a base model at length 128 on one GPU)",
    )
    ap.add_argument("--student-ex-s", type=speed, default=2000.0, help="student forward examples/s")
    args = ap.parse_args(argv)
    with reported_errors():
        params, chosen, cluster = check(args.params)
        for p in sweep():
            print(f"plan: removed {p}, left by a stage that was killed")
        lines, _ = plan(params, args.base_ex_s, args.student_ex_s, chosen, cluster)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
