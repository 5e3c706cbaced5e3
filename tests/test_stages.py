"""The stage modules called directly on the tiny profile (the DVC wiring is tested in test_pipeline)."""

import json
import sys

import pytest
import torch

from pipeline import cache, finetune, io, logits, prepare, splits
from pipeline import schema as P
from tests.conftest import run, tiny_params, write_params

pytestmark = pytest.mark.slow  # trains models or runs DVC: out of the fast tier


def read(path):
    return json.loads(path.read_text())


def test_finetune_then_cache(workdir):
    prepare.main("reviews")
    finetune.main("reviews", "tiny_a")
    metrics = read(workdir / "models/reviews/tiny_a/metrics.json")
    assert metrics["dev_accuracy"] > 0.8, metrics  # the label is one keyword: a tiny model must learn it
    assert metrics["best_epoch"] in (1, 2) and len(metrics["history"]) == 2
    assert metrics["provenance"]["seed"] == 0 and "torch" in metrics["provenance"]["versions"]

    cache.main("reviews", "tiny_a")
    summary = read(workdir / "logits/reviews/tiny_a/summary.json")
    assert sorted(f.name for f in (workdir / "logits/reviews/tiny_a").iterdir()) == [
        "dev.safetensors",
        "summary.json",
        "train.safetensors",
    ]  # the test set is the students' alone
    for split in logits.CACHED_SPLITS:
        df = splits.load_split(workdir / "data/reviews", split)
        values = logits.load(workdir / f"logits/reviews/tiny_a/{split}.safetensors", df)
        assert values["pooled"].shape == (len(df), 32)
        assert values["probs"].shape == (len(df), 2)
    # the cache replays the selected model exactly
    assert summary["splits"]["dev"]["accuracy"] == pytest.approx(metrics["dev_accuracy"])
    # and a rerun writes the same bytes, so DVC sees nothing new downstream
    folder = workdir / "logits/reviews/tiny_a"
    before = {f.name: f.read_bytes() for f in folder.iterdir()}
    cache.main("reviews", "tiny_a")
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == before


def test_files_that_stages_read_are_the_same_on_another_machine(workdir, monkeypatch):
    """The task card and the cache are dependencies of later stages: naming the machine in them would make DVC
    redo everything downstream on every other machine. The runs' own metrics record it."""
    prepare.main("reviews")
    finetune.main("reviews", "tiny_a")
    cache.main("reviews", "tiny_a")
    metrics = read(workdir / "models/reviews/tiny_a/metrics.json")["provenance"]
    assert metrics["cpu"]["capability"] == torch.backends.cpu.get_cpu_capability() and metrics["platform"]
    read_back = {p: p.read_bytes() for d in ("data/reviews", "logits/reviews/tiny_a") for p in (workdir / d).iterdir()}

    monkeypatch.setattr(io.platform, "platform", lambda *a, **k: "Linux-another-kernel")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")  # recorded as a kernel override: the CPU entry differs too
    prepare.main("reviews")
    finetune.main("reviews", "tiny_a")
    cache.main("reviews", "tiny_a")
    assert {p: p.read_bytes() for p in read_back} == read_back
    again = read(workdir / "models/reviews/tiny_a/metrics.json")["provenance"]
    assert again["platform"] == "Linux-another-kernel"
    assert again["cpu"]["kernel_overrides"] == {"ATEN_CPU_CAPABILITY": "default"}


def test_pair_task_and_teacher_cap(workdir):
    prepare.main("pairs")
    finetune.main("pairs", "tiny_b")
    metrics = read(workdir / "models/pairs/tiny_b/metrics.json")
    card = read(workdir / "data/pairs/card.json")
    assert card["pair"] is True
    assert metrics["train_examples"] == min(150, card["sizes"]["train"])


def test_same_seed_same_numbers(workdir):
    prepare.main("reviews")
    finetune.main("reviews", "tiny_b")
    first = read(workdir / "models/reviews/tiny_b/model/classifier.json")["sha256"]
    first_metrics = read(workdir / "models/reviews/tiny_b/metrics.json")
    assert first_metrics["train_examples"] == 150  # teachers.tiny_b.max_train
    finetune.main("reviews", "tiny_b")
    assert read(workdir / "models/reviews/tiny_b/model/classifier.json")["sha256"] == first
    again = read(workdir / "models/reviews/tiny_b/metrics.json")
    assert [h["train_loss"] for h in again["history"]] == [h["train_loss"] for h in first_metrics["history"]]


