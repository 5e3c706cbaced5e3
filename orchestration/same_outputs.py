"""Did a code change leave the pipeline's outputs as they were? The outputs now against those saved before it.

Usage: python -m orchestration.same_outputs save DIR    (before: dvc.lock and every JSON record it names, to DIR)
       python -m orchestration.same_outputs check DIR   (after `dvc repro -f` on the changed code)
Run both on the machine kind, threads and float kernels that wrote the outputs (docs/reproducibility.md). Per
output that both locks name: the files DVC caches (models, logits, predictions, weights) must have the same MD5; a
JSON record DVC leaves out of its cache (metrics.json, history.json, rewards.json) the same values once the keys that
time the run or describe the machine are set aside. Prints each difference and a summary; exits 1 if any differs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import yaml

# keys whose values differ between two runs of the same computation: wall-clock times, speeds, provenance
TIMED = ("seconds", "_ms", "examples_per_s")


def timing(key: str) -> bool:
    return key == "provenance" or key.endswith(TIMED)


def outs(lock: dict) -> dict[tuple[str, str], str]:
    """(stage, output path) -> MD5, for every output a lock records."""
    return {(s, o["path"]): o.get("md5", "") for s, e in lock.get("stages", {}).items() for o in e.get("outs", [])}


def without_timing(value):
    """A JSON value with every timing key removed, at any depth."""
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if not timing(k)}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def differences(a, b, at: str = "") -> list[str]:
    """Where two JSON values differ: key paths, a key on one side only marked as such."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{at}/{k} ({'before' if k in a else 'after'} only)" for k in sorted(set(a) ^ set(b))]
        return out + [d for k in sorted(set(a) & set(b)) for d in differences(a[k], b[k], f"{at}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{at}[{i}]")]
    return [] if a == b else [at or "/"]


def records(lock: dict) -> list[str]:
    """The JSON files a lock names as outputs (metrics, history, rewards: cache: false, so not in DVC's cache)."""
    return sorted({p for _, p in outs(lock) if p.endswith(".json")})


def save(folder: Path, lock: Path = Path("dvc.lock")) -> int:
    """Copy `lock` and every JSON record it names into `folder`; how many records."""
    names = records(yaml.safe_load(lock.read_text()))
    for name in [str(lock), *names]:
        if Path(name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(name, folder / name)
    return len(names)


def compare(before: dict, after: dict, saved: Path) -> dict:
    """Compare two locks' outputs; a JSON record whose MD5 moved is compared by value, timings aside, with its
    copy under `saved`."""
    old, new = outs(before), outs(after)
    both = sorted(set(old) & set(new))
    differ, timed = [], 0
    for key in both:
        stage, path = key
        if old[key] == new[key]:
            continue
        where = ""
        if path.endswith(".json") and (saved / path).is_file() and Path(path).is_file():
            timed += 1
            then, now = (without_timing(json.loads(f.read_text())) for f in (saved / path, Path(path)))
            if then == now:
                continue
            where = f" at {', '.join(differences(then, now)[:5])}"
        differ.append(f"{stage}: {path}{where}")
    return {"compared": len(both), "records_timing_aside": timed, "differ": differ,
            "only_before": sorted(f"{s}: {p}" for s, p in set(old) - set(new)),
            "only_after": sorted(f"{s}: {p}" for s, p in set(new) - set(old))}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m orchestration.same_outputs", description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["save", "check"])
    ap.add_argument("folder", type=Path, help="where `save` puts the outputs' records, and `check` finds them")
    args = ap.parse_args(argv)
    if args.action == "save":
        print(f"same_outputs: dvc.lock and {save(args.folder)} JSON records saved to {args.folder}")
        return
    if not (args.folder / "dvc.lock").is_file():
        sys.exit(f"same_outputs: {args.folder / 'dvc.lock'} is missing; run `save {args.folder}` before the change")
    result = compare(
        yaml.safe_load((args.folder / "dvc.lock").read_text()),
        yaml.safe_load(Path("dvc.lock").read_text()),
        args.folder,
    )
    for line in result["differ"]:
        print(f"differs: {line}")
    print(
        f"same_outputs: {result['compared']} outputs in both locks; {len(result['differ'])} differ; "
        f"{result['records_timing_aside']} JSON records compared by value, timings aside; "
        f"{len(result['only_before'])} only before, {len(result['only_after'])} only after"
    )
    sys.exit(1 if result["differ"] else 0)


if __name__ == "__main__":
    main()
