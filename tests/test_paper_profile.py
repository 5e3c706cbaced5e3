"""The paper profile's parameter file, its plan, and what happens without a model hub."""

import sys
from pathlib import Path

import pytest

from orchestration import plan
from pipeline import prepare
from pipeline import schema as P
from tests.conftest import run, tiny_params, write_params

ROOT = Path(__file__).resolve().parents[1]


def test_the_paper_profile_is_valid_and_is_the_papers_setup():
    params = P.load(ROOT / "params-paper.yaml")
    # the paper's GLUE tasks; MNLI is one task tested on its matched and mismatched sets
    assert {params.tasks[t].name for t in params.run.tasks} == {"sst2", "mrpc", "qqp", "mnli", "qnli", "rte"}
    assert [params.teachers[t].name for t in params.run.teachers] == [
        "bert-base-uncased",
        "roberta-base",
        "albert-base-v2",
        "xlnet-base-cased",
    ]
    assert all(params.teachers[t].max_length == 128 and params.teachers[t].epochs == 4 for t in params.run.teachers)
    assert params.student.name == "bert-base-uncased" and params.student.layers == 3


def test_plan_counts_runs_and_glue_sizes_without_a_network(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)  # no prepared data here: sizes come from GLUE's published ones
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    plan.main(["--params", str(ROOT / "params-paper.yaml"), "--base-ex-s", "1000"])
    out = capsys.readouterr().out
    assert "finetune x24" in out and "distill x162" in out and "single x72" in out and "agent x72" in out
    assert "mrpc                 3,301      367      408" in out  # 3,668 train, 10% kept as dev; 408 validation
    assert "at 1000 examples/s" in out and "needs a model hub" in out
    assert "teachers.bert_base 3" in out and "distill 27" in out  # the paper's grids


def test_plan_halves_with_double_throughput():
    params = P.load(ROOT / "params-paper.yaml")
    _, slow = plan.plan(params, 500, 2000)
    _, fast = plan.plan(params, 1000, 4000)
    assert fast == pytest.approx(slow / 2) and slow > 10


@pytest.mark.slow
def test_a_hub_teacher_without_a_hub_fails_at_the_start_and_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read when the stage's process imports huggingface_hub
    params = tiny_params(tmp_path)
    params["teachers"]["tiny_a"] = {"source": "hub", "name": "no-such-org/no-such-model-rlkd"}
    write_params(tmp_path, params)
    prepare.main("reviews")
    done = run([sys.executable, "-m", "pipeline.finetune", "reviews", "tiny_a"], tmp_path, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: teachers.tiny_a: cannot load 'no-such-org/no-such-model-rlkd'")
    assert "offline, use the embedded default" in done.stderr
    assert not (tmp_path / "models").exists()