def test_unknown_teacher_is_refused_before_training(workdir):
    prepare.main("reviews")
    with pytest.raises(P.InputError, match=r"unknown teacher 'bert9'.*\['tiny_a', 'tiny_b'\]"):
        finetune.main("reviews", "bert9")
    assert not (workdir / "models").exists()


def test_a_teacher_scored_on_a_sample_of_the_test_set(workdir):
    params = tiny_params(workdir)
    params["teachers"]["tiny_b"]["max_test"] = 7
    write_params(workdir, params)
    prepare.main("reviews")
    finetune.main("reviews", "tiny_b")
    metrics = read(workdir / "models/reviews/tiny_b/metrics.json")
    assert metrics["test_examples"] == 7 and len(splits.load_split(workdir / "data/reviews", "test")) > 7
    assert round(metrics["test_accuracy"] * 7, 4) == int(round(metrics["test_accuracy"] * 7))  # k of 7 right


def test_finetune_needs_prepared_data(workdir):
    with pytest.raises(P.InputError, match=r"data/reviews/card.json: not found; rerun `dvc repro prepare@reviews`"):
        finetune.main("reviews", "tiny_a")


def test_asset_teacher_without_assets_stage(workdir):
    params = tiny_params(workdir)
    params["assets"]["encoders"] = ["minilm_l6"]
    params["teachers"]["l6"] = {"source": "asset", "name": "minilm_l6"}
    write_params(workdir, params)
    prepare.main("reviews")
    with pytest.raises(P.InputError, match=r"manifest.json: asset manifest not found; run `dvc repro assets`"):
        finetune.main("reviews", "l6")
    assert not (workdir / "models").exists()


def test_cache_needs_a_finetuned_model(workdir):
    prepare.main("reviews")
    with pytest.raises(P.InputError, match="not a saved classifier"):
        cache.main("reviews", "tiny_a")
    assert not (workdir / "logits").exists()


def test_command_line_error_is_one_line_and_exit_code_2(workdir):
    done = run([sys.executable, "-m", "pipeline.finetune", "reviews", "nobody"], workdir)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: command line: unknown teacher 'nobody'; teachers defined in params")
    assert "Traceback" not in done.stderr


def test_a_teacher_grid_trains_every_point_and_keeps_the_best_on_dev(workdir):
    params = tiny_params(workdir)
    params["teachers"]["tiny_b"]["grid"] = {"lr": [1e-6, 2e-3]}  # 1e-6 barely moves: 2e-3 must win
    write_params(workdir, params)
    prepare.main("reviews")
    finetune.main("reviews", "tiny_b")
    metrics = read(workdir / "models/reviews/tiny_b/metrics.json")
    assert [g["lr"] for g in metrics["grid"]] == [1e-6, 2e-3]
    assert metrics["selected"] == {"lr": 2e-3}
    assert metrics["dev_accuracy"] == max(g["dev_accuracy"] for g in metrics["grid"])
    # the saved model is the selected one: the cache replays its dev accuracy
    cache.main("reviews", "tiny_b")
    summary = read(workdir / "logits/reviews/tiny_b/summary.json")
    assert summary["splits"]["dev"]["accuracy"] == pytest.approx(metrics["dev_accuracy"])


@pytest.mark.parametrize(
    "grid, words",
    [
        ({"lrr": [1e-3]}, "'lrr' is not a hyper-parameter"),
        ({"lr": [1e-3, -1.0]}, "the point {'lr': -1.0} is invalid"),
        ({"lr": []}, "grid.lr"),
    ],
)
def test_a_bad_grid_is_refused_with_the_key(workdir, grid, words):
    params = tiny_params(workdir)
    params["distill"]["grid"] = grid
    write_params(workdir, params)
    with pytest.raises(P.InputError, match="distill") as err:
        P.load(workdir / "params.yaml")
    assert words in str(err.value)
