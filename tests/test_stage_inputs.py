"""Every stage's command line, the intermediates it reads and the machine it runs on: a row per way they can
go wrong, each with the clear error (or the correct result) that an outside fuzz of these surfaces asked for.
Nothing here trains: the models are saved untrained and the teacher caches are made up."""

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline import logits, models, prepare, task_data
from pipeline import methods as registry
from pipeline import schema as P
from pipeline.params_file import InputError
from pipeline.splits import load_split
from pipeline.task_data import student_rows
from tests.conftest import ROOT, edit_json, edit_params, tiny_params, tiny_teacher, write_params

# ---- command lines: python -m MODULE ARGS -> exit code, and what it says ----------------------------------

COMMAND_LINES = {
    "no arguments": ("pipeline.prepare", [], 2, r"required: task"),
    "--help": ("pipeline.distill", ["--help"], 0, r"usage: python -m pipeline.distill .*task method seed"),
    "one argument short": ("pipeline.distill", ["reviews", "ce"], 2, r"required: seed"),
    "an extra argument": ("pipeline.finetune", ["reviews", "tiny_a", "params.yaml"], 2, r"unrecognized arguments"),
    "five for distill": ("pipeline.distill", ["reviews", "ce", "1", "p.yaml", "x"], 2, r"unrecognized arguments"),
    "latency's old repeats": ("pipeline.latency", ["reviews", "params.yaml", "3"], 2, r"unrecognized arguments"),
    "a seed that is no number": ("pipeline.distill", ["reviews", "ce", "one"], 2, r"seed must be an integer"),
    "--help as a task": ("pipeline.cache", ["--help"], 0, r"usage: python -m pipeline.cache"),
    "params as an option": ("pipeline.prepare", ["--params", "gone.yaml", "reviews"], 2, r"gone.yaml: .*not found"),
    "params a folder": ("pipeline.prepare", ["--params", "user_data", "reviews"], 2, r"user_data: not a regular file"),
    "plan at 0 examples/s": ("orchestration.plan", ["--base-ex-s", "0"], 2, r"--base-ex-s: expected a positive number"),
    "plan at -1 examples/s": ("orchestration.plan", ["--base-ex-s=-1"], 2, r"--base-ex-s: expected a positive number"),
    "plan at nan examples/s": ("orchestration.plan", ["--student-ex-s", "nan"], 2, r"--student-ex-s: expected a posit"),
    "analyze takes no task": ("analysis.analyze", ["reviews"], 2, r"unrecognized arguments: reviews"),
}


def run_module(module: str, argv: list[str]) -> int:
    """`python -m module argv...` in this process (its imports are loaded once): the exit code."""
    old = sys.argv
    sys.argv = [module, *argv]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        return 0 if done.code is None else done.code if isinstance(done.code, int) else 1
    finally:
        sys.argv = old
    return 0


@pytest.mark.parametrize("module, argv, code, said", COMMAND_LINES.values(), ids=COMMAND_LINES.keys())
def test_command_lines(workdir, capsys, module, argv, code, said):
    assert run_module(module, argv) == code
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    assert re.search(said, out.out + out.err, re.S), out.out + out.err


# ---- intermediates: a prepared task, two saved teachers and their caches, then one thing changed ----------


@pytest.fixture
def project(workdir):
    """data/reviews as prepare writes it; models/reviews/{tiny_a,tiny_b}/model saved untrained; their caches of
    train and dev made up (the right rows, ids and digests, as the cache stage would write them)."""
    prepare.main("reviews")
    params = P.load("params.yaml")
    splits = {s: load_split(Path("data/reviews"), s) for s in ("train", "dev")}
    texts = list(splits["train"].text_a)
    for i, name in enumerate(("tiny_a", "tiny_b")):
        spec = P.Teacher(**tiny_teacher(32, 1))
        encoder, tokenizer = models.pretrained_encoder(f"teachers.{name}", spec, None, texts)
        folder = workdir / "models/reviews" / name / "model"
        models.save(models.Classifier(encoder, 2), tokenizer, folder, ["neg", "pos"], 24, task="reviews", teacher=name)
        for split, df in splits.items():
            out = workdir / "logits/reviews" / name / f"{split}.safetensors"
            out.parent.mkdir(parents=True, exist_ok=True)
            made_up = torch.full((len(df), 2), float(i)).add_(torch.arange(len(df)).unsqueeze(1) % 3)
            values = logits.tensors(made_up, torch.zeros(len(df), 4), torch.tensor(df.label.to_numpy()))
            logits.save(out, df, values, task="reviews", teacher=name)
    return params


