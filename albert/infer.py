"""Fast batched inference, shared by `albert predict`, the Python API, `albert serve`, ONNX and evaluation.

Batches are length-sorted and token-budgeted, on PyTorch or onnxruntime alike (albert/engines.py), so prediction is
fast without changing any result.

``Predictor`` wraps a fine-tuned directory (and optionally its ONNX export) with one method per task:
``classify``, ``tag``, ``answer`` and ``embed``; `albert predict` and the server call exactly these.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from albert.engines import (  # noqa: F401 - re-exported: infer.run_rows etc. are public names
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MAX_TOKENS_GPU,
    OUTPUTS,
    TOKEN_OUTPUTS,
    Forward,
    OnnxForward,
    TorchForward,
    as_forward,
    pad_batch,
    plan_batches,
    run_rows,
)
from albert.errors import AlbertError, CheckpointError
from albert.hub import HubOptions
from albert.readers import csv_records
from albert.tasks import ner, qa

log = logging.getLogger("albert")


def encode_texts(tokenizer, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int):
    enc = tokenizer(list(texts), list(pairs) if pairs is not None else None, max_length=max_length, truncation=True)
    return enc["input_ids"], enc["token_type_ids"]


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def classification_logits(forward, tokenizer, texts, pairs=None, max_length=128, **batching) -> np.ndarray:
    ids, types = encode_texts(tokenizer, texts, pairs, max_length)
    if not ids:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(run_rows(forward, ids, types, tokenizer.pad_token_id, **batching)["logits"])


def describe_scores(logits: np.ndarray, labels: list[str], task: str) -> list[dict[str, Any]]:
    """Logits → the records `albert predict` prints and the server returns."""
    records = []
    if task == "regression":
        return [{"score": round(float(row[0]), 6)} for row in logits]
    probs = 1 / (1 + np.exp(-logits)) if task == "multi_label" else softmax(logits)
    for p in probs:
        record: dict[str, Any] = {}
        if task == "multi_label":
            record["labels"] = [lab for lab, q in zip(labels, p, strict=True) if q >= 0.5]
        else:
            record["label"] = labels[int(p.argmax())]
            record["probability"] = round(float(p.max()), 6)
        record["probabilities"] = {lab: round(float(q), 6) for lab, q in zip(labels, p, strict=True)}
        records.append(record)
    return records


def tag_texts(forward, tokenizer, labels, texts, max_length=128, **batching) -> list[list[dict]]:
    """Entity spans with character offsets; CJK text is tagged per character, other text per word."""

    split = [split_words(t) for t in texts]
    sentences = [ner.Sentence([w for w, _ in s] or [""], None, n) for n, s in enumerate(split)]
    data = ner.EncodedTokens(tokenizer, sentences, labels, max_length)
    logits = run_rows(forward, data.ids, None, tokenizer.pad_token_id, **batching)["logits"] if len(data) else []
    results = []
    for r, (text, tokens) in enumerate(zip(texts, split, strict=True)):
        tags = data.decode(r, logits[r], labels)[: len(tokens)]
        entities = []
        for span in ner.spans([w for w, _ in tokens], tags):
            start = tokens[span["start"]][1]
            last_word, last_at = tokens[span["end"] - 1]
            end = last_at + len(last_word)
            entities.append({"type": span["type"], "start": start, "end": end, "text": text[start:end]})
        results.append(entities)
    return results


def split_words(text: str) -> list[tuple[str, int]]:
    """(token, character offset) pairs: characters for text with CJK characters (as Chinese NER data is tagged),
    whitespace-separated words otherwise."""
    from albert.tokenizer import is_cjk

    if any(is_cjk(c) for c in text):
        return [(c, i) for i, c in enumerate(text) if not c.isspace()]
    tokens, position = [], 0
    for word in text.split():
        position = text.index(word, position)
        tokens.append((word, position))
        position += len(word)
    return tokens


def answer_questions(forward, tokenizer, questions, contexts, max_length=384, **batching):
    """The best answer span in each context (SQuAD windows: stride max_length // 3, question ≤ max_length // 6)."""

    examples = [qa.QAExample(str(n), q, c, [], False) for n, (q, c) in enumerate(zip(questions, contexts, strict=True))]
    features = qa.QAFeatures(
        tokenizer, examples, max_length=max_length, doc_stride=max_length // 3, max_query_length=max_length // 6
    )
    scored = qa.predict(forward, features, **batching)
    out = []
    for n in range(len(examples)):
        text, score, start = scored[str(n)]
        out.append({"answer": text, "score": round(score, 6), "start": start, "end": start + len(text) if text else -1})
    return out


_POOL = {  # over one text's real tokens, [CLS] and [SEP] included (as sentence-transformers pools)
    "cls": lambda h: h[0],
    "mean": lambda h: h.mean(0),
    "max": lambda h: h.max(0),
    "mean_sqrt_len": lambda h: h.sum(0) / np.sqrt(len(h)),
}


def embed_texts(forward, tokenizer, texts, max_length=128, pooling=None, normalize=False, **batching) -> np.ndarray:
    """One vector per text. ``pooling`` None: the pooled [CLS] vector (what the official TF-Hub module returns as
    pooled_output) where the model has a pooler, else the mean over real tokens; or cls / mean / max /
    mean_sqrt_len as a sentence-transformers model was trained to pool (config.sentence_pooling). ``normalize``
    scales each vector to unit length, as sentence-transformers' Normalize module does."""
    ids, types = encode_texts(tokenizer, texts, None, max_length)
    out = run_rows(forward, ids, types, tokenizer.pad_token_id, **batching)
    if pooling is None and "pooler_output" in out:
        vectors = np.stack(out["pooler_output"])
    else:
        vectors = np.stack([_POOL[pooling or "mean"](h) for h in out["last_hidden_state"]])
    if normalize:
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors


# ----------------------------------------------------------------------------------------------------------------
# A fine-tuned directory, ready to predict
# ----------------------------------------------------------------------------------------------------------------
TASK_OF_CLASS = {
    "AlbertForSequenceClassification": "classification",
    "AlbertForTokenClassification": "ner",
    "AlbertForQuestionAnswering": "qa",
    "AlbertForQuestionAnsweringWithAnswerability": "qa",
    "AlbertModel": "embedding",
    "AlbertForMaskedLM": "embedding",
    "AlbertForPreTraining": "embedding",
}


def fit_length(max_length: int | None, positions: int, model_dir, name: str = "--max-seq-length") -> int:
    """Tokens per text: ``max_length`` if the model has that many positions (an error naming both otherwise, not an
    index error inside torch); None → 128 or the model's positions, whichever is fewer."""
    if max_length is None:
        return min(128, positions)
    if max_length > positions:
        raise AlbertError(
            f"{name} {max_length} exceeds the {positions} positions of {model_dir} "
            f"(max_position_embeddings): pass {positions} or less"
        )
    return max_length


def check_vocabulary(tokenizer, vocab_size: int, model_dir) -> None:
    """A tokenizer must fit the model it feeds: ids past the embedding table would crash deep inside torch (or
    onnxruntime), and a much smaller tokenizer is almost surely another model's (silently wrong predictions)."""
    if tokenizer.vocab_size > vocab_size:
        raise CheckpointError(
            f"{model_dir}: the tokenizer has {tokenizer.vocab_size} entries but the model only {vocab_size} word "
            "embeddings; is it the model's own tokenizer?"
        )
    if vocab_size - tokenizer.vocab_size > 128:  # more than padding the table to a round size explains
        log.warning(
            "%s: the tokenizer has %d entries, the model %d word embeddings; is it the model's own tokenizer?",
            model_dir,
            tokenizer.vocab_size,
            vocab_size,
        )


class Predictor:
    """A model directory (config.json, weights, tokenizer) and an engine: PyTorch, or ``onnx=`` an export of it."""

    def __init__(
        self,
        model_dir: str | Path,
        onnx: str | Path | None = None,
        max_length: int | None = None,
        max_tokens: int | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        threads: int | None = None,
        device: str = "cpu",
        hub_options: HubOptions | None = None,
        length_flag: str = "--max-seq-length",  # how the caller's user names max_length, for the error message
    ):
        from albert import checkpoint, heads, hub, model
        from albert.config import AlbertConfig
        from albert.tokenizer import AlbertTokenizer

        self.model_dir = hub.local_or_hub(model_dir, "all", hub_options)
        data = checkpoint.read_config_dict(self.model_dir)
        self.config = AlbertConfig.from_dict(data, source=str(self.model_dir / "config.json"))
        self.architecture = (self.config.architectures or ["AlbertModel"])[0]
        if self.architecture not in TASK_OF_CLASS:
            raise AlbertError(
                f"{self.model_dir} holds a {self.architecture}; prediction serves {', '.join(sorted(TASK_OF_CLASS))}"
            )
        self.tokenizer = AlbertTokenizer.from_pretrained(self.model_dir)
        check_vocabulary(self.tokenizer, self.config.vocab_size, self.model_dir)
        self.max_length = fit_length(max_length, self.config.max_position_embeddings, self.model_dir, length_flag)
        if max_tokens is None:
            max_tokens = (
                DEFAULT_MAX_TOKENS_GPU if str(device).startswith("cuda") and onnx is None else DEFAULT_MAX_TOKENS
            )
        self.batching = {"max_tokens": max_tokens, "max_batch": max_batch}
        self.labels = [self.config.labels_by_id()[i] for i in range(self.config.num_labels)]
        self.task = TASK_OF_CLASS[self.architecture]
        if self.task == "classification":
            self.task = {"regression": "regression", "multi_label_classification": "multi_label"}.get(
                self.config.problem_type or "", "classification"
            )
        if onnx is not None:
            self.forward = OnnxForward(onnx, threads)
            if self.forward.kind and self.forward.kind != self._engine_class():
                raise CheckpointError(
                    f"{onnx} was exported from a {self.forward.kind}, the directory holds a {self.architecture}"
                )
            shape = ("vocab_size", "hidden_size", "num_hidden_layers", "num_labels", "max_position_embeddings")
            exported = self.forward.exported_config
            differ = [
                f"{k} {exported[k]} vs {getattr(self.config, k)}"
                for k in shape
                if k in exported and exported[k] != getattr(self.config, k)
            ]
            if differ:
                raise CheckpointError(
                    f"{onnx} was exported from another model than {self.model_dir} ({'; '.join(differ)}): pass the "
                    "directory it was exported from"
                )
        else:
            if threads:
                torch.set_num_threads(threads)
            cls = getattr(heads, self._engine_class(), None) or getattr(model, self._engine_class())
            loaded = cls.from_pretrained(self.model_dir)
            if any(name.endswith("pooler.weight") for name in loaded.load_report.initialised):
                loaded.pooler = None  # an MLM directory has no trained pooler: embed by mean pooling instead
            self.forward = TorchForward(loaded.to(device), device)

    def _engine_class(self) -> str:
        """Pretraining directories are served as a bare encoder (embeddings only)."""
        return (
            "AlbertModel" if self.architecture in ("AlbertForMaskedLM", "AlbertForPreTraining") else self.architecture
        )

    @property
    def routes(self) -> list[str]:
        return {"ner": ["ner"], "qa": ["qa"], "embedding": ["embed"]}.get(self.task, ["predict"])

    def classify(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> list[dict[str, Any]]:
        self._require("predict")
        logits = classification_logits(self.forward, self.tokenizer, texts, pairs, self.max_length, **self.batching)
        return describe_scores(logits, self.labels, self.task)

    def tag(self, texts: Sequence[str]) -> list[list[dict]]:
        self._require("ner")
        return tag_texts(self.forward, self.tokenizer, self.labels, texts, self.max_length, **self.batching)

    def answer(self, questions: Sequence[str], contexts: Sequence[str]) -> list[dict[str, Any]]:
        self._require("qa")
        length = min(max(self.max_length, 384), self.config.max_position_embeddings)  # SQuAD's 384 where it fits
        return answer_questions(self.forward, self.tokenizer, questions, contexts, length, **self.batching)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self._require("embed")
        cfg = self.config
        return embed_texts(
            self.forward,
            self.tokenizer,
            texts,
            self.max_length,
            cfg.sentence_pooling,
            cfg.sentence_normalize,
            **self.batching,
        )

    def _require(self, route: str) -> None:
        if route not in self.routes:
            raise AlbertError(f"a {self.architecture} cannot serve '{route}' (it serves: {', '.join(self.routes)})")

    def predict(self, texts: Sequence[str]) -> list[Any]:
        """The default prediction for the model's task, one record per text."""
        if self.task == "ner":
            return [{"entities": e} for e in self.tag(texts)]
        if self.task == "embedding":
            return [{"embedding": [round(float(x), 6) for x in v]} for v in self.embed(texts)]
        if self.task == "qa":
            raise AlbertError("a QA model answers questions about contexts: use Predictor.answer or POST /qa")
        return self.classify(texts)


# ----------------------------------------------------------------------------------------------------------------
# Streaming files larger than memory
# ----------------------------------------------------------------------------------------------------------------
def stdin_lines() -> Iterator[str]:
    """Standard input's lines (without the newline), decoded as UTF-8 with an error that names the line."""
    if not hasattr(sys.stdin, "buffer"):  # already text (a StringIO standing in for stdin)
        yield from (line.rstrip("\r\n") for line in sys.stdin)
        return
    for number, raw in enumerate(sys.stdin.buffer, 1):
        try:
            yield raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            raise AlbertError(f"stdin line {number}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def iter_records(path: str | Path, columns: Sequence[str] = ("text",)) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: text}) from .txt (one text per line), .jsonl, .csv or .tsv, read
    lazily so files larger than memory stream through."""
    path = Path(path)
    if not path.is_file():
        raise AlbertError(f"{path}: no such input file")
    suffix = path.suffix.lower()
    with open(path, encoding="utf-8", newline="") as f:
        try:
            if suffix in (".csv", ".tsv"):
                for number, row in csv_records(path, f, "\t" if suffix == ".tsv" else ","):
                    missing = [c for c in columns if c not in row]
                    if missing:
                        raise AlbertError(f"{path}: no column {missing[0]!r} (columns: {', '.join(row)})")
                    yield number, {c: row[c] for c in columns}
            elif suffix == ".jsonl":
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as err:
                        raise AlbertError(f"{path}:{number}: not valid JSON ({err.msg})") from None
                    if not isinstance(record, dict) or not all(isinstance(record.get(c), str) for c in columns):
                        wanted = ", ".join(repr(c) for c in columns)
                        raise AlbertError(f"{path}:{number}: expected an object with string field(s) {wanted}")
                    yield number, {c: record[c] for c in columns}
            else:  # one text per line, whatever the column is called
                if len(columns) != 1:
                    raise AlbertError(
                        f"{path}: a plain text file has one text per line; use .jsonl or .csv for {columns}"
                    )
                for number, line in enumerate(f, 1):  # a blank line is a (blank) text: output n answers line n
                    yield number, {columns[0]: line.rstrip("\r\n")}
        except UnicodeDecodeError as err:
            raise AlbertError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def predict_stream(
    predictor: Predictor, records: Iterator[dict[str, str]], chunk: int = 4096
) -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
    """Predict an unbounded stream of records in chunks (memory holds one chunk); output keeps input order.
    QA records need "question" and "context"; every other task reads "text"."""
    buffer: list[dict[str, str]] = []

    def flush():
        if predictor.task == "qa":
            results = predictor.answer([r["question"] for r in buffer], [r["context"] for r in buffer])
        else:
            results = predictor.predict([r["text"] for r in buffer])
        return zip(list(buffer), results, strict=True)

    for record in records:
        buffer.append(record)
        if len(buffer) >= chunk:
            yield from flush()
            buffer = []
    if buffer:
        yield from flush()
