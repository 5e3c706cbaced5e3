"""MNLI's matched and mismatched validation sets share one training set: the teachers are fine-tuned and
cached once, each student trained once, and every table reports the two sets as columns of their own
(mnli_m, mnli_mm, as in the paper). GLUE comes from a stand-in for `datasets.load_dataset` (no hub)."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis import analyze
from orchestration import plan
from pipeline import cache, distill, finetune, latency, prepare, splits
from tests.conftest import NEGATIVE, POSITIVE, tiny_params, write_params

pytestmark = pytest.mark.slow  # trains models or runs DVC: out of the fast tier

SHARED = ("a premise that both sets hold", "the same hypothesis", 1)  # one text in matched and in mismatched


class Split:
    def __init__(self, df):
        self.df = df

    def to_pandas(self):
        return self.df.copy()


def mnli_rows(n: int, seed: int, extra=()) -> pd.DataFrame:
    """Premise and hypothesis; entailment (0) when the hypothesis repeats the premise's word, contradiction (2)
    when it has a word of the other sentiment, neutral (1) otherwise."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        word = rng.choice(POSITIVE)
        label = int(rng.integers(3))
        other = [word, rng.choice(NEGATIVE), "the weather"][label]
        rows.append({"premise": f"it was {word} scene {i}", "hypothesis": f"it was {other}", "label": label})
    rows += [dict(zip(("premise", "hypothesis", "label"), r)) for r in extra]
    return pd.DataFrame(rows)


def fake_glue(name, config):
    assert (name, config) == ("glue", "mnli")
    return {
        "train": Split(mnli_rows(240, 0)),
        "validation_matched": Split(mnli_rows(60, 1, [SHARED])),
        "validation_mismatched": Split(mnli_rows(50, 2, [SHARED])),
    }


@pytest.fixture
def mnli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("datasets.load_dataset", fake_glue)
    params = tiny_params(tmp_path)
    params["tasks"] = {"mnli": {"source": "glue", "name": "mnli", "dev_fraction": 0.2}}
    params["run"].update(tasks=["mnli"], methods=["ce", "u_ensemble"])
    params["teachers"]["tiny_a"]["epochs"] = params["teachers"]["tiny_b"]["epochs"] = 1
    write_params(tmp_path, params)
    prepare.main("mnli")
    return tmp_path


def test_one_test_split_holds_both_sets_with_their_names(mnli):
    test = splits.load_split(mnli / "data/mnli", "test")
    assert test.eval_set.value_counts().to_dict() == {"mnli_m": 61, "mnli_mm": 51}
    assert test.id.is_unique  # the text that is in both sets is two examples, one per set
    shared = test[test.text_a == SHARED[0]]
    assert sorted(shared.eval_set) == ["mnli_m", "mnli_mm"]
    card = json.loads((mnli / "data/mnli/card.json").read_text())
    assert card["eval_sets"] == {"mnli_m": 61, "mnli_mm": 51} and card["sizes"]["test"] == 112
    assert card["labels"] == ["entailment", "neutral", "contradiction"]


def test_each_set_is_scored_apart():
    # worked by hand: rows 0-2 are set m (right, right, wrong), rows 3-4 set mm (wrong, right)
    import torch

    df = pd.DataFrame({"eval_set": ["m", "m", "m", "mm", "mm"]})
    logits = torch.tensor([[2.0, 0], [0, 2.0], [2.0, 0], [0, 2.0], [2.0, 0]])
    labels = torch.tensor([0, 1, 1, 0, 0])
    assert splits.by_eval_set("test_accuracy", df, logits, labels) == {
        "test_accuracy_by_set": {"m": pytest.approx(2 / 3), "mm": pytest.approx(1 / 2)}
    }
    assert splits.by_eval_set("test_accuracy", df.drop(columns="eval_set"), logits, labels) == {}


def test_teachers_and_students_train_once_and_every_table_has_both_sets(mnli):
    for teacher in ("tiny_a", "tiny_b"):
        finetune.main("mnli", teacher)
        cache.main("mnli", teacher)
    for method in ("ce", "u_ensemble"):
        distill.main("mnli", method, "1")
    distill.main("mnli", "rl_kd", "1")
    latency.main("mnli", repeats=1)

    test = splits.load_split(mnli / "data/mnli", "test")
    teacher = json.loads((mnli / "models/mnli/tiny_a/metrics.json").read_text())
    by_set = teacher["test_accuracy_by_set"]
    assert set(by_set) == {"mnli_m", "mnli_mm"}
    # the whole test set's accuracy is the sets' accuracies weighted by their sizes
    assert teacher["test_accuracy"] == pytest.approx((61 * by_set["mnli_m"] + 51 * by_set["mnli_mm"]) / 112)
    assert "test" not in json.loads((mnli / "logits/mnli/tiny_a/summary.json").read_text())["splits"]

    preds = pd.read_parquet(mnli / "runs/mnli/ce/1/predictions.parquet")
    assert (preds.eval_set.to_numpy() == test.eval_set.to_numpy()).all()
    student = json.loads((mnli / "runs/mnli/ce/1/metrics.json").read_text())
    for name, part in preds.groupby("eval_set"):
        assert student["test_accuracy_by_set"][name] == pytest.approx((part.pred == part.label).mean())

    analyze.main()
    main = pd.read_csv(mnli / "results/tables/table2_main.csv", index_col=0)
    assert {"mnli_m_mean", "mnli_mm_mean"} <= set(main.columns) and "mnli_mean" not in main.columns
    assert main.loc["ce", "mnli_mm_mean"] == pytest.approx(student["test_accuracy_by_set"]["mnli_mm"])
    sig = pd.read_csv(mnli / "results/tables/table3_significance.csv")
    assert set(sig.task) == {"mnli_m", "mnli_mm"}
    # each set's comparisons are made on that set's rows only: its size, in id order as the test split holds them
    assert (sig[sig.task == "mnli_mm"].examples == 51).all() and (sig[sig.task == "mnli_m"].examples == 61).all()
    teachers = pd.read_csv(mnli / "results/tables/table1_teachers.csv")
    assert set(teachers.task) == {"mnli_m", "mnli_mm"}
    report = (mnli / "results/report.md").read_text()
    assert "from 3 runs" in report and "evaluation sets `mnli_m`, `mnli_mm`" in report


def test_the_plan_trains_mnli_once_and_says_what_that_saves(tmp_path, monkeypatch, capsys):
    from tests.test_paper_profile import ROOT

    monkeypatch.chdir(tmp_path)
    plan.main(["--params", str(ROOT / "params-paper.yaml")])
    out = capsys.readouterr().out
    assert "mnli              mnli               353,432   39,270   19,647" in out  # 9,815 + 9,832 validation pairs
    assert "mnli_m and mnli_mm share one training set" in out
    # two tasks instead of one would add 4 fine-tunes, 4 caches, 17 x 3 students (9 methods, 4 single-teacher, 4
    # agents), prepare, latency
    assert "(61 stages and" in out and "finetune x24" in out
