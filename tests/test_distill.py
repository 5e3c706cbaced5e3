"""The distillation stage on the tiny profile: every method, determinism, bad input."""

import json
import os
import shutil
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline import cache, distill, finetune, methods, prepare, splits
from pipeline import schema as P
from pipeline.task_data import student_rows
from tests.conftest import edit_params, tiny_params, write_params

pytestmark = pytest.mark.slow  # trains models or runs DVC: out of the fast tier

# the registry's methods of the stage distill, and one family's two runs (single_<teacher>: run.single)
METHODS = [m for m in methods.files() if methods.load(m).stage == "distill"] + ["single_tiny_a", "single_tiny_b"]


def distill_params(root):
    params = tiny_params(root)
    chosen = [m for m in METHODS if not m.startswith("single_")]  # single_<teacher>: run.single, the stage single
    params["run"].update(tasks=["reviews"], methods=chosen, single=["tiny_a", "tiny_b"], seeds=[1, 2])
    return params


@contextmanager
def inside(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """A folder with the tiny task prepared, both tiny teachers fine-tuned and cached (built once)."""
    root = tmp_path_factory.mktemp("distill")
    write_params(root, distill_params(root))
    with inside(root):
        prepare.main("reviews")
        for teacher in ("tiny_a", "tiny_b"):
            finetune.main("reviews", teacher)
            cache.main("reviews", teacher)
    return root


@pytest.fixture
def repo(cached, monkeypatch):
    monkeypatch.chdir(cached)
    yield cached
    write_params(cached, distill_params(cached))


def test_every_method_writes_its_outputs(repo):
    test_ids = list(splits.load_split(repo / "data/reviews", "test").id)
    train_ids = list(splits.load_split(repo / "data/reviews", "train").id)
    for method in METHODS:
        distill.main("reviews", method, "1")
        out = repo / "runs/reviews" / method / "1"
        metrics = json.loads((out / "metrics.json").read_text())
        assert 0 <= metrics["test_accuracy"] <= 1 and metrics["best_epoch"] in (1, 2)
        assert metrics["student_parameters"] > 0 and metrics["student_inference_examples_per_s"] > 0
        assert metrics["provenance"]["seed"] == 1
        total = sum(metrics["teacher_weights"].values())
        assert total == pytest.approx(0.0 if method == "ce" else 1.0, abs=1e-5), method
        preds = pd.read_parquet(out / "predictions.parquet")
        assert list(preds.id) == test_ids and set(preds.columns) >= {"label", "pred", "prob_neg", "prob_pos"}
        weights = pd.read_parquet(out / "weights.parquet")
        assert list(weights.id) == train_ids and list(weights.columns) == ["id", "tiny_a", "tiny_b"]
        history = json.loads((out / "history.json").read_text())
        assert [h["epoch"] for h in history] == [1, 2]
    single = json.loads((repo / "runs/reviews/single_tiny_b/1/metrics.json").read_text())
    assert single["teacher_weights"] == {"tiny_a": 0.0, "tiny_b": 1.0}


@pytest.mark.parametrize("method, distinct", [("ca_mkd", 100), ("mtkd_rl", 100), ("ae_kd", 4)])  # ae_kd: per batch
def test_dynamic_methods_vary_per_instance(repo, method, distinct):
    distill.main("reviews", method, "1")
    w = pd.read_parquet(repo / f"runs/reviews/{method}/1/weights.parquet")  # the mean over the epochs, 180 rows
    rows, held_out = student_rows(len(w), 0.1, 0)  # distill.held_out_fraction's default; params seed 0
    trained = w.iloc[rows]
    assert trained.tiny_a.std() > 1e-3 and trained.tiny_a.round(5).nunique() >= distinct
    assert ((trained.tiny_a + trained.tiny_b) - 1).abs().max() < 1e-5
    assert (w.iloc[held_out][["tiny_a", "tiny_b"]] == 0).all().all()  # never trained on: no weights


def test_mtkd_rl_records_its_agent(repo):
    distill.main("reviews", "mtkd_rl", "1")
    history = json.loads((repo / "runs/reviews/mtkd_rl/1/history.json").read_text())
    assert all(h["agent_loss"] >= 0 and 0 <= h["reward_mean"] <= 1 for h in history)
    assert all(sum(h["agent_mix"]) == pytest.approx(1.0) for h in history)


def test_same_seed_same_numbers(repo):
    def run(seed):
        distill.main("reviews", "rand_single", seed)
        out = repo / "runs/reviews/rand_single" / seed
        return (
            json.loads((out / "history.json").read_text()),
            pd.read_parquet(out / "predictions.parquet"),
            pd.read_parquet(out / "weights.parquet"),
        )

    first, again, other = run("2"), run("2"), run("1")
    assert [h["train_loss"] for h in first[0]] == [h["train_loss"] for h in again[0]]
    pd.testing.assert_frame_equal(first[1], again[1])
    pd.testing.assert_frame_equal(first[2], again[2])
    assert [h["train_loss"] for h in first[0]] != [h["train_loss"] for h in other[0]]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p: p["distill"].update(alpha=1.5), "distill.alpha: Input should be less than or equal to 1"),
        (
            lambda p: p["distill"].update(temperature=0),
            "distill.temperature: Input should be greater than or equal to 0.1",
        ),
        (lambda p: p["methods"]["w_ensemble"].update(fixed_weights={"tiny_a": 1.0}), "give one weight per teacher"),
        (
            lambda p: p["methods"]["w_ensemble"].update(fixed_weights={"tiny_a": 1.0, "tiny_b": -1.0}),
            "methods.w_ensemble.fixed_weights.tiny_b: Input should be greater than or equal to 0",
        ),
        (
            lambda p: p["methods"]["w_ensemble"].update(fixed_weights={"tiny_a": 0.0, "tiny_b": 0.0}),
            "the weights sum to zero",
        ),
        (lambda p: p["run"].update(methods=["u_ensemble", "v_ensemble"]), "unknown method 'v_ensemble'"),
    ],
)
def test_bad_parameters_stop_before_training(repo, edit, message):
    edit_params(repo, edit)
    with pytest.raises(P.InputError, match=message):
        distill.main("reviews", "w_ensemble", "3")
    assert not (repo / "runs/reviews/w_ensemble/3").exists()


