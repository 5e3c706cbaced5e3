"""Awkward data: very long texts, non-ASCII and broken encodings, duplicates across splits, empty GLUE rows,
and damaged prepared splits."""
import json

import pandas as pd
import pytest

from pipeline import data, finetune, params as P, prepare
from tests.conftest import sentiment_frame


def card(root):
    return json.loads((root / "data/reviews/card.json").read_text())


def test_very_long_texts_are_truncated_and_counted(workdir):
    raw = sentiment_frame(300)
    raw.loc[::30, "review"] = raw.loc[::30, "review"] + " and then" * 400  # 10 texts of 800+ words
    raw.to_csv(workdir / "user_data/reviews.csv", index=False)
    prepare.main("reviews")
    over = card(workdir)["examples_over_words"]
    assert sum(over["512"].values()) == 10 and sum(over["64"].values()) == 10
    finetune.main("reviews", "tiny_a")  # max_length 24: cut, not refused
    metrics = json.loads((workdir / "models/reviews/tiny_a/metrics.json").read_text())
    assert metrics["truncated_train_examples"] >= over["64"]["train"] > 0


def test_non_ascii_text_survives_unchanged(workdir):
    raw = sentiment_frame(300)
    texts = ["café au lait, naïve plot", "東京の映画はすばらしい", "¡Qué desastre! 🙂", "Ünïcödé — quotes “x”"]
    for i, t in enumerate(texts):
        raw.loc[i, "review"] = t
    raw.to_csv(workdir / "user_data/reviews.csv", index=False, encoding="utf-8")
    prepare.main("reviews")
    prepared = pd.concat(data.load_split(workdir / "data/reviews", s) for s in data.SPLITS)
    assert set(texts) <= set(prepared.text_a)
    finetune.main("reviews", "tiny_a")  # the WordPiece vocabulary takes them in; nothing breaks
    assert (workdir / "models/reviews/tiny_a/model/classifier.json").is_file()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_file_that_is_not_utf8_is_refused_with_its_name(workdir, suffix):
    params_path = workdir / "params.yaml"
    params_path.write_text(params_path.read_text().replace("user_data/reviews.csv", f"user_data/latin1{suffix}"))
    raw = sentiment_frame(40)
    raw.loc[3, "review"] = "très mauvais, déçu"
    target = workdir / f"user_data/latin1{suffix}"
    if suffix == ".csv":
        target.write_bytes(raw.to_csv(index=False).encode("latin-1"))
    else:
        target.write_bytes(raw.to_json(orient="records", lines=True, force_ascii=False).encode("latin-1"))
    with pytest.raises(P.InputError, match=rf"latin1\{suffix}: not valid UTF-8 .* save the file as UTF-8"):
        prepare.main("reviews")
    assert not (workdir / "data").exists()


def test_duplicate_texts_across_splits_are_reported(workdir, capsys):
    raw = sentiment_frame(300)
    raw.loc[:, "movie"] = [f"m{i}" for i in range(len(raw))]  # every row its own group: copies land anywhere
    raw.loc[200:259, "review"] = raw.loc[0:59, "review"].to_numpy()  # 60 texts twice
    raw.to_csv(workdir / "user_data/reviews.csv", index=False)
    prepare.main("reviews")
    dup = card(workdir)["duplicate_texts"]
    splits = {s: data.load_split(workdir / "data/reviews", s) for s in data.SPLITS}
    train = set(splits["train"].text_a)
    for s in ("dev", "test"):
        assert dup["in_train"][s] == int(splits[s].text_a.isin(train).sum())
    assert dup["in_train"]["dev"] + dup["in_train"]["test"] > 0
    assert "texts also in train" in capsys.readouterr().out


def test_glue_rows_with_an_empty_text_are_dropped_and_counted():
    from datasets import Dataset, DatasetDict
    rows = {"sentence1": [f"a {i}" for i in range(40)], "sentence2": [f"b {i}" for i in range(40)],
            "label": [i % 2 for i in range(40)], "idx": list(range(40))}
    rows["sentence2"][5] = "  "
    rows["sentence1"][9] = ""
    stand_in = DatasetDict({"train": Dataset.from_dict(rows), "validation": Dataset.from_dict(rows)})
    spec = P.GlueTask(source="glue", name="mrpc", dev_fraction=0.25)
    splits, _, dropped = data.glue("mrpc", spec, 0, load_dataset=lambda *_: stand_in)
    assert dropped == {"train": 2, "validation": 2}
    assert len(splits["train"]) + len(splits["dev"]) == 38 and len(splits["test"]) == 38


@pytest.mark.parametrize("damage", ["truncate", "edit"])
def test_a_damaged_prepared_split_is_refused(workdir, damage):
    prepare.main("reviews")
    path = workdir / "data/reviews/train.parquet"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:300])
        words = "unreadable"
    else:  # a valid file with other rows
        df = pd.read_parquet(path)
        df.loc[0, "text_a"] = "something else"
        df.to_parquet(path, index=False)
        words = "differ from the digest in"
    with pytest.raises(P.InputError, match=rf"train.parquet: .*{words}.*rerun `dvc repro prepare`"):
        data.load_split(workdir / "data/reviews", "train")


def test_a_file_with_one_class_is_refused(workdir):
    raw = sentiment_frame(120)
    raw["sentiment"] = "pos"
    raw.to_csv(workdir / "user_data/reviews.csv", index=False)
    with pytest.raises(P.InputError, match=r"tasks.reviews: only the class 'pos' occurs in the data"):
        prepare.main("reviews")
    assert not (workdir / "data").exists()


def test_a_train_split_without_every_class_is_refused(workdir):
    params_path = workdir / "params.yaml"
    params_path.write_text(params_path.read_text().replace("    label: sentiment\n",
                                                           "    label: sentiment\n    max_train: 1\n", 1))
    with pytest.raises(P.InputError, match=r"tasks.reviews: the train split \(1 examples, after max_train\) has no "
                                           r"example of \['(neg|pos)'\]"):
        prepare.main("reviews")
    assert not (workdir / "data").exists()
