import copy

import pytest

from orchestration import plan
from pipeline import methods
from pipeline import schema as P
from pipeline import task_schema as T
from tests.conftest import tiny_params, write_params


@pytest.fixture
def base(tmp_path):
    return tiny_params(tmp_path)


def load(tmp_path, params):
    """Every section checked, as `make repro`'s first step checks it (each stage checks the sections it reads)."""
    return plan.check(write_params(tmp_path, params))[0]


def test_the_shipped_params_file_is_valid():
    from tests.conftest import ROOT

    params = P.load(ROOT / "params.yaml")
    assert params.run.teachers and params.run.tasks


def test_tiny_profile_is_valid(tmp_path, base):
    params = load(tmp_path, base)
    assert params.teachers["tiny_b"].max_train == 150
    assert params.tasks["pairs"].text_b == "answer"


def rename(params, kind, old, new):
    """Rename a task or teacher everywhere params.yaml names it."""
    params[kind][new] = params[kind].pop(old)
    params["run"][kind] = [new if n == old else n for n in params["run"][kind]]


@pytest.mark.parametrize(
    "edit, key, words",
    [
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
        (lambda p: p["run"].update(methods=["ce", "rl_kd"]), "run.methods", "runs in the stage `agent` (run.agents)"),
        (lambda p: p["run"].update(agents=["ce"]), "run.agents", "runs in the stage `distill` (run.methods)"),
        (lambda p: p["run"].update(drop=["tiny_c"]), "run.drop", "'tiny_c' is not in run.teachers"),
        # wrong types
        (lambda p: p["teachers"]["tiny_a"].update(epochs="three"), "teachers.tiny_a.epochs", "valid integer"),
        (lambda p: p["distill"].update(lr="fast"), "distill.lr", "valid number"),
        (lambda p: p["distill"].update(t2_scaling="maybe"), "distill.t2_scaling", "valid boolean"),
        (lambda p: p["run"].update(seeds="1,2"), "run.seeds", "valid list"),
        (lambda p: p["methods"].update(rl_kd=[1]), "methods.rl_kd", "valid dictionary"),
        # unknown names, with the allowed values
        (
            lambda p: p["run"].update(methods=["ce", "majority_vote"]),
            "run.methods",
            "unknown method 'majority_vote'; expected one of ['ae_kd', ",
        ),
        (
            lambda p: p["methods"]["rl_kd"].update(reward="accuracy"),
            "methods.rl_kd.reward",
            "'held_out_accuracy', 'neg_ce' or 'neg_ce_kd'",
        ),
        (lambda p: p["compute"].update(device="gpu"), "compute.device", "'auto', 'cpu' or 'cuda'"),
        (
            lambda p: p["compute"].update(launch="torchrun -m"),
            "compute.launch",
            "'python -m' or 'accelerate launch -m'",
        ),
        (lambda p: p["methods"]["rl_kd"].update(no_teacher="skip"), "methods.rl_kd.no_teacher", "'equal' or 'ce'"),
        (
            lambda p: p["tasks"]["reviews"].update(encoding="latin-9"),
            "tasks.reviews.encoding",
            "unknown encoding 'latin-9'; expected a Python codec name such as 'utf-8', 'latin-1' or 'cp1252'",
        ),
        # out of range
        (lambda p: p["distill"].update(alpha=1.5), "distill.alpha", "less than or equal to 1"),
        (lambda p: p["distill"].update(temperature=0), "distill.temperature", "greater than or equal to 0.1"),
        (lambda p: p["tasks"]["reviews"].update(dev_fraction=1.2), "tasks.reviews.dev_fraction", "less than 1"),
        (lambda p: p["methods"]["rl_kd"].update(policy_lr=-1), "methods.rl_kd.policy_lr", "greater than 0"),
        (lambda p: p["methods"]["rl_kd"].update(policy_lr=0), "methods.rl_kd.policy_lr", "greater than 0"),
        (
            lambda p: (p["run"].update(agents=["effect_agent"]), p["methods"]["effect_agent"].update(reward="bleu")),
            "methods.effect_agent.reward",
            "'held_out_effect'",
        ),
        # the paper's RL-KD has no guard and no gate: they are this suite's agent's (effect_agent)
        (lambda p: p["methods"]["rl_kd"].update(guard="equal_weights"), "methods.rl_kd.guard", "unknown key"),
        (lambda p: p["methods"]["rl_kd"].update(gate=0.6), "methods.rl_kd.gate", "unknown key"),
        (lambda p: p["analysis"].update(confidence=0.3), "analysis.confidence", "greater than 0.5"),
        (lambda p: p["compute"].update(loader_workers=-1), "compute.loader_workers", "greater than or equal to 0"),
        (
            lambda p: p["methods"]["rl_kd"].update(warmup_epochs=5),
            "methods.rl_kd.warmup_epochs",
            "leaves no joint training",
        ),
        # missing keys
        (lambda p: p["tasks"]["reviews"].pop("path"), "tasks.reviews.path", "Field required"),
        (lambda p: p["run"].pop("teachers"), "run.teachers", "Field required"),
        (lambda p: p["teachers"]["tiny_a"].pop("source"), "teachers.tiny_a", "source"),
        # extra keys, most of them typos
        (lambda p: p["distill"].update(temprature=3.0), "distill.temprature", "did you mean 'temperature'"),
        (lambda p: p["methods"]["rl_kd"].update(rewrd="neg_ce"), "methods.rl_kd.rewrd", "did you mean 'reward'"),
        (lambda p: p["compute"].update(devise="cpu"), "compute.devise", "did you mean 'device'"),
        (lambda p: p.update(sead=1), "sead", "did you mean 'seed'"),
        (lambda p: p["distill"].update(colour="red"), "distill.colour", "unknown key"),
        # a careless or hostile params.yaml (issue 13): names and paths that would write outside the repository
        (lambda p: rename(p, "tasks", "reviews", "../../x-task"), "tasks", "'../../x-task' is not a plain name"),
        (lambda p: rename(p, "teachers", "tiny_a", "../../../x-teacher"), "teachers", "is not a plain name"),
        (lambda p: rename(p, "tasks", "reviews", "a/b"), "tasks", "'a/b' is not a plain name"),
        (lambda p: rename(p, "teachers", "tiny_a", "tiny-a"), "teachers", "'tiny-a' is not a plain name"),
        (
            lambda p: p["tasks"]["reviews"].update(path="/tmp/reviews.csv"),
            "tasks.reviews.path",
            "not a file inside user_data/",
        ),
        (
            lambda p: p["tasks"]["reviews"].update(path="user_data/../../x.csv"),
            "tasks.reviews.path",
            "inside user_data/",
        ),
        (lambda p: p["tasks"]["reviews"].update(path="reviews.csv"), "tasks.reviews.path", "inside user_data/"),
        (lambda p: p["assets"].update(dir="../../elsewhere"), "assets.dir", "Input should be 'assets'"),
        (lambda p: p["assets"].update(dir="pipeline"), "assets.dir", "Input should be 'assets'"),
        # a model built from a config: checked when params.yaml is read, not when distill builds the student
        (lambda p: p["student"].update(arch="nope"), "student.arch", "unknown model type 'nope'"),
        (
            lambda p: p["student"]["config"].update(hidden_size=30, num_attention_heads=4),
            "student.config",
            "hidden_size 30 is not a multiple of num_attention_heads 4",
        ),
        (
            lambda p: p["student"].update(max_length=100),
            "student.max_length",
            "100 is more than the 64 positions of the bert model",
        ),  # the tiny student has 64 position embeddings
        (
            lambda p: p["student"]["config"].update(num_hidden_layers=10**6),
            "student.config",
            "num_hidden_layers = 1000000 is beyond",
        ),
        (
            lambda p: p["teachers"]["tiny_a"]["config"].update(hidden_dropout_prob=float("nan")),
            "teachers.tiny_a.config",
            "hidden_dropout_prob must be a finite number",
        ),
        (
            lambda p: p["distill"].update(grid={"max_train": [10, 20]}),
            "distill",
            "'max_train' is not a hyper-parameter",
        ),
        # values that ran to a NaN loss, or a silently wrong result
        (lambda p: p["distill"].update(temperature=float("inf")), "distill.temperature", "finite number"),
        (lambda p: p["distill"].update(temperature=1e-300), "distill.temperature", "greater than or equal to 0.1"),
        (lambda p: p["distill"].update(lr=1e9), "distill.lr", "less than or equal to 1"),
        (
            lambda p: (
                p["run"]["methods"].append("w_ensemble"),
                p["methods"]["w_ensemble"].update(fixed_weights={"tiny_a": float("inf"), "tiny_b": 1.0}),
            ),
            "methods.w_ensemble.fixed_weights.tiny_a",
            "finite number",
        ),
        (lambda p: p["methods"]["rl_kd"].update(entropy=float("inf")), "methods.rl_kd.entropy", "finite number"),
        (lambda p: p["distill"].update(epochs=True), "distill.epochs", "valid integer"),
        (
            lambda p: p["methods"]["rl_kd"].update(pretrain_epochs=True),
            "methods.rl_kd.pretrain_epochs",
            "valid integer",
        ),
        (lambda p: p.update(seed=True), "seed", "valid integer"),
        (lambda p: p["distill"].update(epochs=3.0), "distill.epochs", "valid integer"),
        (lambda p: p["tasks"]["reviews"].update(labels=["neg", "neg", "pos"]), "tasks.reviews", "names a label twice"),
        (lambda p: p["student"].update(max_length=1), "student.max_length", "greater than or equal to 8"),
        (lambda p: p["run"].update(seeds=[1, 1, 2]), "run.seeds", "1 listed more than once"),
        (lambda p: p["run"].update(methods=["ce", "ce"]), "run.methods", "ce listed more than once"),
        (lambda p: p["run"].update(tasks=["reviews", "reviews"]), "run.tasks", "reviews listed more than once"),
        (lambda p: p["run"].update(teachers=["tiny_a", "tiny_a"]), "run.teachers", "tiny_a listed more than once"),
        (lambda p: p["run"].update(seeds=[]), "run.seeds", "at least 1 item"),
        # values that only waste hours
        (
            lambda p: p["methods"]["rl_kd"].update(pretrain_epochs=1_000_000),
            "methods.rl_kd.pretrain_epochs",
            "less than or equal to 100",
        ),
        (lambda p: p["analysis"].update(bootstrap=1000), "analysis.bootstrap", "unknown key"),
        (lambda p: p["distill"].update(epochs=10**6), "distill.epochs", "less than or equal to 1000"),
        # values that crashed with a traceback
        (lambda p: p.update(seed=-1), "seed", "greater than or equal to 0"),
        (lambda p: p.update(seed=2**32), "seed", "less than or equal to 4294967295"),
        (lambda p: p["run"].update(seeds=[1, 2**40]), "run.seeds.1", "less than or equal to 4294967295"),
        (
            lambda p: p["distill"].update(held_out_fraction=0.9999),
            "distill.held_out_fraction",
            "less than or equal to 0.5",
        ),
        # methods that need more than the run gives them
        (lambda p: p["run"].update(teachers=["tiny_a"]), "run.teachers", "ca_mkd weighs teachers against each other"),
        (
            lambda p: (p["run"]["methods"].append("ae_kd"), p["methods"]["ae_kd"].update(tolerance=0.49)),
            "methods.ae_kd.tolerance",
            "below 1/2",
        ),
        (
            lambda p: (
                p["run"]["methods"].append("mtkd_rl"),
                p["distill"].update(epochs=1),
                p["methods"]["rl_kd"].update(warmup_epochs=0),
            ),
            "distill.epochs",
            "at least 2 epochs",
        ),
    ],
)
def test_bad_values_name_the_key(tmp_path, base, edit, key, words):
    params = copy.deepcopy(base)
    edit(params)
    with pytest.raises(P.InputError) as err:
        load(tmp_path, params)
    assert key in str(err.value) and words in str(err.value)


