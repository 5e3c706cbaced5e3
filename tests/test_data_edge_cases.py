"""Awkward data: very long texts, non-ASCII text, declared and broken encodings, a missing file, a text over two
lines, duplicates, empty GLUE rows, and damaged prepared splits."""

import json

import pandas as pd
import pytest
import yaml

from pipeline import finetune, glue, prepare, splits
from pipeline import schema as P
from pipeline import task_schema as T
from pipeline.io import record_digest
from tests.conftest import sentiment_frame, write_params


def card(root):
    return json.loads((root / "data/reviews/card.json").read_text())


@pytest.mark.slow
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


@pytest.mark.slow
def test_non_ascii_text_survives_unchanged(workdir):
    raw = sentiment_frame(300)
    texts = ["café au lait, naïve plot", "東京の映画はすばらしい", "¡Qué desastre! 🙂", "Ünïcödé — quotes “x”"]
    for i, t in enumerate(texts):
        raw.loc[i, "review"] = t
    raw.to_csv(workdir / "user_data/reviews.csv", index=False, encoding="utf-8")
    prepare.main("reviews")
    prepared = pd.concat(splits.load_split(workdir / "data/reviews", s) for s in splits.SPLITS)
    assert set(texts) <= set(prepared.text_a)
    finetune.main("reviews", "tiny_a")  # the WordPiece vocabulary takes them in; nothing breaks
    assert (workdir / "models/reviews/tiny_a/model/classifier.json").is_file()


def write_latin1(workdir, suffix, raw):
    params_path = workdir / "params.yaml"
    params_path.write_text(params_path.read_text().replace("user_data/reviews.csv", f"user_data/latin1{suffix}"))
    target = workdir / f"user_data/latin1{suffix}"
    if suffix == ".csv":
        target.write_bytes(raw.to_csv(index=False).encode("latin-1"))
    else:
        target.write_bytes(raw.to_json(orient="records", lines=True, force_ascii=False).encode("latin-1"))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_file_that_is_not_utf8_is_refused_with_its_name(workdir, suffix):
    raw = sentiment_frame(40)
    raw.loc[3, "review"] = "très mauvais, déçu"
    write_latin1(workdir, suffix, raw)
    with pytest.raises(
        P.InputError,
        match=rf"latin1\{suffix}: not valid utf-8 .* set tasks.reviews.encoding "
        r"\(e.g. latin-1, cp1252\) or save the file as UTF-8",
    ):
        prepare.main("reviews")
    assert not (workdir / "data").exists()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_declared_encoding_is_read(workdir, suffix):
    raw = sentiment_frame(40)
    raw.loc[3, "review"] = "très mauvais, déçu"
    write_latin1(workdir, suffix, raw)
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["tasks"]["reviews"]["encoding"] = "latin-1"
    write_params(workdir, params)
    prepare.main("reviews")
    prepared = pd.concat(splits.load_split(workdir / "data/reviews", s) for s in splits.SPLITS)
    assert "très mauvais, déçu" in set(prepared.text_a) and len(prepared) == 40


def test_a_missing_data_file_names_its_parameter(workdir):
    (workdir / "user_data/reviews.csv").unlink()
    with pytest.raises(P.InputError, match=r"^tasks.reviews.path: user_data/reviews.csv: data file not found$"):
        prepare.main("reviews")
    assert not (workdir / "data").exists()


def test_a_text_over_two_lines_counts_in_the_csv_line(workdir):
    raw = sentiment_frame(40)
    raw.loc[2, "review"] = "first line\nsecond line"  # quoted: data row 2 spans lines 4 and 5
    raw.loc[7, "sentiment"] = "meh"  # data row 7: line 2 + 7, and one more for the break above
    raw.to_csv(workdir / "user_data/reviews.csv", index=False)
    assert (workdir / "user_data/reviews.csv").read_text().splitlines()[9].endswith(",meh,m7")  # line 10
    with pytest.raises(P.InputError, match=r"reviews.csv: line 10 has label 'meh'"):
        prepare.main("reviews")


