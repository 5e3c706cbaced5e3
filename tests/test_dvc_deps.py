"""dvc.yaml tells the truth: every stage lists, as deps, every module of this repository that its command
runs (followed through the imports, transitively), so that a change to any of them makes DVC rerun it."""

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import methods
from tests.conftest import ROOT, run

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
# the registry's methods, a file or a package each
METHOD_CODE = {f"pipeline/methods/{m}.py" for m in methods.files()} | {
    f"pipeline/methods/{m}/" for m in methods.files()
}


def module_file(name: str) -> Path | None:
    """The file of a dotted module name within the repository, or None for a third-party module."""
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(path: Path) -> set[str]:
    """Dotted names of every module that `path` imports anywhere (top level or inside a function)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names, tree = set(), ast.parse(path.read_text())
    typing_only = {  # `if TYPE_CHECKING:` imports: for annotations, never run
        id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for stmt in block.body for n in ast.walk(stmt)
    }  # fmt: skip
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from . import data` or `from .io import sha256`
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def closure(module: str) -> set[Path]:
    """Every repository file that running `python -m module` executes, following imports."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        # importing a.b.c runs a/__init__.py and a/b/__init__.py too
        for i in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imports_of(path))
    # an empty package marker cannot change what a stage computes; one with code in it must be listed
    return {p for p in seen if not (p.name == "__init__.py" and p.stat().st_size == 0)}


def command_module(cmd: str) -> str:
    """`python -m pipeline.distill ${item.task} ...` or `${compute.launch} pipeline.finetune ...` -> the module."""
    found = re.search(r"(?:^|\s)((?:pipeline|analysis)(?:\.\w+)+)", cmd)
    assert found, f"cannot find the module that {cmd!r} runs"
    return found.group(1)


def method_modules(name: str, cmd: str) -> dict[str, str]:
    """The methods a student stage's command runs, as {what `${item.method}` stands for: module}: `distill`
    runs the method files of the stage `distill`, `agent` those of the stage `agent` (its named settings run the
    same files); `single` and `drop` their family's file."""
    found = re.search(r"pipeline\.distill \S+ (\S+)", cmd)
    if not found:
        return {"": ""}
    method = found.group(1)
    if method == "${item.method}":
        agents = {m for m in methods.files() if methods.load(m).stage == "agent"}
        ran = agents if name == "agent" else set(methods.files()) - agents
        return {m: f"pipeline.methods.{m}" for m in ran}
    return {"": "pipeline.methods." + methods.family(method.replace("${item.teacher}", "x"))}


def covered(path: Path, deps: list) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    names = [d if isinstance(d, str) else next(iter(d)) for d in deps]
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in names)


def test_every_stage_command_runs_a_module_of_this_repository():
    for name, stage in STAGES.items():
        assert module_file(command_module(stage["do"]["cmd"] if "do" in stage else stage["cmd"])), name


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stage_lists_every_module_its_command_imports(name):
    """A student stage loads its method's module by name (methods.load): its deps must cover that module's
    imports too, for every method the stage can run, with `${item.method}` standing for the method."""
    stage = STAGES[name].get("do", STAGES[name])
    for method, module in method_modules(name, stage["cmd"]).items():
        needed = closure(command_module(stage["cmd"])) | (closure(module) if module else set())
        deps = [d.replace("${item.method}", method) if isinstance(d, str) else d for d in stage["deps"]]
        missing = sorted(p.relative_to(ROOT).as_posix() for p in needed if not covered(p, deps))
        assert not missing, f"dvc.yaml: stage {name!r} runs {missing} (method {method!r}) but does not list them"


def test_a_student_run_depends_on_no_method_but_its_own():
    """What makes adding or tuning a method rerun that method's runs only: the training loop imports no method."""
    loop = {p.relative_to(ROOT).as_posix() for p in closure("pipeline.distill")}
    assert not {f for f in loop if any(f == m + ".py" or f.startswith(m + "/") for m in METHOD_CODE)}
    assert {"pipeline/methods/__init__.py", "pipeline/methods/weighting.py"} <= loop
    for stage in ("distill", "single", "drop", "agent"):
        assert "params" not in STAGES[stage]["params"] and "methods" not in STAGES[stage]["params"]


def test_the_import_walk_follows_relative_lazy_and_absolute_imports():
    # worked out by reading the files: cache.py imports models.py at the top; models.py imports assets.py
    # inside a function; assets.py imports onnx_bert.py inside a function; analysis/collect.py imports
    # pipeline/logits.py inside a function, with an absolute import; splits.py imports params_file.py
    cache = {p.relative_to(ROOT).as_posix() for p in closure("pipeline.cache")}
    assert {"pipeline/cache.py", "pipeline/models.py", "pipeline/assets.py", "pipeline/onnx_bert.py"} <= cache
    assert "pipeline/methods/rl_kd/agent.py" not in cache and "pipeline/distill.py" not in cache
    collect = {p.relative_to(ROOT).as_posix() for p in closure("analysis.collect")}
    assert {"pipeline/logits.py", "pipeline/splits.py", "pipeline/params_file.py"} <= collect


@pytest.mark.slow  # runs DVC
def test_editing_a_module_makes_dvc_status_name_the_stages_that_run_it(tiny_repo):
    """cache.py runs models.py (through `models.load`): an edit to it must leave cache@... out of date."""
    done = run([sys.executable, "-m", "dvc", "repro", "-q", "cache@reviews-tiny_a"], tiny_repo)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    def stale():
        out = run([sys.executable, "-m", "dvc", "status", "--with-deps", "cache@reviews-tiny_a"], tiny_repo)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert "up to date" in stale()
    models = tiny_repo / "pipeline" / "models.py"
    models.write_text(models.read_text() + "\n# an edit\n")
    status = stale()
    for stage in ("finetune@reviews-tiny_a", "cache@reviews-tiny_a"):
        assert f"{stage}:" in status, status
    assert "modified:           pipeline/models.py" in status
    assert "prepare@reviews" not in status  # prepare runs no model code

    agent = tiny_repo / "pipeline" / "methods" / "rl_kd" / "agent.py"  # only the student stages run the agent
    models.write_text(models.read_text().removesuffix("\n# an edit\n"))
    agent.write_text(agent.read_text() + "\n# an edit\n")
    assert "up to date" in stale()