def test_unknown_method_and_bad_seed_on_the_command_line(repo):
    with pytest.raises(P.InputError, match=r"^command line: unknown method 'single_bert'.*single_tiny_a"):
        distill.main("reviews", "single_bert", "1")
    with pytest.raises(P.InputError, match=r"seed must be an integer from 0 to 2\*\*32 - 1, got 'one'"):
        distill.main("reviews", "ce", "one")


def test_cache_from_another_split_is_refused(repo):
    edit_params(repo, lambda p: p["tasks"]["reviews"].update(max_dev=20))
    prepare.main("reviews")  # the dev split changes; the teacher caches do not
    try:
        with pytest.raises(P.InputError, match=r"logits/reviews/tiny_a/dev.safetensors: computed on other data"):
            distill.main("reviews", "u_ensemble", "3")
        assert not (repo / "runs/reviews/u_ensemble/3").exists()
    finally:
        edit_params(repo, lambda p: p["tasks"]["reviews"].pop("max_dev"))
        prepare.main("reviews")


def test_a_student_grid_keeps_the_best_point_on_dev_and_equals_that_point_run_alone(repo):
    edit_params(repo, lambda p: p["distill"].update(grid={"lr": [1e-6, 2e-3], "alpha": [0.5]}))
    distill.main("reviews", "u_ensemble", "3")
    out = repo / "runs/reviews/u_ensemble/3"
    grid_run = json.loads((out / "metrics.json").read_text())
    assert [(g["lr"], g["alpha"]) for g in grid_run["grid"]] == [(1e-6, 0.5), (2e-3, 0.5)]
    assert grid_run["dev_accuracy"] == max(g["dev_accuracy"] for g in grid_run["grid"])
    selected, preds = grid_run["selected"], pd.read_parquet(out / "predictions.parquet")
    # every point trains from the same seed: the selected point run on its own gives the same student
    edit_params(repo, lambda p: p["distill"].update(grid={}, lr=selected["lr"], alpha=selected["alpha"]))
    distill.main("reviews", "u_ensemble", "3")
    alone = json.loads((out / "metrics.json").read_text())
    assert alone["dev_accuracy"] == grid_run["dev_accuracy"] and "grid" not in alone
    pd.testing.assert_frame_equal(pd.read_parquet(out / "predictions.parquet"), preds)


