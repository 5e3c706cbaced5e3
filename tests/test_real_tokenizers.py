"""The paper's four teachers with their real tokenizer classes, offline: WordPiece (BERT), byte-level BPE
(RoBERTa) and SentencePiece (ALBERT, XLNet) vocabularies trained here on the tiny tasks' text, each in a
folder with a tiny random model of its architecture, loaded through `source: path` as a hub model is."""

import io
import json

import pandas as pd
import pytest
import sentencepiece as spm
import torch
from tokenizers import BertWordPieceTokenizer, ByteLevelBPETokenizer
from transformers import (
    AlbertTokenizer,
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    BertTokenizer,
    RobertaTokenizer,
    XLNetTokenizer,
)

from pipeline import cache, distill, finetune, logits, models, prepare, splits, training
from tests.conftest import pair_frame, sentiment_frame, tiny_params, tiny_teacher, write_params
from tests.test_architectures import CONFIGS

pytestmark = pytest.mark.slow  # trains models or runs DVC: out of the fast tier

CLASSES = {"bert": BertTokenizer, "roberta": RobertaTokenizer, "albert": AlbertTokenizer, "xlnet": XLNetTokenizer}
# each SentencePiece model lays out its special pieces as the architecture's hub checkpoints do
SPECIAL_PIECES = {
    "albert": dict(
        pad_id=0, unk_id=1, bos_id=2, eos_id=3, bos_piece="[CLS]", eos_piece="[SEP]", control_symbols=["[MASK]"]
    ),
    "xlnet": dict(
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, control_symbols=["<cls>", "<sep>", "<pad>", "<mask>", "<eod>", "<eop>"]
    ),
}


def write_vocabulary(arch: str, folder, texts: list[str]) -> None:
    """Only the vocabulary files, as older hub checkpoints ship them: loading converts them (SentencePiece's
    with the sentencepiece and protobuf packages)."""
    if arch == "bert":
        trainer = BertWordPieceTokenizer()  # [PAD] [UNK] [CLS] [SEP] [MASK] first, as in bert-base
        trainer.train_from_iterator(texts, vocab_size=200, show_progress=False)
        trainer.save_model(str(folder))  # vocab.txt
    elif arch == "roberta":
        trainer = ByteLevelBPETokenizer()
        trainer.train_from_iterator(
            texts, vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False
        )
        trainer.save_model(str(folder))  # vocab.json, merges.txt
    else:
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model,
            model_type="unigram",
            vocab_size=100,
            hard_vocab_limit=False,
            num_threads=1,
            minloglevel=2,
            **SPECIAL_PIECES[arch],
        )
        (folder / "spiece.model").write_bytes(model.getvalue())


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> dict:
    """arch -> a model folder: the vocabulary files, config.json and random weights."""
    pairs = pair_frame(240)
    texts = list(sentiment_frame(300).review) + list(pairs.question) + list(pairs.answer)
    folders = {}
    for arch, tokenizer_class in CLASSES.items():
        folder = folders[arch] = tmp_path_factory.mktemp(arch)
        write_vocabulary(arch, folder, texts)
        tokenizer = tokenizer_class.from_pretrained(folder)
        sizes = CONFIGS[arch] if arch == "xlnet" else {**tiny_teacher()["config"], **CONFIGS[arch]}
        config = AutoConfig.for_model(arch, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **sizes)
        torch.manual_seed(0)
        AutoModel.from_config(config).save_pretrained(folder)
    return folders


def frame(texts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"text_a": texts, "text_b": [None] * len(texts)})


