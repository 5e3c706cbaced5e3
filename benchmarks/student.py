"""The embedded default's student for the speed benchmarks: its shape, randomly initialised.

`student:` in params.yaml is MiniLM-L3's first layer (hidden 384, 12 heads, feed-forward 1,536, a
30,522-word vocabulary) with its word embeddings frozen. A step's time depends on the shape and on which
parameters train, not on the weights, so the benchmarks build the same shape at random and need neither
the assets nor the data.
"""

from __future__ import annotations

from transformers import BertConfig, BertModel

from pipeline.models import Classifier

VOCAB = 30522


def build(num_labels: int = 2) -> Classifier:
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=384,
        num_hidden_layers=1,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
    )
    model = Classifier(BertModel(config, add_pooling_layer=False), num_labels)
    model.encoder.get_input_embeddings().weight.requires_grad_(False)  # as student.freeze_embeddings does
    return model
