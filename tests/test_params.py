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
    # wrong types
    (lambda p: p["teachers"]["tiny_a"].update(epochs="three"), "teachers.tiny_a.epochs", "valid integer"),
    (lambda p: p["distill"].update(lr="fast"), "distill.lr", "valid number"),
    (lambda p: p["distill"].update(t2_scaling="maybe"), "distill.t2_scaling", "valid boolean"),
    (lambda p: p["run"].update(seeds="1,2"), "run.seeds", "valid list"),
    (lambda p: p.update(rl=[1]), "rl", "valid dictionary"),
    # unknown names, with the allowed values
    (lambda p: p["run"].update(methods=["ce", "majority_vote"]), "run.methods", "expected one of ['ce', "),
    (lambda p: p["rl"].update(reward="accuracy"), "rl.reward", "'held_out_accuracy', 'held_out_alignment'"),
    (lambda p: p["compute"].update(device="gpu"), "compute.device", "'auto', 'cpu' or 'cuda'"),
    (lambda p: p["compute"].update(launch="torchrun -m"), "compute.launch", "'python -m' or 'accelerate launch -m'"),
    (lambda p: p["distill"].update(no_teacher="skip"), "distill.no_teacher", "'ce' or 'equal'"),
    (lambda p: p["tasks"]["reviews"].update(encoding="latin-9"), "tasks.reviews.encoding",
     "unknown encoding 'latin-9'; expected a Python codec name such as 'utf-8', 'latin-1' or 'cp1252'"),
    # out of range
    (lambda p: p["distill"].update(alpha=1.5), "distill.alpha", "less than or equal to 1"),
    (lambda p: p["distill"].update(temperature=0), "distill.temperature", "greater than 0"),
    (lambda p: p["tasks"]["reviews"].update(dev_fraction=1.2), "tasks.reviews.dev_fraction", "less than 1"),
    (lambda p: p["rl"].update(policy_lr=-1), "rl.policy_lr", "greater than 0"),
    (lambda p: p["analysis"].update(confidence=0.3), "analysis.confidence", "greater than 0.5"),
    (lambda p: p["compute"].update(loader_workers=-1), "compute.loader_workers", "greater than or equal to 0"),
    (lambda p: p["rl"].update(warmup_epochs=5), "rl.warmup_epochs", "leaves no joint training"),
    # missing keys
    (lambda p: p["tasks"]["reviews"].pop("path"), "tasks.reviews.path", "Field required"),
    (lambda p: p["run"].pop("teachers"), "run.teachers", "Field required"),
    (lambda p: p["teachers"]["tiny_a"].pop("source"), "teachers.tiny_a", "source"),
    # extra keys, most of them typos
    (lambda p: p["distill"].update(temprature=3.0), "distill.temprature", "did you mean 'temperature'"),
    (lambda p: p["rl"].update(rewrd="neg_ce"), "rl.rewrd", "did you mean 'reward'"),
    (lambda p: p["compute"].update(devise="cpu"), "compute.devise", "did you mean 'device'"),
    (lambda p: p.update(sead=1), "sead", "did you mean 'seed'"),
    (lambda p: p["distill"].update(colour="red"), "distill.colour", "unknown key"),
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


@pytest.mark.parametrize("text, words", [
    ("seed: 0\nrun: [\n", "not valid YAML at line 3"),
    ("seed: 0\n  run: 1\n", "not valid YAML at line 2, column 6"),
    ("seed: 0\nseed: 1\n", "duplicate key"),
    ("- seed\n- run\n", "expected a mapping of sections"),
])
def test_a_file_that_is_not_a_params_mapping_is_refused(tmp_path, text, words):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(P.InputError, match=words):
        P.load(path)


def test_unquoted_yes_and_no_stay_strings_as_dvc_writes_them(tmp_path, base):
    """DVC rewrites params.yaml in YAML 1.2 after `dvc exp run -S`, leaving `no` and `yes` unquoted."""
    path = write_params(tmp_path, base)
    path.write_text(path.read_text().replace("- 'no'\n", "- no\n").replace("- 'yes'\n", "- yes\n"))
    assert "- no\n" in path.read_text()
    assert P.load(path).tasks["pairs"].labels == ["no", "yes"]