def test_ae_kd_tolerance_of_exactly_one_over_k_means_equal_weights_and_is_valid(tmp_path, base):
    params = copy.deepcopy(base)
    params["run"]["methods"].append("ae_kd")
    params["methods"]["ae_kd"]["tolerance"] = 0.5
    assert plan.check(write_params(tmp_path, params))[1]["ae_kd"].tolerance == 0.5


def test_the_tweets_task_and_its_bad_values(tmp_path, base):
    base["tasks"]["tw"] = {"source": "tweets", "max_train": 2000, "max_dev": 500}
    base["assets"]["corpora"] = ["tweets"]
    task = load(tmp_path, base).tasks["tw"]
    assert isinstance(task, T.Tweets) and (task.dev_fraction, task.test_fraction, task.max_test) == (0.1, 0.5, None)
    for edit, words in (
        ({"test_fraction": 1.0}, "tasks.tw.test_fraction: Input should be less than 1"),
        ({"test_fracton": 0.3}, "tasks.tw.test_fracton: unknown key; did you mean 'test_fraction'"),
        ({"labels": ["a", "b"]}, "tasks.tw.labels: unknown key"),
    ):
        with pytest.raises(P.InputError) as err:
            load(tmp_path, {**base, "tasks": {**base["tasks"], "tw": {**base["tasks"]["tw"], **edit}}})
        assert words in str(err.value)


