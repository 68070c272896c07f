"""Text classification: read labelled CSV/TSV/JSONL, build features, compute metrics.

Covers single-label (binary, multi-class), multi-label (labels joined by "|" in one field, or a JSON list) and
regression (a number per row). Every reading error names the file, the line and the field; labels are checked
against the training set before any training starts, so a run never dies hours in on one bad line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from typing_extensions import TypedDict

from albert.batching import as_tensors, encoder_inputs
from albert.engines import TorchForward, run_rows
from albert.extras import require
from albert.readers import DataError, records
from albert.tasks.base import Task
from albert.tokenizer import AlbertTokenizer

KINDS = ("classification", "multi_label", "regression")


TaskDataError = DataError  # input data that cannot be used for the task (the name tasks have always raised)


@dataclass
class Example:
    text: str
    pair: str | None
    label: Any  # str (classification), list[str] (multi_label), float (regression), None when unlabelled
    line: int  # where it came from, for messages


def read_examples(
    path: str | Path,
    kind: str = "classification",
    text_column: str = "text",
    pair_column: str | None = None,
    label_column: str | None = "label",
) -> list[Example]:
    """Examples of one file. ``label_column=None`` reads unlabelled text (prediction)."""
    path = Path(path)
    rows = list(records(path))
    if not rows:
        raise TaskDataError(f"{path}: the file has no rows")
    examples = []
    for number, row in rows:
        for column in filter(None, (text_column, pair_column, label_column)):
            if column not in row:
                found = ", ".join(map(str, row)) or "none"
                raise TaskDataError(f"{path}:{number}: no field '{column}' (fields found: {found})")
            if row[column] is None:  # JSONL null: the field is there, its value is not
                raise TaskDataError(f"{path}:{number}: field '{column}' is null")
        text = str(row[text_column])
        if not text.strip():
            raise TaskDataError(f"{path}:{number}: field '{text_column}' is empty")
        label = _parse_label(row[label_column], kind, path, number, label_column) if label_column else None
        examples.append(Example(text, str(row[pair_column]) if pair_column else None, label, number))
    return examples


def regression_target(value: Any, where: str) -> float:
    """A regression target as a finite float, or an error naming ``where`` (file:line and field). float() reads
    "nan" and "inf" (and JSON reads NaN and Infinity): one such target made the first step's loss NaN, reported as
    a learning-rate problem with no file or line."""
    if isinstance(value, str) and not value.strip():
        raise TaskDataError(f"{where} is empty")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TaskDataError(f"{where} must be a number, found {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise TaskDataError(f"{where} must be a finite number, found {value!r}")
    return number


def _parse_label(value: Any, kind: str, path: Path, number: int, column: str) -> Any:
    if kind == "regression":
        return regression_target(value, f"{path}:{number}: field '{column}'")
    if kind == "multi_label":
        labels = value if isinstance(value, list) else [v for v in str(value).split("|") if v.strip()]
        return sorted({str(v).strip() for v in labels} - {""})  # a JSON list's "" is no label, as in a|b||c
    label = str(value).strip()
    if not label:
        raise TaskDataError(f"{path}:{number}: field '{column}' is empty")
    return label


def label_list(examples: list[Example], kind: str) -> list[str]:
    if kind == "regression":
        return ["score"]
    labels = {lab for e in examples for lab in (e.label if kind == "multi_label" else [e.label])}
    if kind == "classification" and len(labels) < 2:
        raise TaskDataError(f"training data has {len(labels)} distinct label(s); classification needs at least 2")
    return sorted(labels, key=lambda x: (not x.lstrip("-").isdigit(), int(x) if x.lstrip("-").isdigit() else 0, x))


def check_labels(
    examples: list[Example],
    labels: list[str],
    kind: str,
    path: str | Path,
    unknown: str = "never occurs in the training data",
) -> None:
    """Every label of ``examples`` (read from ``path``, the file the user gave) is one of ``labels``."""
    if kind == "regression":
        return
    known = set(labels)
    for e in examples:
        for label in e.label if kind == "multi_label" else [e.label]:
            if label not in known:
                raise TaskDataError(f"{path}:{e.line}: label {label!r} {unknown} (known: {', '.join(labels)})")


def targets(examples: list[Example], labels: list[str], kind: str) -> np.ndarray:
    if kind == "regression":
        return np.array([e.label for e in examples], dtype=np.float32)
    index = {label: i for i, label in enumerate(labels)}
    if kind == "multi_label":
        out = np.zeros((len(examples), len(labels)), dtype=np.float32)
        for row, e in enumerate(examples):
            out[row, [index[x] for x in e.label]] = 1.0
        return out
    return np.array([index[e.label] for e in examples], dtype=np.int64)


def metrics(kind: str, y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """scikit-learn/scipy metrics: accuracy, macro-F1, MCC; micro-F1 for multi-label; Pearson/Spearman."""
    if kind == "regression":
        stats = require("scipy.stats", "regression metrics")
        pearsonr, spearmanr = stats.pearsonr, stats.spearmanr

        pred = scores.reshape(-1)
        return {
            "pearson": float(pearsonr(y_true, pred)[0]),
            "spearman": float(spearmanr(y_true, pred)[0]),
            "mse": float(np.mean((y_true - pred) ** 2)),
        }
    sklearn = require("sklearn.metrics", "classification metrics")
    accuracy_score, f1_score, matthews_corrcoef = sklearn.accuracy_score, sklearn.f1_score, sklearn.matthews_corrcoef

    if kind == "multi_label":
        pred = (scores > 0).astype(int)
        return {
            "micro_f1": float(f1_score(y_true, pred, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(y_true, pred, average="macro", zero_division=0)),
            "exact_match": float(accuracy_score(y_true, pred)),
        }
    pred = scores.argmax(-1)
    return {
        "accuracy": float(accuracy_score(y_true, pred)),
        "macro_f1": float(f1_score(y_true, pred, average="macro")),
        "mcc": float(matthews_corrcoef(y_true, pred)),
        "predicted_labels": float(len(np.unique(pred))),  # 1: every text got the same label (the majority, usually)
    }


def main_metric(kind: str) -> str:
    return {"classification": "accuracy", "multi_label": "micro_f1", "regression": "pearson"}[kind]


class Encoded:
    """Tokenised examples; batches are padded to their longest row."""

    def __init__(self, tok: AlbertTokenizer, examples: list[Example], max_length: int, y: np.ndarray | None):
        texts = [e.text for e in examples]
        pairs = [e.pair for e in examples] if examples and examples[0].pair is not None else None
        enc = tok(texts, pairs)
        self.ids, self.types, self.y, self.pad = enc["input_ids"], enc["token_type_ids"], y, tok.pad_token_id
        long = [i for i, ids in enumerate(self.ids) if len(ids) > max_length]
        self.truncated = len(long)
        if long and pairs is None:  # one segment: [CLS] + the first max_length - 2 pieces + [SEP], the tokenizer's cut
            for i in long:
                self.ids[i] = self.ids[i][: max_length - 1] + self.ids[i][-1:]
                self.types[i] = self.types[i][:max_length]
        elif long:  # pairs: only the over-long rows are encoded again, cut by the tokenizer's longest-first rule
            cut = tok(
                [texts[i] for i in long],
                [pairs[i] for i in long] if pairs else None,
                max_length=max_length,
                truncation=True,
            )
            for k, i in enumerate(long):
                self.ids[i], self.types[i] = cut["input_ids"][k], cut["token_type_ids"][k]

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        out = as_tensors(encoder_inputs([self.ids[r] for r in rows], [self.types[r] for r in rows], self.pad))
        if self.y is not None:
            out["labels"] = torch.from_numpy(self.y[list(rows)])
        return out


def predict_scores(model, data: Encoded, batch_size: int, device) -> np.ndarray:
    """Logits in input order, from length-sorted, token-budgeted batches (engines.run_rows)."""
    logits = run_rows(TorchForward(model, device), data.ids, data.types, data.pad, max_batch=batch_size)["logits"]
    return np.stack(logits).astype(np.float32) if logits else np.zeros((0, model.config.num_labels), np.float32)


def evaluate(model, data: Encoded, kind: str, batch_size: int = 64, device="cpu") -> dict[str, float]:
    return metrics(kind, data.y, predict_scores(model, data, batch_size, device))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def classification_logits(forward, tokenizer, texts, pairs=None, max_length=128, **batching) -> np.ndarray:
    """Logits of each text (or text pair) through any engine, from length-sorted, token-budgeted batches."""
    enc = tokenizer(list(texts), list(pairs) if pairs is not None else None, max_length=max_length, truncation=True)
    if not enc["input_ids"]:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(
        run_rows(forward, enc["input_ids"], enc["token_type_ids"], tokenizer.pad_token_id, **batching)["logits"]
    )


class Scores(TypedDict, total=False):
    """One text's prediction: label and probabilities (classification), labels (multi_label) or score."""

    label: str
    labels: list[str]
    probability: float
    probabilities: dict[str, float]
    score: float


