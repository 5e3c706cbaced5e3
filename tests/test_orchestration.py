"""The orchestration package stands apart: no stage imports it, it has no import circle, and the DVC internals it
uses are where orchestration/dvc_api.py expects them in the pinned DVC."""

from __future__ import annotations

import ast

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


def test_the_orchestration_has_no_import_circle():
    mods = imports("orchestration")
    graph = nx.DiGraph([(m, i) for m, found in mods.items() for i in found if i in mods and i != m])
    assert list(nx.simple_cycles(graph)) == []