def test_exact_copies_are_removed_and_conflicting_labels_kept_in_one_split(workdir, capsys):
    raw = sentiment_frame(300)
    raw.loc[:, "movie"] = [f"m{i}" for i in range(len(raw))]  # every row its own group: copies could land anywhere
    flipped = raw.loc[30:59, "sentiment"].map({"neg": "pos", "pos": "neg"}).to_numpy()
    raw.loc[200:229, ["review", "sentiment"]] = raw.loc[0:29, ["review", "sentiment"]].to_numpy()  # 30 exact copies
    raw.loc[230:259, "review"] = raw.loc[30:59, "review"].to_numpy()  # 30 texts again, with the other label
    raw.loc[230:259, "sentiment"] = flipped
    raw.to_csv(workdir / "user_data/reviews.csv", index=False)
    prepare.main("reviews")
    dup = card(workdir)["duplicate_texts"]
    parts = {s: splits.load_split(workdir / "data/reviews", s) for s in splits.SPLITS}
    assert sum(len(df) for df in parts.values()) == 300 - 30
    assert sum(dup["removed"].values()) == 30
    assert sum(dup["conflicting_labels"].values()) == 60  # both examples of each of the 30 texts
    assert dup["in_train"] == {"dev": 0, "test": 0}
    split_of = {t: s for s, df in parts.items() for t in df.text_a}
    assert len(split_of) == sum(df.text_a.nunique() for df in parts.values()) == 300 - 30 - 30  # no text in two splits
    for s, df in parts.items():
        assert df.id.is_unique
        assert dup["removed"][s] == sum(split_of[t] == s for t in raw.review[0:30])
        assert dup["conflicting_labels"][s] == 2 * sum(split_of[t] == s for t in raw.review[30:60])
    out = capsys.readouterr().out
    assert "exact copies removed" in out and "another label (kept, in one split)" in out


def test_repeated_ids_in_a_prepared_split_are_refused(workdir):
    """A split with an exact copy, as an older prepare wrote it, and a card digest that matches it."""
    prepare.main("reviews")
    df = splits.load_split(workdir / "data/reviews", "train")
    df = pd.concat([df, df.iloc[:1]], ignore_index=True)
    df.to_parquet(workdir / "data/reviews/train.parquet", index=False)
    info = card(workdir)
    info["split_sha256"]["train"] = splits.split_hash(df)
    info["record_sha256"] = record_digest(info)  # a card resealed: only the ids are wrong
    (workdir / "data/reviews/card.json").write_text(json.dumps(info))
    with pytest.raises(
        P.InputError,
        match=r"train.parquet: example id 'reviews-[0-9a-f]{16}' occurs more than once "
        r"\(1 repeat\(s\)\); ids must be unique within a split; rerun `dvc repro prepare@reviews`",
    ):
        splits.load_split(workdir / "data/reviews", "train")


def test_glue_rows_with_an_empty_text_are_dropped_and_counted():
    from datasets import Dataset, DatasetDict

    rows = {
        "sentence1": [f"a {i}" for i in range(40)],
        "sentence2": [f"b {i}" for i in range(40)],
        "label": [i % 2 for i in range(40)],
        "idx": list(range(40)),
    }
    rows["sentence2"][5] = "  "
    rows["sentence1"][9] = ""
    stand_in = DatasetDict({"train": Dataset.from_dict(rows), "validation": Dataset.from_dict(rows)})
    spec = T.GlueTask(source="glue", name="mrpc", dev_fraction=0.25)
    splits, _, dropped = glue.glue("mrpc", spec, 0, load_dataset=lambda *_: stand_in)
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
    with pytest.raises(P.InputError, match=rf"train.parquet: .*{words}.*rerun `dvc repro prepare@reviews`"):
        splits.load_split(workdir / "data/reviews", "train")


def test_a_file_with_one_class_is_refused(workdir):
    raw = sentiment_frame(120)
    raw["sentiment"] = "pos"
    raw.to_csv(workdir / "user_data/reviews.csv", index=False)
    with pytest.raises(P.InputError, match=r"tasks.reviews: only the class 'pos' occurs in the data"):
        prepare.main("reviews")
    assert not (workdir / "data").exists()


def test_a_train_split_without_every_class_is_refused(workdir):
    params_path = workdir / "params.yaml"
    params_path.write_text(
        params_path.read_text().replace("    label: sentiment\n", "    label: sentiment\n    max_train: 1\n", 1)
    )
    with pytest.raises(
        P.InputError,
        match=r"tasks.reviews: the train split \(1 examples, after max_train\) has no "
        r"example of \['(neg|pos)'\]",
    ):
        prepare.main("reviews")
    assert not (workdir / "data").exists()