def test_asset_teacher_must_be_installed_by_the_assets_stage(tmp_path, base):
    base["teachers"]["l6"] = {"source": "asset", "name": "minilm_l6"}
    base["run"]["teachers"].append("l6")
    with pytest.raises(P.InputError, match=r"teachers.l6: asset 'minilm_l6' is not in assets.encoders"):
        load(tmp_path, base)


def test_a_task_whose_corpus_the_assets_stage_does_not_fetch_is_refused(tmp_path, base):
    base["tasks"]["tw"] = {"source": "tweets"}
    base["run"]["tasks"].append("tw")
    with pytest.raises(P.InputError, match=r"tasks.tw: its corpus 'tweets' is not in assets.corpora \[\]"):
        load(tmp_path, base)
    base["assets"]["corpora"] = ["tweets"]
    assert load(tmp_path, base).run.tasks[-1] == "tw"


def test_a_teachers_test_sample_is_a_positive_count(tmp_path, base):
    base["teachers"]["tiny_a"]["max_test"] = 0
    with pytest.raises(P.InputError, match=r"teachers.tiny_a.max_test: Input should be greater than 0"):
        load(tmp_path, base)


def test_a_section_that_dvc_tracks_must_be_present(tmp_path, base):
    del base["methods"]
    with pytest.raises(P.InputError, match=r"missing section\(s\) \[.methods.\]"):
        load(tmp_path, base)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(P.InputError, match="parameter file not found"):
        P.load(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "text, words",
    [
        ("seed: 0\nrun: [\n", "not valid YAML at line 3"),
        ("seed: 0\n  run: 1\n", "not valid YAML at line 2, column 6"),
        ("seed: 0\nseed: 1\n", "duplicate key"),
        ("- seed\n- run\n", "expected a mapping of sections"),
    ],
)
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