@pytest.mark.parametrize("task", ["reviews", "pairs"])
def test_real_tokenizers_through_finetune_cache_and_distill(teachers, task, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = tiny_params(tmp_path)
    params["teachers"] = {
        arch: {
            "source": "path",
            "name": str(folder),
            "pooling": "cls",
            "epochs": 1,
            "max_length": 24,
            "batch_size": 16,
            "lr": 2e-3,
            "warmup_ratio": 0.0,
        }
        for arch, folder in teachers.items()
    }
    params["run"].update(tasks=[task], teachers=list(CLASSES), methods=["u_ensemble"])
    write_params(tmp_path, params)
    prepare.main(task)
    df = splits.load_split(tmp_path / "data" / task, "test")
    example = [df.text_a[0]] + ([df.text_b[0]] if task == "pairs" else [])
    for arch, tokenizer_class in CLASSES.items():
        finetune.main(task, arch)
        _, saved, _ = models.load(tmp_path / "models" / task / arch / "model")
        assert type(saved) is tokenizer_class
        # the fine-tuned folder keeps the vocabulary and special tokens it was trained with
        assert saved(*example)["input_ids"] == AutoTokenizer.from_pretrained(teachers[arch])(*example)["input_ids"]
        cache.main(task, arch)
        metrics = json.loads((tmp_path / "models" / task / arch / "metrics.json").read_text())
        summary = json.loads((tmp_path / "logits" / task / arch / "summary.json").read_text())
        assert summary["splits"]["dev"]["accuracy"] == pytest.approx(metrics["dev_accuracy"])
        dev = splits.load_split(tmp_path / "data" / task, "dev")
        values = logits.load(tmp_path / "logits" / task / arch / "dev.safetensors", dev)
        assert values["logits"].shape == (len(dev), 2) and values["logits"].isfinite().all()
    distill.main(task, "u_ensemble", "1")
    metrics = json.loads((tmp_path / "runs" / task / "u_ensemble/1/metrics.json").read_text())
    assert metrics["teacher_weights"] == pytest.approx(dict.fromkeys(CLASSES, 0.25))


def test_collate_pads_on_the_tokenizers_side_with_its_pad_token_type():
    rows = {"input_ids": [[7, 8, 9], [7]], "token_type_ids": [[0, 1, 2], [2]], "attention_mask": [[1, 1, 1], [1]]}
    left = training.collate({**rows, "padding_side": "left", "pad_token_type_id": 3}, [0, 1], pad_id=5)
    assert left["input_ids"].tolist() == [[7, 8, 9], [5, 5, 7]]
    assert left["token_type_ids"].tolist() == [[0, 1, 2], [3, 3, 2]]
    assert left["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    right = training.collate(rows, [0, 1], pad_id=5)  # what `encode` gives a BERT tokenizer: right, type 0
    assert right["input_ids"].tolist() == [[7, 8, 9], [7, 5, 5]]
    assert right["token_type_ids"].tolist() == [[0, 1, 2], [2, 0, 0]]


def test_xlnet_batches_pad_on_the_left_and_pool_its_cls_token(teachers):
    tokenizer = AutoTokenizer.from_pretrained(teachers["xlnet"])
    model = models.Classifier(AutoModel.from_pretrained(teachers["xlnet"]), 2, "cls").eval()
    enc = training.encode(tokenizer, frame(["good film", "the plot of the movie was a dull and boring story"]), 32)
    short, long = map(len, enc["input_ids"])
    assert short < long
    batch = training.collate(enc, [0, 1], tokenizer.pad_token_id)
    # XLNet's layout: pads first, then the text, <sep>, <cls>: both rows' <cls> in the last column
    assert batch["input_ids"][0, : long - short].tolist() == [tokenizer.pad_token_id] * (long - short)
    assert batch["input_ids"][:, -1].tolist() == [tokenizer.cls_token_id] * 2
    with torch.no_grad():
        _, pooled = model(**batch)
        hidden = model.encoder(**batch).last_hidden_state
    assert torch.equal(pooled, hidden[:, long - 1])


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("arch", list(CLASSES))
def test_cls_pooling_reads_the_cls_token_on_either_padding_side(teachers, arch, side):
    tokenizer = AutoTokenizer.from_pretrained(teachers[arch])
    tokenizer.padding_side = side
    model = models.Classifier(AutoModel.from_pretrained(teachers[arch]), 2, "cls").eval()
    enc = training.encode(tokenizer, frame(["good film", "the plot of the movie was a dull and boring story"]), 32)
    batch = training.collate(enc, [0, 1], tokenizer.pad_token_id)
    assert batch["attention_mask"][0, 0 if side == "left" else -1] == 0  # the short text padded on `side`
    with torch.no_grad():
        _, pooled = model(**batch)
        hidden = model.encoder(**batch).last_hidden_state
    for row in range(2):
        at = batch["input_ids"][row].tolist().index(tokenizer.cls_token_id)
        assert torch.equal(pooled[row], hidden[row, at])


@pytest.mark.parametrize(
    "arch, segments",
    [
        # worked from each tokenizer's layout: [CLS] a [SEP] b [SEP] is 0 then 1 (BERT, ALBERT); XLNet's
        # a <sep> b <sep> <cls> is 0, 1, then 2 for its <cls>. ALBERT's and XLNet's tokenizers leave them out by default
        ("bert", {0, 1}),
        ("albert", {0, 1}),
        ("xlnet", {0, 1, 2}),
    ],
)
def test_sentence_pairs_carry_segment_ids_where_the_model_reads_them(teachers, arch, segments):
    tokenizer, encoder = AutoTokenizer.from_pretrained(teachers[arch]), AutoModel.from_pretrained(teachers[arch])
    pair = pd.DataFrame({"text_a": ["what about good number 1"], "text_b": ["it is good"]})
    enc = training.encode(tokenizer, pair, 32, models.uses_token_types(encoder))
    types = enc["token_type_ids"][0]
    assert set(types) == segments
    ids = enc["input_ids"][0]
    first_sep = ids.index(tokenizer.sep_token_id)
    assert set(types[: first_sep + 1]) == {0} and types[first_sep + 1] == 1  # text a, then text b
    if arch == "xlnet":
        assert ids[-1] == tokenizer.cls_token_id and types[-1] == 2


@pytest.mark.parametrize(
    "arch, sizes, reads",
    [
        ("bert", {}, True),
        ("albert", {}, True),
        ("xlnet", {}, True),  # two segment embeddings; XLNet's relative ones
        ("roberta", {"type_vocab_size": 1}, False),  # roberta-base's config: one segment embedding, nothing to tell
        ("mpnet", {}, False),
    ],
)  # no segment embedding at all
def test_which_encoders_read_segment_ids(arch, sizes, reads):
    config = AutoConfig.for_model(arch, **sizes)
    assert models.uses_token_types(type("Encoder", (), {"config": config})()) is reads
