"""Benchmark: what `dvc repro` reruns, and how long it takes, when nothing or one RL-KD parameter changed.

On this workspace (the embedded default, which must be up to date): the time of a `dvc repro` with
nothing changed, and the stages a change of `methods.rl_kd.policy_lr` would rerun (`dvc repro --dry`; params.yaml
is restored byte for byte afterwards). On the test suite's tiny profile in a temporary DVC project:
the same two cases run for real, timed.
Usage: python -m benchmarks.repro
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]


def dvc(args: list[str], cwd: Path) -> tuple[float, str]:
    # the stages' commands call `python`: this interpreter's, whether or not its venv is activated
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"dvc {' '.join(args)} failed in {cwd}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - start, done.stdout


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def change_rl(params_file: Path) -> None:
    """Double methods.rl_kd.policy_lr, leaving the rest of the file as it is (a round trip through DVC's YAML 1.2)."""
    yaml = YAML()
    params = yaml.load(params_file.read_text())
    rl = params["methods"]["rl_kd"]
    rl["policy_lr"] = rl.get("policy_lr", 0.05) * 2
    with params_file.open("w") as f:
        yaml.dump(params, f)


def workspace(root: Path = ROOT) -> dict:
    _, status = dvc(["status"], root)
    if "up to date" not in status:  # else `dvc repro` would run for real, perhaps for an hour
        raise RuntimeError("the workspace is not up to date (`dvc status`); run `dvc repro` first")
    seconds, out = dvc(["repro"], root)
    ran = stages_run(out)
    params_file = root / "params.yaml"
    original = params_file.read_bytes()
    try:
        change_rl(params_file)
        _, dry = dvc(["repro", "--dry"], root)
    finally:
        params_file.write_bytes(original)
    return {
        "nothing_changed_s": round(seconds, 1),
        "nothing_changed_stages_run": ran,
        "rl_change_would_run": sorted(stages_run(dry)),
    }


def tiny() -> dict:
    sys.path.insert(0, str(ROOT))
    from tests.conftest import tiny_params, write_params

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp)
        shutil.copy(ROOT / "dvc.yaml", repo)
        for package in ("pipeline", "analysis"):
            shutil.copytree(ROOT / package, repo / package, ignore=shutil.ignore_patterns("__pycache__"))
        write_params(repo, tiny_params(repo))
        dvc(["init", "--no-scm", "-q"], repo)
        first, out = dvc(["repro"], repo)
        total = len(stages_run(out))
        second, out2 = dvc(["repro"], repo)
        change_rl(repo / "params.yaml")
        third, out3 = dvc(["repro"], repo)
    return {
        "first_s": round(first, 1),
        "stages": total,
        "nothing_changed_s": round(second, 1),
        "nothing_changed_stages_run": stages_run(out2),
        "rl_change_s": round(third, 1),
        "rl_change_stages_run": sorted(stages_run(out3)),
    }


def measure() -> dict:
    return {
        "workspace": workspace(),
        "tiny_profile": tiny(),
        "target": "a few seconds with nothing changed; after an rl change only rl_kd@* and analyze",
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
