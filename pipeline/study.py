"""The study: every method of the suite over many seeds on the default's teachers, resumable seed by seed.

Usage: python -m pipeline.study [--seeds N] [--step K] [--no-commit] [--carry FILE ...]
It works in `.study/`, a copy of this workspace's code (no outputs) on this workspace's DVC cache, whose
params.yaml is this one with params-study.yaml's keys put over it. It adds one seed at a time (`run.seeds` the
first k of the study's seeds), runs what is new through `python -m pipeline.cluster --executor local` (DVC
restores what the default's `make repro` already ran: the same teachers, the same runs), and copies the
results, the study's dvc.lock and its runs' files to results/study/, committing each seed to git. A rerun, here
or on a fresh clone after `make repro`, puts the committed runs back beside that dvc.lock, so DVC runs only the
seeds that are missing. `--carry FILE ...`: the committed runs stay current through an edit of these code files
that changes none of their outputs, checked by rerunning one committed run of each method first (`carry`).
docs/study.md has what it runs, its time and how to read it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ruamel.yaml import YAML

from . import cluster
from .io import atomic_path, write_json
from .params_file import InputError, read, reported_errors
from .schema import load

WORK = Path(".study")
OUT = Path("results/study")
EXPORTED = ("tables", "figures", "report.md", "metrics.json", "provenance.json", "latency")  # under results/


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
    """The study's rows that run: run.methods, the families of run.single and run.drop, and run.agents."""
    run = params["run"]
    families = [f"{prefix}{t}" for prefix, key in (("single_", "single"), ("drop_", "drop")) for t in run.get(key, [])]
    return [*run.get("methods", []), *families, *run.get("agents", [])]


