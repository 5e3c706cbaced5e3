import pytest
import torch
from pydantic import ValidationError

from pipeline import models, training
from pipeline import schema as P
from tests.conftest import sentiment_frame, tiny_teacher


@pytest.fixture
def tiny():
    spec = P.Teacher(**tiny_teacher(32, 2))
    texts = list(sentiment_frame(60).review)
    encoder, tokenizer = models.pretrained_encoder("teachers.tiny", spec, None, texts)
    return models.Classifier(encoder, 2, "mean").eval(), tokenizer


def batch_of(tokenizer, texts):
    import pandas as pd

    df = pd.DataFrame({"text_a": texts, "text_b": [None] * len(texts)})
    enc = training.encode(tokenizer, df, 16)
    return training.collate(enc, list(range(len(texts))), tokenizer.pad_token_id)


def test_mean_pooling_ignores_padding(tiny):
    model, tokenizer = tiny
    short = batch_of(tokenizer, ["good film"])
    padded = batch_of(tokenizer, ["good film", "the plot of the movie was a bad boring story"])
    with torch.no_grad():
        alone, _ = model(**short)
        together, _ = model(**padded)
    assert torch.allclose(alone[0], together[0], atol=1e-5)


def test_save_and_load_round_trip(tiny, tmp_path):
    model, tokenizer = tiny
    models.save(model, tokenizer, tmp_path / "m", ["neg", "pos"], 16)
    loaded, tok2, meta = models.load(tmp_path / "m")
    batch = batch_of(tok2, ["a lovely moving story", "dull"])
    with torch.no_grad():
        assert torch.allclose(model(**batch)[0], loaded(**batch)[0], atol=1e-6)
    assert meta["labels"] == ["neg", "pos"] and meta["max_length"] == 16


def test_corrupted_weights_are_refused(tiny, tmp_path):
    model, tokenizer = tiny
    models.save(model, tokenizer, tmp_path / "m", ["neg", "pos"], 16)
    weights = tmp_path / "m/encoder/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(P.InputError, match="model.safetensors: missing or corrupted"):
        models.load(tmp_path / "m")


def test_missing_model_folder(tmp_path):
    with pytest.raises(P.InputError, match="not a saved classifier"):
        models.load(tmp_path / "nothing")


def test_model_path_that_does_not_exist(tmp_path):
    spec = P.Teacher(source="path", name=str(tmp_path / "missing"))
    with pytest.raises(P.InputError, match=r"teachers.mine.name: .*missing is not a model folder"):
        models.pretrained_encoder("teachers.mine", spec, None)


def test_asset_missing_from_manifest():
    spec = P.Teacher(source="asset", name="mpnet")
    with pytest.raises(P.InputError, match="asset 'mpnet' is not in the asset manifest"):
        models.pretrained_encoder("teachers.t", spec, {"assets": {}})


def test_a_vocabulary_smaller_than_the_tasks_pieces_is_refused_before_training():
    # 5 special tokens + every character of the texts, alone and as ##c: far more than 1
    with pytest.raises(P.InputError, match=r"student.vocab_size: 1 is smaller than the \d+ pieces"):
        models.pretrained_encoder(
            "student", P.Student(source="random", vocab_size=1), None, list(sentiment_frame(60).review)
        )


@pytest.mark.parametrize(
    "spec, words",
    [
        (dict(arch="no-such-arch"), "arch: unknown model type 'no-such-arch'"),
        (
            dict(config={"hidden_size": 30, "num_attention_heads": 4}),
            "config: hidden_size 30 is not a multiple of num_attention_heads 4",
        ),
        (
            dict(max_length=100, config={"max_position_embeddings": 64}),
            "max_length: 100 is more than the 64 positions of the bert model",
        ),
        # RoBERTa's position ids start after its padding index ([PAD] is 0 in our WordPiece): 66 - 1 = 65 usable
        (
            dict(arch="roberta", max_length=66, config={"max_position_embeddings": 66}),
            "max_length: 66 is more than the 65 positions of the roberta model",
        ),
    ],
)
def test_a_random_encoder_that_cannot_be_built_is_refused_where_it_is_declared(spec, words):
    with pytest.raises(ValidationError, match=words):
        P.Student(source="random", **spec)


def test_max_length_up_to_the_positions_is_accepted():
    spec = P.Teacher(
        source="random",
        arch="roberta",
        max_length=65,
        config={
            "max_position_embeddings": 66,
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
        },
    )
    encoder, _ = models.pretrained_encoder("teachers.r", spec, None, ["a text"])
    assert encoder.config.max_position_embeddings == 66


def test_frozen_embeddings_stay_as_loaded_while_the_rest_trains(tiny, tmp_path):
    model, tokenizer = tiny
    model.encoder.save_pretrained(tmp_path / "enc")
    tokenizer.save_pretrained(tmp_path / "enc")
    spec = P.Teacher(source="path", name=str(tmp_path / "enc"), freeze_embeddings=True, max_length=16)
    encoder, tok = models.pretrained_encoder("teachers.mine", spec, None)
    clf = models.Classifier(encoder, 2, "mean").train()
    table = encoder.get_input_embeddings().weight
    before, layer = table.detach().clone(), encoder.encoder.layer[0].attention.self.query.weight.detach().clone()
    optimizer = torch.optim.AdamW(clf.parameters(), lr=0.1)
    logits, _ = clf(**batch_of(tok, ["a lovely moving story", "dull"]))
    torch.nn.functional.cross_entropy(logits, torch.tensor([1, 0])).backward()
    optimizer.step()
    assert table.grad is None and torch.equal(table, before)  # no gradient, and AdamW's decay skipped it too
    assert not torch.equal(encoder.encoder.layer[0].attention.self.query.weight, layer)  # the layers did train


def test_frozen_embeddings_are_refused_for_a_random_encoder():
    with pytest.raises(ValidationError, match="freeze_embeddings: a random encoder's embeddings must train"):
        P.Student(source="random", freeze_embeddings=True)