def swap(a: Path, b: Path) -> None:
    a.rename(a.with_name("swap"))
    b.rename(a)
    a.with_name("swap").rename(b)


MODEL = Path("models/reviews/tiny_a/model")
CARD = Path("data/reviews/card.json")


def load_teacher(params):
    return models.load(MODEL, "dvc repro finetune@reviews-tiny_a", task="reviews", teacher="tiny_a")


def load_students_data(params):
    return task_data.load_task(params, "reviews")


def relu(record):
    record["hidden_act"] = "relu"


def swap_two_token_ids(record):
    vocab = record["model"]["vocab"]
    vocab["good"], vocab["bad"] = vocab["bad"], vocab["good"]


INTERMEDIATES = {
    "config.json edited (gelu -> relu)": (
        lambda: edit_json(MODEL / "encoder/config.json", relu),
        load_teacher,
        r"encoder/config.json: missing or corrupted .*rerun `dvc repro finetune@reviews-tiny_a`",
    ),
    "tokenizer.json: two ids swapped": (
        lambda: edit_json(MODEL / "encoder/tokenizer.json", swap_two_token_ids),
        load_teacher,
        r"encoder/tokenizer.json: missing or corrupted",
    ),
    "tokenizer.json deleted": (
        lambda: (MODEL / "encoder/tokenizer.json").unlink(),
        load_teacher,
        r"encoder/tokenizer.json: missing or corrupted",
    ),
    "a file added to the model": (
        lambda: (MODEL / "encoder/vocab.extra").write_text("x"),
        load_teacher,
        r"vocab.extra: not written by the finetune stage",
    ),
    "classifier.json: pooling mean -> cls": (
        lambda: edit_json(MODEL / "classifier.json", lambda r: r.update(pooling="cls")),
        load_teacher,
        r"classifier.json: edited since its stage wrote it .*rerun `dvc repro finetune@reviews-tiny_a`",
    ),
    "classifier.json truncated": (
        lambda: (MODEL / "classifier.json").write_text('{"labels": ["neg", '),
        load_teacher,
        r"classifier.json: not valid JSON",
    ),
    "two teachers' model folders swapped": (
        lambda: swap(MODEL, Path("models/reviews/tiny_b/model")),
        load_teacher,
        r"classifier.json: saved for teacher 'tiny_b', not 'tiny_a'",
    ),
    "two teachers' logits folders swapped": (
        lambda: swap(Path("logits/reviews/tiny_a"), Path("logits/reviews/tiny_b")),
        load_students_data,
        r"logits/reviews/tiny_a/train.safetensors: the cache of teacher 'tiny_b', not 'tiny_a'; "
        r"rerun `dvc repro cache@reviews-tiny_a`",
    ),
    "card.json: a label edited": (
        lambda: edit_json(CARD, lambda r: r.update(labels=["neg", "positive"])),
        load_students_data,
        r"card.json: edited since its stage wrote it .*rerun `dvc repro prepare@reviews`",
    ),
    "card.json truncated": (
        lambda: CARD.write_text(CARD.read_text()[:40]),
        load_students_data,
        r"card.json: not valid JSON .*rerun `dvc repro prepare@reviews`",
    ),
    "card.json missing": (
        lambda: CARD.unlink(),
        load_students_data,
        r"card.json: not found; rerun `dvc repro prepare@reviews`",
    ),
    "card.json of other settings": (
        lambda: None,
        lambda params: task_data.load_task(
            params.model_copy(
                update={"tasks": {**params.tasks, "reviews": params.tasks["reviews"].model_copy(update={"max_dev": 9})}}
            ),
            "reviews",
        ),
        r"card.json: written for other tasks.reviews settings",
    ),
    "a prepared split truncated": (
        lambda: Path("data/reviews/dev.parquet").write_bytes(Path("data/reviews/dev.parquet").read_bytes()[:99]),
        load_students_data,
        r"dev.parquet: unreadable .*rerun `dvc repro prepare@reviews`",
    ),
}


@pytest.mark.parametrize("damage, read, said", INTERMEDIATES.values(), ids=INTERMEDIATES.keys())
def test_intermediates_are_checked_against_what_wrote_them(project, damage, read, said):
    damage()
    with pytest.raises(InputError, match=said):
        read(project)


def test_untouched_intermediates_are_read(project):
    model, _, meta = load_teacher(project)
    assert meta["labels"] == ["neg", "pos"] and meta["teacher"] == "tiny_a"
    data = load_students_data(project)
    assert data.labels == ["neg", "pos"] and data.cache["train"]["logits"].shape[1] == 2


