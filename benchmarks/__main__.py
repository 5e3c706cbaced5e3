"""Run every benchmark and write results/benchmarks.json (and a Markdown table to stdout).

Usage: python -m benchmarks [--skip NAME ...] [--only NAME ...]
(NAME: kd_step method_epoch pieces online caching repro memory bootstrap startup decision placebo workers round
precision)
With --only, the named benchmarks are rerun and replace their entries in results/benchmarks.json, each
entry with the provenance of the run that measured it.
Needs the embedded default reproduced (`dvc repro`): the teacher, repro and memory benchmarks use its
fine-tuned teachers and outputs. About 31 minutes on 2 cores, most of it the memory benchmark's
stages (MPNet's fine-tuning and caching) and the repro benchmark. Each ratio compares two variants
measured side by side in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pipeline.io import provenance, write_json

from . import (
    bootstrap,
    decision,
    kd_step,
    memory,
    method_epoch,
    pieces,
    placebo,
    precision,
    repro,
    startup,
    study_round,
    teachers,
    workers,
)

BENCHMARKS = {
    "kd_step": kd_step.measure,
    "method_epoch": method_epoch.measure,
    "pieces": pieces.measure,
    "online": teachers.online,
    "caching": teachers.caching,
    "repro": repro.measure,
    "memory": memory.measure,
    "bootstrap": bootstrap.measure,
    "startup": startup.measure,
    "decision": decision.measure,
    "placebo": placebo.measure,
    "workers": workers.measure,
    "round": study_round.measure,
    "precision": precision.measure,
}
OUT = Path("results/benchmarks.json")
NAMES = {"rl_kd": "RL-KD", "ca_mkd": "CA-MKD", "ae_kd": "AE-KD", "mtkd_rl": "MTKD-RL"}


def table(results: dict) -> str:
    rows = ["| benchmark | measured | target | met |", "|---|---|---|---|"]
    r = results
    if "kd_step" in r:
        k = r["kd_step"]
        rows.append(
            f"| KD step / CE step | {k['ratio']} ({k['kd_step_ms']} v {k['ce_step_ms']} ms) | <= 1.10 | "
            f"{'yes' if k['met'] else 'no'} |"
        )
    if "method_epoch" in r:
        k = r["method_epoch"]
        for method, m in k["methods"].items():
            rows.append(
                f"| {NAMES[method]} epoch / equal-weight KD epoch | {m['ratio']} ({m['epoch_s']} v "
                f"{k['kd_epoch_s']} s) | <= 1.5 | {'yes' if m['met'] else 'no'} |"
            )
    if "pieces" in r:
        v = r["pieces"]["variants"]
        four, whole, grouped = v["shuffled, 4 pieces"], v["shuffled"], v["grouped by length"]
        rows.append(
            f"| student step, shuffled batch in 4 length-sorted pieces / one padded batch | "
            f"{four['ratio_to_shuffled']} ({four['step_ms']} v {whole['step_ms']} ms; grouped by length "
            f"{grouped['ratio_to_shuffled']}) | < 1 | {'yes' if four['ratio_to_shuffled'] < 1 else 'no'} |"
        )
    if "online" in r:
        k = r["online"]
        rows.append(
            f"| distill step, teachers online / from the cache | {k['speedup']}x ({k['online_step_ms']} v "
            f"{k['cached_step_ms']} ms) | (the cache's speed-up) | - |"
        )
    if "caching" in r:
        k = r["caching"]
        rows.append(
            f"| caching / bare forward throughput ({k['teacher']}) | {k['ratio']} "
            f"({k['cache_examples_per_s']} v {k['bare_forward_examples_per_s']} examples/s) | >= 0.9 | "
            f"{'yes' if k['met'] else 'no'} |"
        )
    if "repro" in r:
        w, t = r["repro"]["workspace"], r["repro"]["tiny_profile"]
        rows.append(
            f"| `dvc repro`, nothing changed (embedded default) | {w['nothing_changed_s']} s, "
            f"{len(w['nothing_changed_stages_run'])} stages run | a few seconds | "
            f"{'yes' if w['nothing_changed_s'] < 15 and not w['nothing_changed_stages_run'] else 'no'} |"
        )
        only = all(s.startswith("rl_kd@") for s in w["rl_change_would_run"])
        rows.append(
            f"| `methods.rl_kd.policy_lr` changed (embedded default, `dvc repro --dry`) | "
            f"{len(w['rl_change_would_run'])} stages: {', '.join(w['rl_change_would_run'])} (analyze follows "
            f"once their outputs change) | the rl_kd runs only | {'yes' if only else 'no'} |"
        )
        tiny_only = all(s.startswith("rl_kd@") or s == "analyze" for s in t["rl_change_stages_run"])
        rows.append(
            f"| same, run for real (tiny profile) | {t['rl_change_s']} s: "
            f"{', '.join(t['rl_change_stages_run'])}, of {t['stages']} stages (nothing changed: "
            f"{t['nothing_changed_s']} s) | rl_kd and analyze only | {'yes' if tiny_only else 'no'} |"
        )
    if "memory" in r:
        m = r["memory"]
        peaks = ", ".join(f"{k} {v['peak_rss_gib']}" for k, v in m["stages"].items())
        rows.append(f"| peak memory per stage (GiB) | {peaks} | < 4 each | {'yes' if m['met'] else 'no'} |")
    if "startup" in r:
        k = r["startup"]
        ratios = ", ".join(f"{m} {v['ratio']} ({v['after_s']} v {v['before_s']} s)" for m, v in k["methods"].items())
        rows.append(
            f"| student run start-up (process start to first step, tiny profile) / at {k['before']} | {ratios} | "
            f"< 1 | {'yes' if k['met'] else 'no'} |"
        )
    if "bootstrap" in r:
        k = r["bootstrap"]
        rows.append(
            f"| bootstrap CI at QQP size ({k['seeds']} seeds x {k['examples']:,} examples, "
            f"{k['resamples']:,} resamples) | {k['peak_gib']} GiB peak (unchunked {k['unchunked_gib']} GiB), "
            f"{k['seconds']} s | < 1 GiB | {'yes' if k['met'] else 'no'} |"
        )
    if "decision" in r:
        k = r["decision"]
        seeds = [c["seeds"] for c in k["cells"]]
        rows.append(
            f"| type I error of the deciding test at nominal 5%, worst of {len(k['cells'])} simulated cells "
            f"({min(seeds)}-{max(seeds)} seeds, 1-3x the seed variance; docs/statistics.md) | "
            f"{100 * k['worst_crossed']:.1f}% | <= 6% | "
            f"{'yes' if k['worst_crossed'] <= 0.06 else 'no'} |"
        )
        if "worst_false_equivalent" in k:
            worst = k["worst_false_equivalent"]
            rows.append(
                "| false 'equivalent' at a true 1-point difference, worst simulated cell | "
                f"{100 * worst:.1f}% | <= 5% | {'yes' if worst <= 0.05 else 'no'} |"
            )
    if "placebo" in r:
        k = r["placebo"]
        rows.append(
            "| false rejections of the deciding test on real runs (placebo: one method's runs split in two), worst of "
            f"{', '.join(str(c['seeds']) for c in k['cells'])} seeds an arm | {100 * k['worst']:.1f}% | <= 6% | "
            f"{'yes' if k['met'] else 'no'} |"
        )
    if "workers" in r:
        k = r["workers"]
        for kind_, m in ((n, k[n]) for n in ("distill", "rl_kd") if n in k):
            rows.append(
                f"| {k['runs_each']} {kind_} runs one at a time on {k['cores']} threads / at once on 1 thread each "
                f"(`make repro`'s workers) | {m['ratio']} ({m['serial_all_threads_s']} v {m['workers_1_thread_s']} s) "
                f"| > 1 | {'yes' if m['ratio'] > 1 else 'no'} |"
            )
    if "round" in r and "skipped" in r["round"]:
        rows.append(f"| a study round / an earlier orchestration | skipped: {r['round']['skipped']} | <= 0.7 | - |")
    elif "round" in r:
        k = r["round"]
        b, a = k["before"]["dvc_in_a_worker"], k["after"]["dvc_in_a_worker"]
        rows.append(
            f"| a study round (seed {k['seed']}, every row) / with the orchestration of {k['revision']} | "
            f"{k['ratio']} ({k['after']['wall_s']:.0f} v {k['before']['wall_s']:.0f} s; DVC in a worker: first stage "
            f"{a['first_restore_s']} v {b['first_restore_s']} s, next {a['next_restore_s']} v {b['next_restore_s']} s; "
            f"outputs {'identical' if k['identical_outputs'] else 'DIFFER'}) | <= 0.7, identical | "
            f"{'yes' if k['met'] else 'no'} |"
        )
    if "precision" in r:
        k = r["precision"]
        has = ", ".join(k["cpu_bf16"]) or "no bf16 instructions"
        rows.append(
            f"| a U-Ensemble run's training in bf16 / fp32 on the CPU ({has}; opt-in: `compute.precision: bf16`) | "
            f"{k['speedup']}x faster; test accuracy {100 * k['test_accuracy_bf16']:.1f} v "
            f"{100 * k['test_accuracy_fp32']:.1f} | (measured, not a target) | - |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip", nargs="*", default=[], choices=list(BENCHMARKS))
    ap.add_argument("--only", nargs="*", default=[], choices=list(BENCHMARKS))
    args = ap.parse_args()
    results = {}
    for name, measure in BENCHMARKS.items():
        if name in args.skip or (args.only and name not in args.only):
            continue
        start = time.perf_counter()
        print(f"benchmark {name} ...", file=sys.stderr, flush=True)
        results[name] = measure()
        print(f"benchmark {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    if args.only:  # the other entries as the last full run measured them
        results = {**json.loads(OUT.read_text()), **{k: {**v, "provenance": provenance()} for k, v in results.items()}}
    else:
        results = {**results, "provenance": provenance()}
    write_json(OUT, results)
    print(table(results))
    print(f"\nwritten to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
