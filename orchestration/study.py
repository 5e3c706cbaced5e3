"""The study: every method of the suite over many seeds on the default's teachers, resumable seed by seed.

Usage: python -m orchestration.study [--seeds N] [--step K] [--no-commit] [--carry FILE ...]
It works in `.study/`, a copy of this workspace's code (no outputs) on this workspace's DVC cache, whose
params.yaml is this one with params-study.yaml's keys put over it. It adds one seed at a time (`run.seeds` the
first k of the study's seeds), runs what is new through `python -m orchestration.cluster --executor local` (DVC
restores what already ran, here or in `make repro`: the same teachers, the same runs; it trains the teachers it
lacks), and copies the results, the study's dvc.lock and its runs' files to results/study/, committing each seed
to git. A rerun, here or on a fresh clone, puts the committed runs back beside that dvc.lock, so DVC runs only the
seeds that are missing. `--carry FILE ...`: the committed runs stay current through an edit of these code files
that changes none of their outputs, checked by rerunning one committed run of each method first (`carry`).
docs/study.md has what it runs, its time and how to read it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from ruamel.yaml import YAML

from pipeline import methods, user_data
from pipeline.io import atomic_path, write_json
from pipeline.params_file import InputError, read, reported_errors
from pipeline.schema import load

from .dvc_api import cache_dir, commit_current, kind, stage_names
from .stages import STUDENTS
from .study_faults import clear_killed_commit, commit, git, run_round, stop_orphaned_round
from .study_report import README, curve, write_curve, write_findings
from .study_runs import carry, forget_stale_runs
from .workspace import cores, hold, snapshot

WORK = Path(".study")
OUT = Path("results/study")
EXPORTED = ("tables", "figures", "report.md", "metrics.json", "provenance.json", "latency")  # under results/
EARLIER = "earlier"  # results/study/earlier/: the last verdict before rows or tasks were added (keep_earlier)


def merged(base: dict, over: dict) -> dict:
    """`base` with `over`'s keys put over it, section by section."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def study_params(params: str | Path = "params.yaml", study: str | Path = "params-study.yaml") -> dict:
    """The study's parameters: params.yaml with params-study.yaml over it, checked as the stages check them."""
    out = merged(read(params), read(study))
    if not out.get("run", {}).get("seeds"):
        raise InputError(f"{study}: run.seeds is empty; the study needs seeds to add one at a time")
    return out


def study_rows(params: dict) -> list[str]:
    """The study's rows that run, read from the parameters as a dict: run.methods, the families of run.single and
    run.drop, and the list of each stage of its own (run.agents, run.<stage>), as the registry's `rows`."""
    run = params["run"]
    families = [p + t for p, stage in methods.FAMILIES.items() for t in run.get(stage, [])]
    own = [name for stage in methods.own_stages() for name in run.get(methods.run_key(stage), [])]
    return [*run.get("methods", []), *families, *own]


def widened(progress: dict, rows: list[str], tasks: list[str], committed: dict | None) -> list[str]:
    """The rows and tasks that `rows` and `tasks` add to the committed rounds (`progress`; `committed`: their
    params.yaml, None before the first round), named. Where any, the rounds' record moves to `progress["earlier"]`
    and `seeds_done` starts again, empty. A study from before progress.json recorded its rows and tasks: those of
    its params.yaml."""
    if committed is None:
        return []
    before = progress.get("rows") or study_rows(committed)
    before_tasks = progress.get("tasks") or committed["run"]["tasks"]
    added = [r for r in rows if r not in before] + [f"task {t}" for t in tasks if t not in before_tasks]
    if added:
        earlier = {"rows": before, "tasks": before_tasks}
        earlier |= {k: progress.pop(k) for k in ("seeds_done", "seconds", "curve") if k in progress}
        for key in ("rows", "tasks"):
            progress.pop(key, None)
        progress |= {"earlier": [*progress.get("earlier", []), earlier], "seeds_done": [], "seconds": {}}
    return added


