"""The paper's four teacher architectures (BERT, RoBERTa, ALBERT, XLNet) as tiny random stand-ins,
built from a config with a locally counted vocabulary: fine-tune, cache and distill for each, no hub."""

import json

import pytest

from pipeline import cache, distill, finetune, logits, prepare, splits
from tests.conftest import tiny_params, tiny_teacher, write_params

pytestmark = pytest.mark.slow  # trains models or runs DVC: out of the fast tier

# a few hundred parameters' worth of each architecture; XLNet names its sizes differently
CONFIGS = {
    "bert": {},
    "roberta": {"max_position_embeddings": 66},  # positions start after the padding index
    "albert": {"embedding_size": 16, "num_hidden_groups": 1},
    "xlnet": {"d_model": 32, "n_layer": 2, "n_head": 2, "d_inner": 64},
}


def spec(arch: str) -> dict:
    teacher = tiny_teacher(arch=arch, epochs=1)
    if arch == "xlnet":
        teacher["config"] = {}
    teacher["config"].update(CONFIGS[arch])
    teacher["pooling"] = "mean"
    return teacher


@pytest.fixture
def four(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = tiny_params(tmp_path)
    params["teachers"] = {arch: spec(arch) for arch in CONFIGS}
    params["run"].update(teachers=list(CONFIGS), methods=["u_ensemble"])
    write_params(tmp_path, params)
    prepare.main("pairs")  # the sentence-pair path: token types differ between the architectures
    return tmp_path


@pytest.mark.parametrize("arch", list(CONFIGS))
def test_each_architecture_finetunes_and_caches(four, arch):
    finetune.main("pairs", arch)
    saved = json.loads((four / "models/pairs" / arch / "model/encoder/config.json").read_text())
    assert saved["model_type"] == arch
    cache.main("pairs", arch)
    metrics = json.loads((four / "models/pairs" / arch / "metrics.json").read_text())
    summary = json.loads((four / "logits/pairs" / arch / "summary.json").read_text())
    assert summary["splits"]["dev"]["accuracy"] == pytest.approx(metrics["dev_accuracy"])
    df = splits.load_split(four / "data/pairs", "train")
    values = logits.load(four / "logits/pairs" / arch / "train.safetensors", df)
    assert values["logits"].shape == (len(df), 2) and values["logits"].isfinite().all()


def test_a_student_distils_from_all_four(four):
    for arch in CONFIGS:
        finetune.main("pairs", arch)
        cache.main("pairs", arch)
    distill.main("pairs", "u_ensemble", "1")
    metrics = json.loads((four / "runs/pairs/u_ensemble/1/metrics.json").read_text())
    assert set(metrics["teacher_weights"]) == set(CONFIGS)
    assert all(w == pytest.approx(0.25) for w in metrics["teacher_weights"].values())
