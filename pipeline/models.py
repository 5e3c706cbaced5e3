"""Sequence classifiers: a transformers encoder, a pooling step and a linear head.

The same class serves every teacher (pretrained asset, local folder, hub model, or a tiny random
model built from a config) and, later, the student. The pooled vector is what the RL agent's state
uses as the teacher's "[CLS]" representation.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.utils import logging as hf_logging

from .io import read_json, sha256, write_json
from .params_file import InputError
from .schema import Encoder, Params, Teacher, usable_positions

# transformers reports every asset's unused pooler as "newly initialized": noise, since we pool ourselves
hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class Classifier(nn.Module):
    def __init__(self, encoder: nn.Module, num_labels: int, pooling: str = "mean", dropout: float | None = None):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        # where `cls` pooling reads: XLNet puts its <cls> last (its own sequence head pools the "last" token)
        self.cls_last = getattr(encoder.config, "summary_type", None) == "last"
        # by default the encoder's own rate (0.1 in every model used here), so one config key sets both
        self.dropout = nn.Dropout(getattr(encoder.config, "hidden_dropout_prob", 0.1) if dropout is None else dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, **batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (logits, pooled vector)."""
        hidden = self.encoder(**batch).last_hidden_state
        if self.pooling == "cls":  # a row's first real token (its last for XLNet), on either padding side
            real = batch["attention_mask"]
            # argmax gives the first 1 of each row; of the flipped mask, the last
            at = real.size(1) - 1 - real.flip(1).argmax(1) if self.cls_last else real.argmax(1)
            pooled = hidden[torch.arange(len(hidden), device=hidden.device), at]
        else:  # mean over real tokens: these encoders were trained as mean-pooling sentence encoders
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.head(self.dropout(pooled)), pooled


# ---- building encoders and tokenizers ---------------------------------------------------------


def asset_path(name: str, manifest: dict) -> Path:
    entry = manifest["assets"].get(name)
    if entry is None or entry.get("kind") != "encoder":
        raise InputError(
            f"asset {name!r} is not in the asset manifest; add it to assets.encoders and run `dvc repro assets`"
        )
    from .assets import verify

    verify(Path(entry["weights"]), entry["sha256"])
    return Path(entry["path"])


def wordpiece_tokenizer(texts, vocab_size: int, key: str = "student"):
    """A BERT WordPiece tokenizer over the task's own text, for random models (no download).

    Built by counting, not by the `tokenizers` trainer, whose tie-breaking varies run to run: the
    vocabulary is every character (so any word can be spelt) plus the most frequent words. `key` (the
    params section) labels errors.
    """
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from transformers import BertTokenizer

    normalize, split = BertNormalizer(lowercase=True).normalize_str, BertPreTokenizer().pre_tokenize_str
    counts = Counter(w for text in texts for w, _ in split(normalize(text)))
    chars = sorted({c for w in counts for c in w})
    pieces = SPECIAL_TOKENS + chars + ["##" + c for c in chars]
    if vocab_size < len(pieces):
        raise InputError(
            f"{key}.vocab_size: {vocab_size} is smaller than the {len(pieces)} pieces that this task's "
            f"vocabulary needs (5 special tokens, and each of its {len(chars)} characters alone and "
            "as a word piece)"
        )
    taken = set(pieces)
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if w not in taken]
    vocab = pieces + words[: max(0, vocab_size - len(pieces))]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vocab.txt"
        path.write_text("\n".join(vocab) + "\n")
        return BertTokenizer(str(path))


def check_length(key: str, spec: Encoder, config) -> None:
    """Refuse a max_length beyond the encoder's position embeddings before training, not in its first step
    (for a random encoder params.py has already checked it)."""
    positions = usable_positions(config)
    if positions is not None and spec.max_length > positions:
        raise InputError(
            f"{key}.max_length: {spec.max_length} is more than the {positions} positions of the "
            f"{config.model_type} model; at most {positions}"
        )


