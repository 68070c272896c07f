"""Sentence vectors from an encoder: a bare AlbertModel, a pretraining directory, or a converted sentence-transformers
model. Not trained by `albert finetune` (a pretrained or converted encoder is used as it is); predicted and served.

Pooling follows what the model was trained with: the pooled [CLS] vector (the official TF-Hub module's
pooled_output) where the model has a trained pooler, else the mean over real tokens; a sentence-transformers model
pools as its config says (config.sentence_pooling: cls, mean, max, mean_sqrt_len) and may normalise.
"""

from __future__ import annotations

import numpy as np

from albert.engines import run_rows
from albert.tasks.base import Task

_POOL = {  # over one text's real tokens, [CLS] and [SEP] included (as sentence-transformers pools)
    "cls": lambda h: h[0],
    "mean": lambda h: h.mean(0),
    "max": lambda h: h.max(0),
    "mean_sqrt_len": lambda h: h.sum(0) / np.sqrt(len(h)),
}
PRETRAINING = ("AlbertForMaskedLM", "AlbertForPreTraining")  # their encoder, when asked for (task="embedding")


def embed_texts(forward, tokenizer, texts, max_length=128, pooling=None, normalize=False, **batching) -> np.ndarray:
    """One vector per text. ``pooling`` None: the pooled [CLS] vector where the model has a pooler, else the mean
    over real tokens; or cls / mean / max / mean_sqrt_len. ``normalize`` scales each vector to unit length, as
    sentence-transformers' Normalize module does."""
    enc = tokenizer(list(texts), max_length=max_length, truncation=True)
    out = run_rows(forward, enc["input_ids"], enc["token_type_ids"], tokenizer.pad_token_id, **batching)
    if pooling is None and "pooler_output" in out:
        vectors = np.stack(out["pooler_output"])
    else:
        vectors = np.stack([_POOL[pooling or "mean"](h) for h in out["last_hidden_state"]])
    if normalize:
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors


class Embedding(Task):
    """An encoder's sentence vectors."""

    name, trainable, pipeline_tag = "embedding", False, "feature-extraction"
    architectures = ("AlbertModel", *PRETRAINING)
    result, route, summary, response = list[float], "embed", "Sentence vectors", "embeddings"

    def model_class(self, architecture: str) -> str:
        return "AlbertModel" if architecture in PRETRAINING else architecture

    def vectors(self, predictor, items: list[str]) -> np.ndarray:
        p, cfg = predictor, predictor.config
        return embed_texts(
            p.forward, p.tokenizer, items, p.max_length, cfg.sentence_pooling, cfg.sentence_normalize, **p.batching
        )

    def predict(self, predictor, items: list[str]) -> list[list[float]]:
        return [[round(float(x), 6) for x in v] for v in self.vectors(predictor, items)]
