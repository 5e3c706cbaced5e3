"""The orchestration package stands apart: no stage imports it, it has no import circle, and the DVC internals it
uses are where orchestration/dvc_api.py expects them in the pinned DVC."""

from __future__ import annotations

import ast
import json
import os
import re

import networkx as nx
import pytest

from orchestration import dvc_api
from tests.conftest import ROOT


def imports(package: str) -> dict[str, set[str]]:
    """Each module of `package` (dotted name) with the modules of this repository it imports."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        here = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package `here`, `level - 1` packages up
                    parent = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                    base = f"{parent}.{base}" if base else parent
                found |= {base} | {f"{base}.{a.name}" for a in node.names}
        out[name] = {m for m in found if m.split(".")[0] in ("pipeline", "analysis", "orchestration")}
    return out


def test_dvc_internals_are_where_dvc_api_expects_them():
    dvc_api.check()


def test_a_moved_internal_is_named(monkeypatch):
    monkeypatch.setattr(dvc_api, "USED", (*dvc_api.USED, ("dvc.repo.Repo", "no_such_internal")))
    with pytest.raises(RuntimeError, match=r"dvc\.repo\.Repo\.no_such_internal is gone; orchestration/dvc_api\.py"):
        dvc_api.check()


@pytest.mark.parametrize("package", ["pipeline", "analysis"])
def test_no_stage_imports_the_orchestration(package):
    offenders = {m: sorted(i) for m, i in imports(package).items() if any(x.startswith("orchestration") for x in i)}
    assert offenders == {}


def test_no_import_circle():
    """Across the stages, the analysis and the orchestration."""
    mods = {m: i for package in ("pipeline", "analysis", "orchestration") for m, i in imports(package).items()}
    graph = nx.DiGraph([(m, i) for m, found in mods.items() for i in found if i in mods and i != m])
    assert list(nx.simple_cycles(graph)) == []


def test_same_outputs_sets_timings_aside_and_nothing_else(tmp_path, monkeypatch):
    """Worked by hand: the parquet's MD5 equal (same), the weights' MD5 moved (differs), metrics.json's MD5 moved
    but only its seconds and provenance changed (same), history.json's MD5 moved with a loss changed (differs)."""
    from orchestration import same_outputs

    monkeypatch.chdir(tmp_path)
    saved = tmp_path / "saved"

    def lock(weights, metrics, history):
        outs = [("p.parquet", "aa"), ("w.parquet", weights), ("metrics.json", metrics), ("history.json", history)]
        return {"stages": {"distill@t-m-1": {"outs": [{"path": p, "md5": m} for p, m in outs]}}}

    for folder, seconds, loss in ((saved, 12.5, 0.5), (tmp_path, 13.1, 0.4)):
        folder.mkdir(exist_ok=True)
        (folder / "metrics.json").write_text(
            json.dumps({"test_accuracy": 0.7, "train_seconds": seconds, "provenance": {"t": seconds}})
        )
        (folder / "history.json").write_text(json.dumps([{"epoch": 1, "train_loss": loss, "seconds": seconds}]))
    result = same_outputs.compare(lock("bb", "cc", "dd"), lock("bx", "cx", "dx"), saved)
    assert result["differ"] == ["distill@t-m-1: history.json at [0]/train_loss", "distill@t-m-1: w.parquet"]
    assert result["compared"] == 4 and result["records_timing_aside"] == 2


@pytest.mark.slow  # starts three Pythons
def test_a_second_runner_of_one_workspace_is_refused_until_the_first_ends(tmp_path):
    """`make study` (or `make repro`) while another runs in the same workspace: refused with who holds it, before
    it reads anything; once the first has ended, killed or not, the lock is free again."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(
        [sys.executable, "-c", "from pathlib import Path; from orchestration.workspace import hold; "
         "hold(Path('.'), 'make study'); print('held', flush=True); input()"],
        cwd=tmp_path, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert first.stdout.readline() == "held\n"
        for module in ("orchestration.study", "orchestration.cluster"):
            second = subprocess.run(
                [sys.executable, "-m", module], cwd=tmp_path, env=env, capture_output=True, text=True
            )
            assert second.returncode == 2, second.stderr
            assert re.fullmatch(
                rf"error: python -m {module}[^:]*: this workspace is busy: make study \(pid {first.pid}\) holds "
                r"\S+/\.dvc/tmp/runner\.lock; let it finish \(or stop it\) and run this again\n",
                second.stderr,
            ), second.stderr
    finally:
        first.kill()  # as a SIGKILL would: the kernel releases the lock
        first.wait()
    after = subprocess.run(
        [sys.executable, "-m", "orchestration.study"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert "busy" not in after.stderr and after.returncode == 2, after.stderr  # on to its next check: no params file
