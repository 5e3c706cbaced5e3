"""The methods registry: a method is one file of pipeline/methods/ and one section of params.yaml, and the
registry is the one list of methods that dvc.yaml and the analysis agree with."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from analysis.decision import FIXED_KD
from pipeline import methods
from tests.conftest import ROOT, tiny_params, write_params
from tests.new_method import METHOD_FILE

CHECK = """
from pipeline import methods, schema
from pipeline.params_file import InputError
params = schema.load("params.yaml")
assert "confident" in methods.names(params.run.teachers)
assert methods.check(params, ["confident"])["confident"].sharpness == 2.0
params.methods["confident"] = {"sharpness": -1}
try:
    methods.check(params, ["confident"])
except InputError as err:
    print(err)
del params.methods["confident"]
try:
    methods.check(params, ["confident"])
except InputError as err:
    print(err)
"""


def test_a_new_method_is_one_file_and_one_section(tmp_path):
    """Written into a copy of pipeline/, the file is found by name, its section validated by its own schema, and
    a missing section refused (DVC would stop at it), each error naming the key."""
    shutil.copytree(ROOT / "pipeline", tmp_path / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "pipeline/methods/confident.py").write_text(METHOD_FILE)
    params = tiny_params(tmp_path)
    params["methods"]["confident"] = {"sharpness": 2.0}
    write_params(tmp_path, params)
    done = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "methods.confident.sharpness: Input should be greater than 0" in done.stdout
    assert "missing section methods.confident" in done.stdout


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def paths(block: dict) -> set[str]:
    """Every output a stage block of dvc.yaml declares (outs, metrics, plots), as written."""
    do = block.get("do", block)
    return {p if isinstance(p, str) else next(iter(p)) for key in ("outs", "metrics", "plots") for p in do.get(key, [])}


@pytest.mark.parametrize("stage", methods.stages())
def test_each_student_stage_of_the_registry_is_a_stage_of_dvc_yaml(stage):
    """The registry names the student stages (the families' and those methods declare); dvc.yaml must run each
    with the training loop, and declare each file that its methods add to a run."""
    assert stage in STAGES, f"dvc.yaml has no stage {stage!r}, which the registry's methods run in"
    assert "python -m pipeline.distill" in STAGES[stage].get("do", STAGES[stage])["cmd"]
    declared = {Path(p).name for p in paths(STAGES[stage])}
    for name in methods.files():
        method = methods.load(name)
        if method.stage == stage:
            assert set(method.files) <= declared, f"dvc.yaml: stage {stage!r} does not declare {name}'s {method.files}"


def test_dvc_yaml_trains_students_only_in_the_registrys_stages():
    trains = {name for name, b in STAGES.items() if "pipeline.distill" in b.get("do", b)["cmd"]}
    assert trains == set(methods.stages())


def test_the_premise_family_is_registered_methods_with_fixed_rules():
    """analysis/decision.py's FIXED_KD (the premise: KD with teacher weights a rule fixes, v `ce`) as declared
    before the runs: each a method of the registry that learns nothing during the run."""
    for name in FIXED_KD:
        assert name in methods.files() and methods.load(name).kind in ("fixed", "adaptive"), name
