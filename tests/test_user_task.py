"""A user's own task as a new user brings it, declared in params.yaml alone: a latin-1 CSV of three classes
with exact copies and a text under two labels, through every stage of `dvc repro` to the report (one task, one
teacher, one seed, tiny models: about a minute on 2 busy cores). Also what a new user meets first: `dvc repro --dry`
on a clone where nothing is built yet, and `rl_kd` listed in run.methods."""

import json
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmarks.planted.designs import FILLER, NEGATIVE, POSITIVE
from pipeline import logits
from pipeline.splits import SPLITS, load_split
from tests.conftest import dvc, make_tiny_repo, run, tiny_params, write_params

pytestmark = pytest.mark.slow  # trains models or runs DVC: out of the fast tier

NEUTRAL = "okay plain average ordinary usual standard fine middling".split()
LABELS = ["négatif", "neutre", "positif"]


def tweets(n: int, seed: int = 0) -> pd.DataFrame:
    """Short 'tweets' whose class is carried by one negative, neutral or positive word, with accents."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = int(rng.integers(3))
        words = [*rng.choice(FILLER, size=4), rng.choice([NEGATIVE, NEUTRAL, POSITIVE][label]), "café"]
        rng.shuffle(words)
        rows.append({"tweet": " ".join(words) + f" n°{i}", "mood": LABELS[label]})
    return pd.DataFrame(rows)


def test_a_three_class_latin1_file_with_duplicates_goes_through_every_stage(tmp_path):
    repo = make_tiny_repo(tmp_path / "repo")
    raw = tweets(200)
    copies = raw.iloc[:20]  # 20 exact copies
    relabelled = raw.iloc[20:30].assign(mood=lambda d: d.mood.map(dict(zip(LABELS, LABELS[1:] + LABELS[:1]))))
    raw = pd.concat([raw, copies, relabelled], ignore_index=True).sample(frac=1, random_state=0)
    (repo / "user_data/tweets.csv").write_bytes(raw.to_csv(index=False).encode("latin-1"))
    params = tiny_params(repo)
    params["run"] = {
        "tasks": ["tweets"],
        "teachers": ["tiny_a"],
        "methods": [],
        "single": ["tiny_a"],
        "drop": [],
        "agents": ["rl_kd"],
        "seeds": [1],
    }
    params["tasks"] = {
        "tweets": {
            "source": "file",
            "path": "user_data/tweets.csv",
            "encoding": "latin-1",
            "text_a": "tweet",
            "label": "mood",
            "labels": LABELS,
            "dev_fraction": 0.2,
            "test_fraction": 0.2,
        }
    }
    params["methods"]["rl_kd"] = {"pretrain_epochs": 1}
    write_params(repo, params)

    done = dvc(repo, "repro")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    card = json.loads((repo / "data/tweets/card.json").read_text())
    dup = card["duplicate_texts"]
    assert sum(dup["removed"].values()) == 20 and sum(dup["conflicting_labels"].values()) == 2 * 10
    assert dup["in_train"] == {"dev": 0, "test": 0}
    assert sum(card["sizes"].values()) == 230 - 20 and list(card["class_balance"]["train"]) == LABELS
    splits = {s: load_split(repo / "data/tweets", s) for s in SPLITS}
    assert all("café" in t and " n°" in t for t in pd.concat(splits.values()).text_a)  # read as latin-1
    for split in logits.CACHED_SPLITS:
        cached = logits.load(repo / f"logits/tweets/tiny_a/{split}.safetensors", splits[split])
        assert cached["logits"].shape == (len(splits[split]), 3)
    predictions = pd.read_parquet(repo / "runs/tweets/rl_kd/1/predictions.parquet")
    assert len(predictions) == len(splits["test"]) and predictions.id.is_unique

    report = (repo / "results/report.md").read_text()
    assert "With one seed the seed-to-seed variance is unknown" in report
    main = pd.read_csv(repo / "results/tables/table2_main.csv", index_col=0)
    assert list(main.index) == ["single_tiny_a", "rl_kd"] and (main.seeds == 1).all()
    assert main.tweets_std.isna().all()  # one seed: no standard deviation, and none shown
    for text in [report, *(p.read_text() for p in (repo / "results/tables").glob("*.md"))]:
        assert "nan" not in text.lower() and "1 seeds" not in text
        assert "±" not in text.replace("mean ± std over seeds", "")
    metrics = json.loads((repo / "results/metrics.json").read_text())
    assert set(metrics["test_accuracy"]["rl_kd"]) == {"tweets", "average"}


def test_dry_run_on_a_clone_with_nothing_built_lists_the_stages_with_force(tiny_repo):
    # DVC 3.67 hashes the inputs of each stage a dry run would run, and the first not yet built stops it
    # (treeverse/dvc#9818); docs/stages.md says so. Should this start to pass, drop that note.
    plain = dvc(tiny_repo, "repro", "--dry")
    assert plain.returncode != 0 and "assets/manifest.json" in plain.stderr
    forced = dvc(tiny_repo, "repro", "--dry", "--force")
    assert forced.returncode == 0, forced.stderr[-3000:]
    listed = {line.split("'")[1] for line in forced.stdout.splitlines() if line.startswith("Running stage")}
    stages = {line.split()[0] for line in dvc(tiny_repo, "stage", "list").stdout.splitlines()}
    assert listed == stages and len(stages) == 22  # assets, 2 prepare, 4 finetune, 4 cache, 6 distill, 2 agent, ...
    plan = run([sys.executable, "-m", "orchestration.plan"], tiny_repo)
    assert "(22 in all)" in plan.stdout  # the plan counts what DVC runs
    assert not any((tiny_repo / folder).exists() for folder in ("assets", "data", "models", "runs", "results"))


def test_rl_kd_in_run_methods_is_named_by_plan_and_stops_dvc_before_anything_runs(tiny_repo):
    params = yaml.safe_load((tiny_repo / "params.yaml").read_text())
    params["run"]["methods"].append("rl_kd")
    write_params(tiny_repo, params)
    plan = run([sys.executable, "-m", "orchestration.plan"], tiny_repo)
    assert plan.returncode == 2
    assert "run.methods: rl_kd runs in the stage `agent` (run.agents); move it there" in plan.stderr
    # DVC reads dvc.yaml, and refuses two stages writing one output, before any stage (and its check) runs
    done = dvc(tiny_repo, "repro")
    assert done.returncode != 0
    assert "distill@reviews-rl_kd-1" in done.stderr and "agent@reviews-rl_kd-1" in done.stderr
    assert not (tiny_repo / "assets").exists()