def test_yaml_aliases_that_expand_beyond_reason_are_refused_before_they_expand(tmp_path, base):
    """A "billion laughs" params.yaml: nine levels of ten aliases over a list of ten stand for 10^10 values."""
    path = write_params(tmp_path, base)
    bomb = "bomb: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"b{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
        f"*a{i - 1}, *a{i - 1}]\n"
        for i in range(1, 10)
    )
    path.write_text(bomb + path.read_text())
    # worked out: level 0 is a list of 10 scalars (11 values), level i a list of 10 level-(i-1) lists, so
    # size(i) = 1 + 10 size(i - 1) = (10^(i+2) - 1) / 9, and levels 0..9 sum to (10^2 + ... + 10^11 - 10) / 9
    # = 12,345,679,010; the mapping, its keys and the tiny profile's own values add a few hundred
    with pytest.raises(
        P.InputError,
        match=r"its YAML aliases expand to 12,345,679,\d\d\d values or more \(at most "
        r"100,000\)",
    ):
        P.load(path)


def test_an_alias_inside_itself_is_refused_not_a_recursion_error(tmp_path, base):
    path = write_params(tmp_path, base)
    path.write_text("loop: &a [1, *a]\n" + path.read_text())
    with pytest.raises(
        P.InputError, match=r"its YAML aliases expand to 100,\d\d\d values or more"
    ):  # counted as 100,001+
        P.load(path)