def write_params(params: dict, path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        YAML().dump(params, f)


def recover(out: Path) -> None:
    """A study killed between export's two renames left the last complete export as `.NAME.old-PID` and no `out`:
    put it back, before io.atomic_path would clear it as a dead process's leftover."""
    if not out.exists():
        for old in sorted(out.parent.glob(f".{out.name}.old-*"), key=lambda p: p.stat().st_mtime)[-1:]:
            os.replace(old, out)
            print(f"study: {out} put back from {old.name}, where a killed study had moved it", flush=True)


def restore(out: Path, work: Path) -> int:
    """Put the committed runs and their dvc.lock back into the study's workspace; how many seeds they hold."""
    recover(out)
    progress = out / "progress.json"
    if not progress.exists():
        return 0
    if (out / "runs").exists():
        shutil.copytree(out / "runs", work / "runs", dirs_exist_ok=True)
    shutil.copy2(out / "dvc.lock", work / "dvc.lock")
    return len(json.loads(progress.read_text())["seeds_done"])


def copy_results(src: Path, dst: Path) -> None:
    """The EXPORTED files and folders of one results folder into another (`dst` exists)."""
    for name in EXPORTED:
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name)
        elif (src / name).exists():
            shutil.copy2(src / name, dst / name)


def keep_earlier(out: Path) -> None:
    """Rows or tasks added: the committed verdict (report, metrics, tables, figures, progress.json) into
    `out`/earlier/, which README's findings quote until the widened study has as many seeds; otherwise its first
    rounds, at one seed, would stand in for a verdict of many. One kept already (a study widened again before it
    caught up) has more seeds than the rounds since, and stays."""
    if (out / EARLIER).exists() or not (out / "metrics.json").exists():
        return
    with atomic_path(out / EARLIER) as tmp:
        tmp.mkdir()
        copy_results(out, tmp)
        for name in ("progress.json", "params.yaml"):
            shutil.copy2(out / name, tmp / name)


def earlier_verdict(out: Path, progress: dict) -> dict | None:
    """The verdict kept by keep_earlier, while the study has fewer seeds than it: its progress.json (its rows and
    tasks from its params.yaml where it predates their record there) and findings."""
    if not (out / EARLIER / "progress.json").exists():
        return None
    kept = json.loads((out / EARLIER / "progress.json").read_text())
    if len(progress["seeds_done"]) >= len(kept["seeds_done"]):
        return None
    committed = read(out / EARLIER / "params.yaml")
    return kept | {
        "rows": kept.get("rows") or study_rows(committed),
        "tasks": kept.get("tasks") or committed["run"]["tasks"],
        "findings": json.loads((out / EARLIER / "metrics.json").read_text()).get("findings", []),
    }


def export(work: Path, out: Path, progress: dict) -> None:
    """The study's results, its dvc.lock, params, every run's files (a few MB) and its power curve into `out`,
    replaced whole (built beside it, then renamed in): a kill leaves the last export or this one, never a mix. The
    earlier verdict (keep_earlier) goes along until this export has as many seeds."""
    keep = earlier_verdict(out, progress) is not None
    with atomic_path(out) as tmp:
        tmp.mkdir()
        copy_results(work / "results", tmp)
        if keep:
            shutil.copytree(out / EARLIER, tmp / EARLIER)
        shutil.copytree(work / "runs", tmp / "runs")
        for name in ("dvc.lock", "params.yaml"):
            shutil.copy2(work / name, tmp / name)
        write_curve(progress["curve"], tmp)
        write_json(tmp / "progress.json", progress)


KERNELS = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, help="stop after this many seeds (default: all of params-study.yaml's)")
    ap.add_argument("--step", type=int, default=1, help="seeds added (and committed) at a time; more cores, more")
    ap.add_argument("--no-commit", action="store_true", help="write results/study/ but commit nothing")
    ap.add_argument(
        "--carry",
        nargs="+",
        default=[],
        metavar="FILE",
        help="code files whose edit changed no committed run's outputs: checked on one run per method, then the "
        "committed runs are kept rather than rerun",
    )
    args = ap.parse_args(argv)
    try:
        with reported_errors():  # a bad input, a full disk: one line, and the committed rounds as they were
            study(args)
    except KeyboardInterrupt:  # Ctrl-C outside a round (a round's own stop says more)
        sys.exit("study: stopped by SIGINT; the committed rounds are as they were; rerun to continue")