def test_a_student_trained_on_part_of_train_reads_its_rows_of_the_cache(cached, tmp_path, monkeypatch):
    """distill.max_train below the train size: the cache stage caches the students' rows alone, and each kept
    example gets its own teacher outputs (those the teacher gives it in the whole split's cache)."""
    from pipeline import logits

    repo = tmp_path / "repo"  # a copy: its cache is rewritten, which the other tests must not see
    shutil.copytree(cached, repo)
    monkeypatch.chdir(repo)
    seen = {}
    start = distill.start

    def spy(params, point, task_data, *rest):
        seen.update(ids=list(task_data.splits["train"].id), logits=task_data.cache["train"]["logits"].clone())
        return start(params, point, task_data, *rest)

    monkeypatch.setattr(distill, "start", spy)
    full = splits.load_split(repo / "data/reviews", "train")
    teachers = ["tiny_a", "tiny_b"]
    whole = {t: logits.load(repo / f"logits/reviews/{t}/train.safetensors", full)["logits"] for t in teachers}
    edit_params(repo, lambda p: p["distill"].update(max_train=50))
    for teacher in teachers:
        cache.main("reviews", teacher)
    distill.main("reviews", "best_single", "3")
    assert len(seen["ids"]) == 50 < len(full) and len(set(seen["ids"])) == 50
    kept = full[full.id.isin(seen["ids"])].reset_index(drop=True)
    assert list(kept.id) == seen["ids"]  # in the split's order
    for k, teacher in enumerate(teachers):
        cached = logits.load(repo / f"logits/reviews/{teacher}/train.safetensors", kept)["logits"]
        assert cached.shape[0] == 50  # the students' rows, no more
        rows = [full.index[full.id == i][0] for i in seen["ids"]]
        assert torch.equal(seen["logits"][:, k], cached)
        # padding to other batch lengths may move the last float bits, no more
        assert torch.allclose(cached, whole[teacher][rows], atol=1e-5)
    weights = pd.read_parquet(repo / "runs/reviews/best_single/3/weights.parquet")
    assert list(weights.id) == seen["ids"]


def test_a_loss_that_is_not_finite_stops_the_run_with_nothing_written(repo, monkeypatch):
    calls = []

    def poisoned(*args, **kwargs):  # a loss that turns NaN at the third batch, as an overflow would
        calls.append(1)
        loss = student_loss(*args, **kwargs)
        return loss * float("nan") if len(calls) == 3 else loss

    from pipeline.losses import student_loss

    monkeypatch.setattr(distill, "student_loss", poisoned)
    with pytest.raises(
        P.InputError,
        match=r"u_ensemble epoch 1: the training loss is nan at batch 3; stopped, "
        "nothing written",
    ):
        distill.main("reviews", "u_ensemble", "4")
    assert not (repo / "runs/reviews/u_ensemble/4").exists()


def test_a_teacher_whose_loss_is_not_finite_stops_with_nothing_written(repo, monkeypatch):
    monkeypatch.setattr(finetune.F, "cross_entropy", lambda *a, **k: torch.tensor(float("inf"), requires_grad=True))
    edit_params(repo, lambda p: p["teachers"].update(fresh=p["teachers"]["tiny_a"]))
    with pytest.raises(P.InputError, match=r"fresh epoch 1: the training loss is inf at batch 1"):
        finetune.main("reviews", "fresh")
    assert not (repo / "models/reviews/fresh").exists()


@pytest.mark.parametrize("seed", ["-1", "4294967296", "1e3"])
def test_a_seed_outside_numpys_range_is_refused_on_the_command_line(repo, seed):
    with pytest.raises(P.InputError, match=rf"seed must be an integer from 0 to 2\*\*32 - 1, got '{seed}'"):
        distill.main("reviews", "ce", seed)


def test_a_student_from_python_equals_the_stage_run(cached, tmp_path, monkeypatch):
    """The library path: load_task and distill from another folder (no chdir), a setting changed with
    model_copy, give the same test predictions as the stage's main() run with that setting in params.yaml."""
    monkeypatch.chdir(tmp_path)
    params = P.load(cached / "params.yaml")
    params = params.model_copy(update={"distill": params.distill.model_copy(update={"lr": 1e-3})})
    task = distill.load_task(params, "reviews", root=cached)
    student = distill.distill(params, task, "w_ensemble", 2)
    assert len(student.history) == 2 and student.setting.lr == 1e-3 and student.grid == []
    assert student.test_logits.shape == (len(task.splits["test"]), 2)

    monkeypatch.chdir(cached)
    edit_params(cached, lambda p: p["distill"].update(lr=1e-3))
    try:
        distill.main("reviews", "w_ensemble", "2")
    finally:
        write_params(cached, distill_params(cached))
    preds = pd.read_parquet(cached / "runs/reviews/w_ensemble/2/predictions.parquet")
    assert preds.pred.tolist() == student.test_logits.argmax(-1).tolist()
    assert np.allclose(preds.prob_pos, student.test_logits.softmax(-1)[:, 1].numpy(), atol=1e-7)