# ---- settings that only a run could have caught -----------------------------------------------------------


def test_a_feature_named_twice_in_the_agents_state(workdir):
    params = tiny_params(workdir)
    params["methods"]["rl_kd"] = {"state": ["ce", "ce"]}
    write_params(workdir, params)
    with pytest.raises(InputError, match=r"methods.rl_kd.*state: \['ce'\] named more than once"):
        registry.check(P.load("params.yaml"), ["rl_kd"])


def test_a_train_split_too_small_for_the_held_out_rows():
    with pytest.raises(InputError, match=r"distill.max_train: 1 training example.*leave none for the student"):
        student_rows(1, 0.1, 0)
    train, held_out = student_rows(2, 0.1, 0)  # the smallest that works: one row each
    assert len(train) == 1 and len(held_out) == 1


# ---- the machine: a folder it may not write, a file-size limit, a C locale --------------------------------


def test_an_unwritable_output_folder(workdir, capsys, monkeypatch):
    """As root no folder is unwritable, so the refusal is the machine's as Python reports it: PermissionError."""

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "replace", refuse)
    assert run_module("pipeline.prepare", ["reviews"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and re.search(r"error: data/\.reviews\.partial-\d+/.*: Permission denied", err)
    assert not Path("data/reviews").exists() and list(Path("data").iterdir()) == []  # nothing half-written


def stage(workdir: Path, args: list[str], env: dict | None = None, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec,
    )


def test_a_file_size_limit_and_a_c_locale(workdir):
    """Two processes: `ulimit -f` (Python ignores SIGXFSZ, so a write past it fails with EFBIG), and a C locale
    without UTF-8 mode reading a params file with a non-ASCII comment."""
    import resource

    too_large = stage(
        workdir,
        ["pipeline.prepare", "reviews"],
        preexec=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY)),
    )
    assert too_large.returncode == 2 and "Traceback" not in too_large.stderr
    assert re.search(r"error: data/reviews: .*File too large", too_large.stderr), too_large.stderr
    assert not Path(workdir / "data/reviews").exists()

    params = workdir / "params.yaml"
    params.write_text("# critiques de films: « frais » ou « pourri »\n" + params.read_text(), encoding="utf-8")
    c_locale = stage(
        workdir, ["orchestration.plan"], env={"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    )
    assert c_locale.returncode == 0, c_locale.stderr
    assert "stages:" in c_locale.stdout


def test_a_non_ascii_label_printed_in_an_ascii_locale(workdir):
    """A C locale without UTF-8 mode cannot encode "négatif": what a stage prints after its outputs are written
    (prepare's labels) must not fail it, or DVC would not record good outputs. The letter is escaped instead."""
    reviews = workdir / "user_data/reviews.csv"
    frame = pd.read_csv(reviews)
    frame.assign(sentiment=frame.sentiment.replace({"neg": "négatif"})).to_csv(reviews, index=False)
    edit_params(workdir, lambda p: p["tasks"]["reviews"].update(labels=["négatif", "pos"]))
    ascii_only = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "PYTHONIOENCODING": ""}
    done = stage(workdir, ["pipeline.prepare", "reviews"], env=ascii_only)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "n\\xe9gatif" in done.stdout and (workdir / "data/reviews/card.json").is_file()


@pytest.mark.slow  # fine-tunes a teacher
def test_a_file_size_limit_while_a_model_is_saved(workdir):
    """safetensors reports a refused write as its own SafetensorError ("... (os error 27)"), not as an OSError:
    still one line that names the output, and nothing half-written."""
    import resource

    assert stage(workdir, ["pipeline.prepare", "reviews"]).returncode == 0
    saved = stage(
        workdir,
        ["pipeline.finetune", "reviews", "tiny_a"],
        preexec=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY)),
    )
    assert saved.returncode == 2 and "Traceback" not in saved.stderr, saved.stderr[-2000:]
    assert re.search(r"^error: models/reviews/tiny_a/model: File too large", saved.stderr), saved.stderr[-2000:]
    assert [p for p in (workdir / "models").rglob("*") if not p.is_dir()] == []  # no file, partial or whole


def test_a_file_where_an_output_folder_goes_is_replaced(workdir, capsys):
    """A file (or link) standing where a stage writes a folder: moved aside like an old folder, not a traceback."""
    Path("data").mkdir()
    Path("data/reviews").write_text("x")
    assert run_module("pipeline.prepare", ["reviews"]) == 0
    assert Path("data/reviews/card.json").is_file() and sorted(p.name for p in Path("data").iterdir()) == ["reviews"]