def study(args: argparse.Namespace) -> None:
    hold(Path.cwd(), "python -m orchestration.study")
    params = study_params()
    seeds = params["run"]["seeds"][: args.seeds]
    user_data.check(Path("user_data"))  # before DVC hashes it, or the snapshot copies it: a FIFO would hang both
    if not args.no_commit:
        clear_killed_commit()
    stop_orphaned_round(WORK)
    snapshot(Path.cwd(), WORK, cache_dir(), skip=("results/study", WORK.name))
    write_params({**params, "run": {**params["run"], "seeds": seeds[:1]}}, WORK / "params.yaml")
    load(WORK / "params.yaml")  # refused here, before any stage runs
    done = restore(OUT, WORK)
    progress = json.loads((OUT / "progress.json").read_text()) if done else {"seeds_done": [], "seconds": {}}
    rows, tasks = study_rows(params), params["run"]["tasks"]
    added = widened(progress, rows, tasks, read(OUT / "params.yaml") if done else None)
    if added:  # their seeds from the first, the committed runs restored at each
        print(f"study: {added} new: the seeds run again from the first, for them alone", flush=True)
        keep_earlier(OUT)
        done = 0
    progress |= {
        "rows": rows,
        "tasks": tasks,
        "command": "python -m orchestration.study"
        + (f" --seeds {args.seeds}" if args.seeds else "")
        + (f" --step {args.step}" if args.step != 1 else ""),
        "commit": git("rev-parse", "HEAD"),
        "machine": {
            "cores": cores(),
            "processor": platform.processor() or platform.machine(),
            # the float kernels this run forced, if any (docs/reproducibility.md: the same bytes on another CPU)
            "kernels": {k: os.environ[k] for k in KERNELS if k in os.environ},
        },
    }
    students = (*STUDENTS, "analyze")
    teachers = [s for s in stage_names(WORK) if kind(s) not in students]
    print("study: the teachers, restored from DVC's run-cache or trained on every core", flush=True)
    start = time.perf_counter()
    if run_round(WORK, only=tuple(sorted({kind(s) for s in teachers} - {"assets"}))):
        sys.exit(f"study: the teachers failed (their error above; their logs: {WORK / '.dvc/tmp/cluster'})")
    print(f"study: the teachers in place after {time.perf_counter() - start:.0f} s", flush=True)
    if restored := (OUT / "progress.json").exists():  # every committed seed's runs, whichever round runs them
        write_params({**params, "run": {**params["run"], "seeds": seeds}}, WORK / "params.yaml")
    if restored and args.carry:
        carry(WORK, students, args.carry)
    if restored:
        start = time.perf_counter()
        commit_current(WORK, students)
        forget_stale_runs(WORK, students)
        print(f"study: the committed runs in DVC's cache after {time.perf_counter() - start:.0f} s", flush=True)
    for k in steps(len(seeds), args.step, done):
        print(f"study: seeds {seeds[:k]} of {seeds}", flush=True)
        write_params({**params, "run": {**params["run"], "seeds": seeds[:k]}}, WORK / "params.yaml")
        start = time.perf_counter()
        if run_round(WORK):
            disk = shutil.disk_usage(WORK)  # a fact beside the error, which names the cause
            sys.exit(
                f"study: the round of seeds {seeds[:k]} failed (its error above; its logs: {WORK / '.dvc/tmp/cluster'}"
                f"); {disk.free / 2**20:,.0f} of {disk.total / 2**20:,.0f} MB free on {WORK}'s disk; nothing of the "
                f"round is committed: {OUT} holds seeds {progress['seeds_done']}; rerun to continue"
            )
        new = [s for s in seeds[:k] if s not in progress["seeds_done"]]
        progress["seeds_done"] += new
        if new:
            progress["seconds"][",".join(map(str, new))] = round(time.perf_counter() - start)
        progress["curve"] = curve(progress, seeds, k, json.loads((WORK / "results" / "metrics.json").read_text()))
        export(WORK, OUT, progress)
        write_findings(README, progress, json.loads((OUT / "metrics.json").read_text()), earlier_verdict(OUT, progress))
        if not args.no_commit:
            commit([str(OUT), str(README)], f"study: {k} of {len(seeds)} seeds")
        print(f"study: {k} of {len(seeds)} seeds in {OUT}", flush=True)


def steps(n: int, step: int, done: int) -> list[int]:
    """How many seeds each round runs: `step` more each time, from the first round beyond the `done` already
    committed, to all `n`; all done: the last round again (the analysis of the latest code)."""
    if done >= n:
        return [n]
    return sorted({min(k, n) for k in range(done + step, n + step, step)})


if __name__ == "__main__":
    main()