@pytest.mark.slow
def test_a_huge_file_without_aliases_is_called_what_it_is(tmp_path, base):
    path = write_params(tmp_path, base)
    path.write_text(path.read_text() + "big: [" + ", ".join(["1"] * 100_001) + "]\n")
    with pytest.raises(P.InputError, match=r"holds 100,\d\d\d values \(at most 100,000\); not a parameter file"):
        P.load(path)


def test_a_few_aliases_are_fine(tmp_path, base):
    """PyYAML writes an alias when one object appears twice: such a file is a valid params.yaml."""
    base["teachers"]["tiny_c"] = base["teachers"]["tiny_a"]
    path = write_params(tmp_path, base)
    assert "*id001" in path.read_text()
    assert P.load(path).teachers["tiny_c"] == P.load(path).teachers["tiny_a"]


@pytest.mark.slow
def test_a_file_nested_thousands_deep_is_refused(tmp_path, base):
    path = write_params(tmp_path, base)
    path.write_text(path.read_text() + "deep: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(P.InputError, match="nested too deeply to be a parameter file"):
        P.load(path)


# ---- the agents' sections: keys that only work together (the agent stage checks them before training) ----


@pytest.mark.parametrize(
    "section, rl, message",
    [
        (
            "rl_kd",
            {"weights": "soft"},
            r"methods\.rl_kd\.weights: soft makes the student learn from the selection probabilities",
        ),
        (
            "effect_agent",
            {"baseline_momentum": 0.5},
            "methods.effect_agent: baseline_momentum is not used by reward held_out_effect",
        ),
        (
            "effect_agent",
            {"reward": "gradient_alignment", "baseline_momentum": 0.5},
            "methods.effect_agent: baseline_momentum is not used by reward gradient_alignment",
        ),
        ("effect_agent", {"scalar_reward": "gain"}, "scalar_reward is not used by reward held_out_effect"),
        (
            "effect_agent",
            {"reward": "instance_ce_delta", "scalar_reward": "after"},
            "methods.effect_agent: scalar_reward is not used by reward instance",
        ),
        ("effect_agent", {"entropy": 0.01}, "methods.effect_agent: entropy is not used by reward held_out_effect"),
        (
            "effect_agent",
            {"reward": "instance_ce_delta", "gate": 0.5},
            "gate is not used by reward instance_ce_delta",
        ),
        ("rl_kd", {"state": ["ce", "ce"]}, r"methods\.rl_kd.*state: \['ce'\] named more than once"),
        # a named setting is validated by its file's schema, and its errors name its own section
        ("my_agent", {"method": "rl_kd", "reward": "held_out_effect"}, r"methods\.my_agent\.reward"),
        ("my_agent", {"method": "rl_kd", "warmup_epochs": 9}, r"methods\.my_agent\.warmup_epochs: 9 leaves no"),
        ("my_agent", {"method": "rl_kdd"}, r"methods\.my_agent\.method: 'rl_kdd' is not another method's file"),
    ],
)
def test_unworkable_rl_parameters_are_refused_naming_the_key(tmp_path, section, rl, message):
    """params.yaml settings that would be silently useless or break the policy gradient: refused when the
    agent stage checks its section, with a message that names the key."""
    values = tiny_params(tmp_path)
    values["methods"][section] = rl
    path = write_params(tmp_path, values)
    with pytest.raises(P.InputError, match=message):
        methods.check(P.load(path), [section], path)


@pytest.mark.parametrize(
    "section, rl",
    [
        ("rl_kd", {"reward": "neg_ce", "baseline_momentum": 0.5}),
        ("rl_kd", {"reward": "held_out_accuracy", "scalar_reward": "gain"}),
        ("effect_agent", {"reward": "instance_ce_delta", "baseline_momentum": 0.5}),
        ("rl_kd", {"reward": "neg_ce_kd", "entropy": 0.01}),
        ("effect_agent", {"reward": "held_out_effect", "gate": 0.5}),
    ],
)
def test_rl_parameters_a_reward_uses_are_accepted(tmp_path, section, rl):
    """The same keys with a reward that uses them: accepted, and kept as written."""
    values = tiny_params(tmp_path)
    values["methods"][section] = rl
    path = write_params(tmp_path, values)
    loaded = methods.check(P.load(path), [section], path)[section]
    assert {k: getattr(loaded, k) for k in rl} == rl


def test_a_named_setting_is_a_row_of_its_own_with_its_files_defaults(tmp_path):
    """`method: rl_kd` in a section of its own: the paper's RL-KD with that section's settings over the file's
    defaults (not another section's), run by the stage `agent`; the same name in run.methods is refused."""
    values = tiny_params(tmp_path)
    values["methods"]["rl_kd"] = {"reward": "neg_ce_kd"}  # another row's settings are not inherited
    values["methods"]["rl_kd_neg_ce"] = {"method": "rl_kd", "reward": "neg_ce"}
    values["run"]["agents"] = ["rl_kd", "rl_kd_neg_ce"]
    path = write_params(tmp_path, values)
    params = P.load(path)
    chosen = methods.run_methods(params, path)
    assert chosen["rl_kd_neg_ce"].reward == "neg_ce" and chosen["rl_kd"].reward == "neg_ce_kd"
    assert chosen["rl_kd_neg_ce"].state == ["pooled", "probs", "ce"] and chosen["rl_kd_neg_ce"].no_teacher == "ce"
    assert methods.stage_of("rl_kd_neg_ce", params.methods) == "agent"
    assert methods.load("rl_kd_neg_ce", params.methods) is methods.load("rl_kd")
    values["run"]["methods"] = ["ce", "rl_kd_neg_ce"]
    path = write_params(tmp_path, values)
    with pytest.raises(P.InputError, match="run.methods: rl_kd_neg_ce runs in the stage `agent`"):
        methods.run_methods(P.load(path), path)


def test_a_tasks_overrides_reach_its_own_stages_alone(tmp_path, base):
    base["tasks"]["pairs"]["overrides"] = {
        "teachers": {"tiny_b": {"max_train": 200, "epochs": 3}},
        "student": {"layers": 2},
        "distill": {"max_train": 120},
    }
    params = load(tmp_path, base)
    pairs, reviews = params.for_task("pairs"), params.for_task("reviews")
    assert reviews is params  # no overrides: the params as they are
    assert (pairs.teachers["tiny_b"].max_train, pairs.teachers["tiny_b"].epochs) == (200, 3)
    assert pairs.teachers["tiny_a"] == params.teachers["tiny_a"]  # not named: untouched
    assert (pairs.student.layers, pairs.distill.max_train) == (2, 120)
    assert (params.teachers["tiny_b"].max_train, params.student.layers) == (150, base["student"].get("layers"))
    # the card records a task's keys: one without overrides records what it did before they existed
    assert "overrides" not in params.tasks["reviews"].model_dump()
    assert params.tasks["pairs"].model_dump()["overrides"]["student"] == {"layers": 2}


@pytest.mark.parametrize(
    "over, words",
    [
        ({"teachers": {"tiny_b": {"max_trian": 200}}}, "tasks.pairs.overrides.teachers.tiny_b: ['max_trian'] not keys"),
        ({"teachers": {"tiny_c": {"epochs": 2}}}, "tasks.pairs.overrides.teachers: unknown teacher 'tiny_c'"),
        ({"student": {"layers": 0}}, "tasks.pairs.overrides.student.layers: Input should be greater than 0"),
        ({"distill": {"alpha": 2}}, "tasks.pairs.overrides.distill.alpha: Input should be less than or equal to 1"),
        ({"methods": {}}, "tasks.pairs.overrides.methods: unknown key"),
    ],
)
def test_bad_overrides_name_the_key(tmp_path, base, over, words):
    base["tasks"]["pairs"]["overrides"] = over
    with pytest.raises(P.InputError) as err:
        load(tmp_path, base)
    assert words in str(err.value)
