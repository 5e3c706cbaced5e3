"""The methods registry: a method is one file of pipeline/methods/ and one section of params.yaml."""

import shutil
import subprocess
import sys

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