def describe_scores(logits: np.ndarray, labels: list[str], kind: str) -> list[Scores]:
    """Logits → the records `albert predict` prints and the server returns."""
    if kind == "regression":
        return [{"score": round(float(row[0]), 6)} for row in logits]
    probs = 1 / (1 + np.exp(-logits)) if kind == "multi_label" else softmax(logits)
    records = []
    for p in probs:
        record: Scores = {}
        if kind == "multi_label":
            record["labels"] = [lab for lab, q in zip(labels, p, strict=True) if q >= 0.5]
        else:
            record["label"] = labels[int(p.argmax())]
            record["probability"] = round(float(p.max()), 6)
        record["probabilities"] = {lab: round(float(q), 6) for lab, q in zip(labels, p, strict=True)}
        records.append(record)
    return records


class Classification(Task):
    """One label per text (or text pair); ``multi_label``: any number of labels; ``regression``: a number."""

    head = "AlbertForSequenceClassification"
    architectures = ("AlbertForSequenceClassification",)
    pipeline_tag = "text-classification"  # the Hub's tag for all three kinds (its widget shows a score per label)
    result, summary = Scores, "Classify texts"

    def __init__(self, kind: str):
        self.name = kind
        self.problem_type = {
            "classification": "single_label_classification",
            "multi_label": "multi_label_classification",
            "regression": "regression",
        }[kind]
        self.metric = main_metric(kind)
        self.named_labels = kind != "regression"

    def accepts(self, config: dict) -> bool:
        return super().accepts(config) and (config.get("problem_type") or "single_label_classification") == (
            self.problem_type
        )

    def input_columns(self, trained: dict) -> dict[str, str]:
        columns = super().input_columns(trained)
        if trained.get("pair_column"):  # fine-tuned on text pairs: predict reads both, as evaluate does
            columns["pair"] = trained["pair_column"]
        return columns

    def item_of(self, values: dict) -> str | tuple[str, str]:
        return (values["text"], values["pair"]) if "pair" in values else values["text"]

    def predict(self, predictor, items: list, pairs: list[str] | None = None) -> list[Scores]:
        if items and isinstance(items[0], tuple):  # (text, pair) items of a pair classifier (item_of)
            items, pairs = [i[0] for i in items], [i[1] for i in items]
        logits = classification_logits(
            predictor.forward, predictor.tokenizer, items, pairs, predictor.max_length, **predictor.batching
        )
        return describe_scores(logits, predictor.labels, self.name)

    def figure(self, model, data, labels, cfg, device, path) -> Path | None:
        if self.name != "classification":
            return None
        from albert import plot

        predicted = predict_scores(model, data, cfg.batch_size * 2, device).argmax(-1)
        plot.confusion_png(data.y, predicted, labels, path)
        return path

    def read(self, path, cfg) -> list[Example]:
        return read_examples(path, self.name, cfg.text_column, cfg.pair_column, cfg.label_column)

    def labels(self, train, dev, cfg, given=None) -> list[str]:
        if given is None:
            given = label_list(train, self.name)
        else:  # the model's labels: `albert evaluate` passes its --data (cfg.eval) as train, fit() a Python list
            check_labels(train, given, self.name, cfg.train or cfg.eval or "labels", "is not one of the model's labels")
        if dev is not None:
            check_labels(dev, given, self.name, cfg.eval or "eval")
        return given

    def encode(self, tokenizer, examples, labels, cfg) -> Encoded:
        return Encoded(tokenizer, examples, cfg.max_seq_length, targets(examples, labels, self.name))

    def evaluate(self, model, data, labels, cfg, device) -> dict[str, float]:
        return evaluate(model, data, self.name, cfg.batch_size * 2, device)
