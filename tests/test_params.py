import copy

import pytest

from pipeline import params as P
from tests.conftest import tiny_params, write_params


@pytest.fixture
def base(tmp_path):
    return tiny_params(tmp_path)


def load(tmp_path, params):
    return P.load(write_params(tmp_path, params))


def test_the_shipped_params_file_is_valid():
    from tests.conftest import ROOT
    params = P.load(ROOT / "params.yaml")
    assert params.run.teachers and params.run.tasks


def test_tiny_profile_is_valid(tmp_path, base):
    params = load(tmp_path, base)
    assert params.teachers["tiny_b"].max_train == 150
    assert params.tasks["pairs"].text_b == "answer"


@pytest.mark.parametrize("edit, key, words", [
    (lambda p: p["tasks"]["reviews"].update(max_train=0), "tasks.reviews.max_train", "greater than 0"),
    (lambda p: p["tasks"]["pairs"].update(max_test=-3), "tasks.pairs.max_test", "greater than 0"),
    (lambda p: p["teachers"]["tiny_a"].update(max_train=0), "teachers.tiny_a.max_train", "greater than 0"),
    (lambda p: p["teachers"]["tiny_a"].update(lr=0), "teachers.tiny_a.lr", "greater than 0"),
    (lambda p: p["run"].update(teachers=["tiny_a", "nobody"]), "run.teachers", "'nobody'"),
    (lambda p: p["run"].update(tasks=["sst9"]), "run.tasks", "'sst9'"),
    (lambda p: p["teachers"]["tiny_a"].update(epocs=3), "teachers.tiny_a.epocs", "did you mean 'epochs'"),
    (lambda p: p["teachers"].update(x={"source": "asset", "name": "gpt9"}), "teachers.x", "unknown asset 'gpt9'"),
    (lambda p: p["teachers"].update(x={"source": "path"}), "teachers.x", "`name` is required"),
    (lambda p: p["tasks"]["reviews"].update(source="imdb"), "tasks.reviews", "source"),
    (lambda p: p["assets"].update(encoders=["bert_huge"]), "assets.encoders.0", "mpnet"),
    (lambda p: p.update(seed="zero"), "seed", "integer"),
    (lambda p: p["run"].update(methods=["ce", "rl_kd"]), "run.methods", "its own stage, `rl_kd`"),
])
def test_bad_values_name_the_key(tmp_path, base, edit, key, words):
    params = copy.deepcopy(base)
    edit(params)
    with pytest.raises(P.InputError) as err:
        load(tmp_path, params)
    assert key in str(err.value) and words in str(err.value)


def test_asset_teacher_must_be_installed_by_the_assets_stage(tmp_path, base):
    base["teachers"]["l6"] = {"source": "asset", "name": "minilm_l6"}
    base["run"]["teachers"].append("l6")
    with pytest.raises(P.InputError, match=r"teachers.l6: asset 'minilm_l6' is not in assets.encoders"):
        load(tmp_path, base)


def test_a_section_that_dvc_tracks_must_be_present(tmp_path, base):
    del base["rl"]
    with pytest.raises(P.InputError, match=r"missing section\(s\) \['rl'\]"):
        load(tmp_path, base)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(P.InputError, match="parameter file not found"):
        P.load(tmp_path / "nope.yaml")