def write_params(params: dict, path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        YAML().dump(params, f)


def restore(out: Path, work: Path) -> int:
    """Put the committed runs and their dvc.lock back into the study's workspace; how many seeds they hold."""
    progress = out / "progress.json"
    if not progress.exists():
        return 0
    if (out / "runs").exists():
        shutil.copytree(out / "runs", work / "runs", dirs_exist_ok=True)
    shutil.copy2(out / "dvc.lock", work / "dvc.lock")
    return len(json.loads(progress.read_text())["seeds_done"])


def export(work: Path, out: Path, progress: dict) -> None:
    """The study's results, its dvc.lock, params and every run's files (a few MB) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for name in EXPORTED:
        src, dst = work / "results" / name, out / name
        if dst.is_dir():
            shutil.rmtree(dst)
        if src.is_dir():
            shutil.copytree(src, dst)
        elif src.exists():
            shutil.copy2(src, dst)
    if (out / "runs").exists():
        shutil.rmtree(out / "runs")
    shutil.copytree(work / "runs", out / "runs")
    for name in ("dvc.lock", "params.yaml"):
        shutil.copy2(work / name, out / name)
    write_json(out / "progress.json", progress)


KERNELS = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE")
README = Path("README.md")
FINDINGS = ("<!-- findings: written by python -m pipeline.study -->", "<!-- /findings -->")


def write_findings(readme: Path, progress: dict, metrics: dict) -> None:
    """README's "What it finds": the study's verdict in the sentences its analysis wrote (metrics.json
    `findings`), between the two FINDINGS markers, with the seeds they rest on."""
    text = readme.read_text()
    start, end = text.find(FINDINGS[0]), text.find(FINDINGS[1])
    if start < 0 or end < start:
        raise InputError(f"{readme}: the markers {FINDINGS} are missing; put them where the study's findings go")
    seeds = len(progress["seeds_done"])
    said = "\n".join(f"- {s}" for s in metrics.get("findings", []))
    block = (
        f"{FINDINGS[0]}\nThe study at {seeds} seed{'s' if seeds != 1 else ''} "
        f"([results/study/report.md](results/study/report.md#verdict), written by `{progress['command']}`):\n\n{said}\n"
    )
    readme.write_text(text[:start] + block + text[end:])


def git(*args: str) -> str:
    for _ in range(10):  # another git command holds the index (someone committing beside the study): wait
        done = subprocess.run(["git", *args], capture_output=True, text=True)
        if "index.lock" not in done.stderr:
            break
        time.sleep(3)
    if done.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


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
    with reported_errors():
        params = study_params()
        seeds = params["run"]["seeds"][: args.seeds]
        cluster.snapshot(Path.cwd(), WORK, cluster_cache(), skip=("results/study", WORK.name))
        write_params({**params, "run": {**params["run"], "seeds": seeds[:1]}}, WORK / "params.yaml")
        load(WORK / "params.yaml")  # refused here, before any stage runs
    done = restore(OUT, WORK)
    progress = json.loads((OUT / "progress.json").read_text()) if done else {"seeds_done": [], "seconds": {}}
    rows = study_rows(params)
    # the committed rounds' rows (a study before rows were recorded: those of its params.yaml, the agent aside)
    before = progress.get("rows") or (study_rows(read(OUT / "params.yaml")) if done else rows)
    if done and before != rows:  # rows added: their seeds from the first, the others restored
        added = sorted(set(rows) - set(before))
        print(f"study: rows {added} are new: the seeds run again from the first, for them alone", flush=True)
        earlier = {"rows": before, **{k: progress.pop(k) for k in ("seeds_done", "seconds", "curve") if k in progress}}
        progress.pop("rows", None)
        progress |= {"earlier": [*progress.get("earlier", []), earlier], "seeds_done": [], "seconds": {}}
        done = 0
    progress |= {
        "rows": rows,
        "command": "python -m pipeline.study"
        + (f" --seeds {args.seeds}" if args.seeds else "")
        + (f" --step {args.step}" if args.step != 1 else ""),
        "commit": git("rev-parse", "HEAD"),
        "machine": {
            "cores": cluster.cores(),
            "processor": platform.processor() or platform.machine(),
            # the float kernels this run forced, if any (docs/reproducibility.md: the same bytes on another CPU)
            "kernels": {k: os.environ[k] for k in KERNELS if k in os.environ},
        },
    }
    students = ("distill", "single", "drop", "agent", "analyze")
    teachers = [s for s in cluster.stage_names(WORK) if cluster.kind(s) not in students]
    print("study: the teachers (DVC restores the default's from its run-cache)", flush=True)
    cluster.dvc("repro", *teachers, cwd=WORK)
    if restored := (OUT / "progress.json").exists():  # every committed seed's runs, whichever round runs them
        write_params({**params, "run": {**params["run"], "seeds": seeds}}, WORK / "params.yaml")
    if restored and args.carry:
        with reported_errors():
            carry(WORK, students, args.carry)
    if restored:
        cache_committed(WORK, students)
        forget_stale_runs(WORK, students)
    for k in steps(len(seeds), args.step, done):
        print(f"study: seeds {seeds[:k]} of {seeds}", flush=True)
        write_params({**params, "run": {**params["run"], "seeds": seeds[:k]}}, WORK / "params.yaml")
        start = time.perf_counter()
        ran = subprocess.run([sys.executable, "-m", "pipeline.cluster", "--executor", "local"], cwd=WORK)
        if ran.returncode:
            sys.exit(f"study: seed {seeds[k - 1]} failed; its logs: {WORK / '.dvc/tmp/cluster'}; rerun to continue")
        new = [s for s in seeds[:k] if s not in progress["seeds_done"]]
        progress["seeds_done"] += new
        if new:
            progress["seconds"][",".join(map(str, new))] = round(time.perf_counter() - start)
        progress["curve"] = curve(progress, seeds, k, json.loads((WORK / "results" / "metrics.json").read_text()))
        export(WORK, OUT, progress)
        write_curve(progress["curve"], OUT)
        write_findings(README, progress, json.loads((OUT / "metrics.json").read_text()))
        if not args.no_commit and git("status", "--porcelain", "--", str(OUT), str(README)):
            git("add", "--", str(OUT), str(README))
            git("commit", "--quiet", "-m", f"study: {k} of {len(seeds)} seeds", "--", str(OUT), str(README))
        print(f"study: {k} of {len(seeds)} seeds in {OUT}", flush=True)


def curve(progress: dict, seeds: list[int], k: int, metrics: dict) -> list[dict]:
    """progress.json's curve with the point of the first k seeds put in: the hours of the rounds that ran them,
    and the primary comparison's and KD's premise's difference, interval, detectable difference and its 95%
    upper bound, from the round's analysis (results/metrics.json)."""
    first = {str(s) for s in seeds[:k]}
    seconds = sum(t for key, t in progress["seconds"].items() if set(key.split(",")) <= first)
    keep = ("task", "a", "b", "role", "diff", "ci_low", "ci_high", "mdd", "mdd_upper")
    chosen = [{key: c[key] for key in keep} for c in metrics["comparisons"] if c["role"] in ("primary", "premise")]
    point = {"seeds": k, "hours": round(seconds / 3600, 3), "comparisons": chosen}
    return sorted([p for p in progress.get("curve", []) if p["seeds"] != k] + [point], key=lambda p: p["seeds"])


def write_curve(points: list[dict], out: Path) -> None:
    """curve.md and figures/curve.png|pdf: the detectable difference (and its upper bound) against hours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def pp(value, sign=""):  # None: not computable at one seed
        return "n/a" if value is None else f"{100 * value:{sign}.2f}"

    rows = [
        f"| {p['seeds']} | {p['hours']:.2f} | {c['task']} | {c['role']}: {c['a']} - {c['b']} | "
        f"{pp(c['diff'], '+')} [{pp(c['ci_low'], '+')}, {pp(c['ci_high'], '+')}] | {pp(c['mdd'])} | "
        f"{pp(c['mdd_upper'])} |"
        for p in points
        for c in p["comparisons"]
    ]
    (out / "curve.md").write_text(
        "# The study's power against its hours\n\n"
        "After each round: the seeds so far, the hours this study's rounds took (runs restored from `make repro` "
        "cost none), and for the primary comparison and KD's premise the difference in points with its 95% "
        "interval, the difference the test detects with 80% power and that difference's 95% upper bound "
        "(docs/statistics.md). The goal: a detectable difference of 0.5 point.\n\n"
        "| seeds | hours | task | comparison | difference [95% CI] | detectable | its upper bound |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for task, role in dict.fromkeys((c["task"], c["role"]) for p in points for c in p["comparisons"]):
        at = [
            (p["hours"], p["seeds"], c)
            for p in points
            for c in p["comparisons"]
            if (c["task"], c["role"]) == (task, role) and None not in (c["mdd"], c["mdd_upper"])
        ]
        hours, mdd, upper = (
            [h for h, _, _ in at],
            [100 * c["mdd"] for *_, c in at],
            [100 * c["mdd_upper"] for *_, c in at],
        )
        (line,) = ax.plot(hours, mdd, "o-", label=f"{task} {role}")
        ax.plot(hours, upper, "--", color=line.get_color(), alpha=0.6)
        for h, k, y in zip(hours, [k for _, k, _ in at], mdd):
            ax.annotate(str(k), (h, y), textcoords="offset points", xytext=(0, -11), fontsize=7, ha="center")
    for goal in (0.5, 1.0):
        ax.axhline(goal, color="grey", lw=0.8, ls=":")
    ax.set_yscale("log")  # the upper bound at 2 seeds is tens of points, the goal half a point
    ax.set(xlabel="hours of the study's rounds", ylabel="detectable difference (points, log scale)")
    ax.set_title("Power against hours (numbers: seeds; dashed: 95% upper bound)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for ext in ("png", "pdf"):
        fig.savefig(out / "figures" / f"curve.{ext}", dpi=150, metadata={"CreationDate": None} if ext == "pdf" else {})
    plt.close(fig)


def steps(n: int, step: int, done: int) -> list[int]:
    """How many seeds each round runs: `step` more each time, from the first round beyond the `done` already
    committed, to all `n`; all done: the last round again (the analysis of the latest code)."""
    if done >= n:
        return [n]
    return sorted({min(k, n) for k in range(done + step, n + step, step)})


def cache_committed(work: Path, kinds: tuple[str, ...], carried: set[str] = frozenset()) -> None:
    """Put the committed runs that are still current (same code, same params, same teachers: the command and
    dependencies their lock entry names, their files as it names them) into DVC's cache and run-cache, so that the
    jobs restore them; a fresh clone has only git's copy. A run whose code or inputs changed since is left stale,
    and DVC runs it again."""
    from dvc.repo import Repo

    def current(stage) -> bool:
        # `dvc status` calls every output of a fresh clone's runs changed ("not in cache"), which is what this puts
        # right; any other change (command, dependency, a file edited or missing) leaves the run to DVC
        return (
            all(out.exists for out in stage.outs)
            and not stage.changed_stage()
            and (stage.name in carried or not stage.changed_deps())
            and not stage.changed_outs(allow_missing=True)
        )

    # what `dvc commit --force NAME` does for each (save: outputs' hashes and the run-cache; commit: the cache;
    # the lock), in one pass over the index: `repo.commit(name)` parses dvc.yaml again for each name, about 3 s
    # a stage, minutes at a hundred committed runs
    with contextlib.chdir(work), Repo(".") as repo, repo.lock:
        stages = [s for s in repo.index.stages if cluster.kind(s.name) in kinds and current(s)]
        for stage in stages:
            stage.save()
            stage.commit()
        if stages:
            stages[0].dvcfile.dump_stages(stages, update_pipeline=False)


def carry(work: Path, kinds: tuple[str, ...], files: list[str]) -> None:
    """Keep the committed runs through an edit of `files` that changes none of their outputs. A committed run
    whose only changes are those files' hashes is carried: first one of each method (its first seed) runs again
    with the code as it is now, a run per core, and the outputs DVC caches (predictions, weights) must equal the
    committed ones byte for byte (same CPU type and threads, docs/reproducibility.md); the committed files are then
    put back, and every such run's lock entry takes the new hashes, as `dvc commit` would. Any difference stops the
    study, naming the files, and carries nothing."""
    from dvc.repo import Repo

    files = {str(Path(f)) for f in files}
    with contextlib.chdir(work), Repo(".") as repo, repo.lock:
        carried = []
        for stage in repo.index.stages:
            if cluster.kind(stage.name) not in kinds or stage.changed_stage():
                continue
            changed = {d.def_path for d in stage.deps if d.status()}
            if changed and changed <= files and all(o.exists for o in stage.outs):
                if not stage.changed_outs(allow_missing=True):
                    carried.append(stage)
        # the committed outputs' hashes, before a sample run replaces them: those DVC caches (predictions, weights),
        # not the records it leaves to git (metrics.json, history.json), which hold timings
        committed = {(s.name, str(o.def_path)): o.hash_info.value for s in carried for o in s.outs if o.use_cache}
    by_seed = sorted(carried, key=lambda s: seed_of(s.name), reverse=True)  # each method's first seed kept last
    samples = list({s.name.rsplit("-", 1)[0]: s for s in by_seed}.values())
    print(f"study: carrying {len(carried)} committed runs through {sorted(files)}; rerunning {len(samples)} first")
    differ = []
    with tempfile.TemporaryDirectory() as kept, ThreadPoolExecutor(cluster.cores()) as pool:
        outs = {s.name: [Path(o.def_path) for o in s.outs] for s in samples}
        for i, paths in enumerate(outs.values()):  # the committed files, put back after the check
            for path in paths:
                (Path(kept) / str(i) / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(work / path, Path(kept) / str(i) / path)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        reruns = [
            pool.submit(subprocess.run, s.cmd, shell=True, cwd=work, env=env, capture_output=True) for s in samples
        ]
        for stage, rerun in zip(samples, reruns):
            if rerun.result().returncode:
                raise InputError(f"--carry: `{stage.cmd}` failed: {rerun.result().stderr.decode()[-2000:]}")
            differ += [
                str(o.def_path)
                for o in stage.outs
                if (stage.name, str(o.def_path)) in committed
                and file_md5(work / o.def_path) != committed[(stage.name, str(o.def_path))]
            ]
        for i, paths in enumerate(outs.values()):
            for path in paths:
                shutil.copy2(Path(kept) / str(i) / path, work / path)
    if differ:
        raise InputError(
            f"--carry: the code as it is now changes {differ}: their runs are not carried; rerun the study without "
            "--carry to run them again"
        )
    cache_committed(work, kinds, carried={s.name for s in carried})


def seed_of(stage: str) -> int:
    """A run's seed, the last part of its stage's name (`distill@rt-ce-3`: 3); 0 for a stage without one."""
    last = stage.rsplit("-", 1)[-1]
    return int(last) if "-" in stage and last.isdigit() else 0


def file_md5(path: Path) -> str:
    """The MD5 that DVC records for a file."""
    import hashlib

    return hashlib.md5(path.read_bytes()).hexdigest()


def forget_stale_runs(work: Path, kinds: tuple[str, ...]) -> None:
    """Remove the committed run files that DVC will write again (a row that now runs other code: `rl_kd` before
    it was the paper's RL-KD), so that no round exports them under the row's name before its own run replaces
    them."""
    from dvc.repo import Repo

    stale = cluster.stale(work)
    with contextlib.chdir(work), Repo(".") as repo:
        folders = {
            Path(out.def_path).parent
            for stage in repo.index.stages
            if stage.name in stale and cluster.kind(stage.name) in kinds and cluster.kind(stage.name) != "analyze"
            for out in stage.outs
        }
    for folder in sorted(folders):
        if (work / folder).is_dir():
            shutil.rmtree(work / folder)


def cluster_cache() -> str:
    return str(Path(cluster.dvc("cache", "dir").strip().splitlines()[-1]).resolve())


if __name__ == "__main__":
    main()
