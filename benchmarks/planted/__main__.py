"""python -m benchmarks.planted: run the designs with each setting; write results/planted.json and .md.

Usage: python -m benchmarks.planted [--seeds 1-10] [--design coin specialists noisy] [--setting NAME=JSON ...]
                                    [--rewards R ...] [--oracle] [--merge] [--out results/planted.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from pipeline.io import provenance, write_json

from .designs import DESIGNS, MISLEADING
from .report import markdown, table
from .runner import BASELINES, MIN_GAP, progress, run_design
from .settings import REWARDS, default_settings, parse_seeds, parse_setting

OUT = Path("results/planted.json")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.planted", description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", default=["1-10"], help="e.g. 1-10, or 1 2 5")
    ap.add_argument("--design", nargs="+", default=list(DESIGNS), choices=DESIGNS + MISLEADING)
    ap.add_argument(
        "--setting",
        nargs="+",
        type=parse_setting,
        default=None,
        metavar="NAME=JSON",
        help="rl sections to run (replace the defaults), e.g. effect_agent={} lr='{\"policy_lr\": 0.1}'",
    )
    ap.add_argument("--rewards", nargs="+", default=REWARDS, help="the rewards of the default settings")
    ap.add_argument("--oracle", action="store_true", help="also distil from the single right teacher per seed")
    ap.add_argument("--merge", action="store_true", help="keep the out file's other designs and settings")
    ap.add_argument("--workdir", default=None, help="where the runs go (default: a temporary folder, removed)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    settings = dict(args.setting) if args.setting else default_settings(args.rewards)
    start = time.perf_counter()
    designs = {d: run_design(d, seeds, settings, args.workdir, args.oracle) for d in args.design}
    seconds = time.perf_counter() - start
    runs = len(args.design) * len(seeds) * (1 + len(BASELINES) + len(settings) + args.oracle)
    merged = {}
    if args.merge and args.out.is_file():
        merged = json.loads(args.out.read_text()).get("designs", {})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    for design, entries in designs.items():
        merged.setdefault(design, {}).update({k: {**v, "commit": commit or "?"} for k, v in entries.items()})
    write_json(
        args.out,
        {
            "designs": merged,
            "min_gap": MIN_GAP,
            "last_run": {
                "designs": args.design,
                "settings": list(settings),
                "seeds": seeds,
                "runs": runs,
                "seconds": round(seconds, 1),
                "seconds_per_run": round(seconds / runs, 2),
            },
            "provenance": provenance(),
        },
    )
    args.out.with_suffix(".md").write_text(
        markdown(merged, "python -m benchmarks.planted " + " ".join(argv if argv is not None else sys.argv[1:]))
    )
    print(table({d: merged[d] for d in designs}))
    progress(f"\n{runs} runs in {seconds:.0f} s ({seconds / runs:.1f} s a run); written to {args.out}")


if __name__ == "__main__":
    main()