def pretrained_encoder(key: str, spec: Teacher, manifest: dict | None, train_texts=None):
    """Return (encoder, tokenizer) for an encoder spec; `key` (`teachers.NAME` or `student`) labels errors."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    if spec.source == "random":
        tokenizer = wordpiece_tokenizer(train_texts, spec.vocab_size, key)
        try:
            config = AutoConfig.for_model(
                spec.arch, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **spec.config
            )
            check_length(key, spec, config)
            return AutoModel.from_config(config), tokenizer
        except (ValueError, TypeError) as err:  # an unknown arch, or sizes that do not fit (hidden % heads)
            raise InputError(f"{key}: cannot build a {spec.arch!r} model from {key}.config: {err}") from None
    if spec.source == "asset":
        where = asset_path(spec.name, manifest)
    elif spec.source == "path":
        where = Path(spec.name)
        if not (where / "config.json").is_file():
            raise InputError(f"{key}.name: {where} is not a model folder (no config.json there)")
    else:
        where = spec.name
    try:
        encoder, tokenizer = AutoModel.from_pretrained(where), AutoTokenizer.from_pretrained(where)
    except OSError as err:
        raise InputError(
            f"{key}: cannot load {where!r} ({err}). Hub models need a reachable model "
            "hub; offline, use the embedded default assets."
        ) from None
    check_length(key, spec, encoder.config)
    if spec.freeze_embeddings:  # no gradient, so AdamW skips the table
        encoder.get_input_embeddings().weight.requires_grad_(False)
    return encoder, tokenizer


def build_student(params: Params, texts: list[str], num_labels: int):
    """The student of params.yaml, untrained: an encoder (optionally its first `student.layers` layers) and a head."""
    from .assets import load_manifest

    spec = params.student
    manifest = load_manifest(params.assets.dir) if spec.source == "asset" else None
    encoder, tokenizer = pretrained_encoder("student", spec, manifest, texts)
    if spec.layers is not None:
        stack = encoder.encoder.layer
        if spec.layers > len(stack):
            raise InputError(f"student.layers: {spec.layers} is more than the encoder's {len(stack)} layers")
        encoder.encoder.layer = stack[: spec.layers]
        encoder.config.num_hidden_layers = spec.layers
    return Classifier(encoder, num_labels, spec.pooling), tokenizer


# ---- saving and loading fine-tuned classifiers ------------------------------------------------


def files_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "classifier.json")


def save(model: Classifier, tokenizer, folder: Path, labels: list[str], max_length: int, **names) -> None:
    """The encoder and tokenizer (transformers' format), the head, and classifier.json: the labels, pooling,
    `names` (task, teacher) and the sha256 of every file in the folder, config and tokenizer included."""
    folder.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(folder / "encoder")
    tokenizer.save_pretrained(folder / "encoder")
    save_file({k: v.contiguous() for k, v in model.head.state_dict().items()}, folder / "head.safetensors")
    meta = {
        **names,
        "labels": labels,
        "pooling": model.pooling,
        "max_length": max_length,
        "sha256": {p.relative_to(folder).as_posix(): sha256(p) for p in files_of(folder)},
    }
    write_json(folder / "classifier.json", meta, seal=True)


def load(folder: str | Path, rerun: str = "dvc repro finetune", **names) -> tuple[Classifier, object, dict]:
    """Load a saved classifier, refusing a folder that differs in any way from what `save` wrote: a file
    added, missing or changed, an edited classifier.json, or other `names` (task, teacher) than expected."""
    from transformers import AutoModel, AutoTokenizer

    folder = Path(folder)
    meta_path = folder / "classifier.json"
    if not meta_path.is_file():
        raise InputError(f"{folder}: not a saved classifier (no classifier.json); rerun `{rerun}`")
    meta = read_json(meta_path, rerun, keys=("labels", "pooling", "max_length", "sha256"), sealed=True)
    for key, expected in names.items():
        if meta.get(key) != expected:
            raise InputError(f"{meta_path}: saved for {key} {meta.get(key)!r}, not {expected!r}; rerun `{rerun}`")
    present = {p.relative_to(folder).as_posix() for p in files_of(folder)}
    for rel in sorted(present | set(meta["sha256"])):
        if rel not in meta["sha256"]:
            raise InputError(
                f"{folder / rel}: not written by the finetune stage (not in classifier.json); rerun `{rerun}`"
            )
        if rel not in present or sha256(folder / rel) != meta["sha256"][rel]:
            raise InputError(
                f"{folder / rel}: missing or corrupted (sha256 differs from classifier.json); rerun `{rerun}`"
            )
    encoder = AutoModel.from_pretrained(folder / "encoder")
    model = Classifier(encoder, len(meta["labels"]), meta["pooling"])
    model.head.load_state_dict(load_file(folder / "head.safetensors"))
    return model.eval(), AutoTokenizer.from_pretrained(folder / "encoder"), meta


def uses_token_types(encoder: nn.Module) -> bool:
    """Whether the encoder reads segment ids: BERT and ALBERT (two segment embeddings), XLNet (relative
    segments, its <cls> in a segment of its own); not RoBERTa or MPNet, which have one or none."""
    config = encoder.config
    return config.model_type == "xlnet" or (getattr(config, "type_vocab_size", None) or 0) > 1


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
