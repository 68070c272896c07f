"""Sentence-pair similarity, STS-B style: two sentences and a score (0-5 in STS-B), a regression head on the pair.

Added through the task interface alone (albert/tasks/base.py): this module and one line in the registry are the whole
change, which is the point of it. Files are STS-B's own TSV (columns sentence1, sentence2, score, among others) or
CSV/JSONL with those fields; --text-column/--pair-column/--label-column name others. The checkpoint is picked by the
mean of Pearson and Spearman correlation, GLUE's STS-B score.
"""

from __future__ import annotations

from typing_extensions import TypedDict

from albert.tasks.base import Task
from albert.tasks.classification import (
    Encoded,
    Example,
    TaskDataError,
    classification_logits,
    evaluate,
    read_examples,
    targets,
)

DEFAULT_COLUMNS = ("sentence1", "sentence2", "score")


class Pair(TypedDict):
    text: str
    pair: str


class Similarity(TypedDict):
    score: float


class SentenceSimilarity(Task):
    name, head, problem_type, metric = "similarity", "AlbertForSequenceClassification", "regression", "pearson_spearman"
    pipeline_tag = "sentence-similarity"  # what it scores; the Hub's widget for this tag expects a bi-encoder
    item, result, route, summary, response = Pair, Similarity, "similarity", "Score sentence pairs", "scores"
    # architectures stays empty: a regression head on pairs is known as similarity by its finetune_config.json

    def predict(self, predictor, items: list[Pair]) -> list[Similarity]:
        p = predictor
        texts, pairs = [i["text"] for i in items], [i["pair"] for i in items]
        logits = classification_logits(p.forward, p.tokenizer, texts, pairs, p.max_length, **p.batching)
        return [{"score": round(float(row[0]), 6)} for row in logits]

    def input_columns(self, trained: dict) -> dict[str, str]:
        """The sentence columns it was trained with (STS-B's by default); records may name them text and pair."""
        text = trained.get("text_column") or "text"
        first = text if text != "text" else DEFAULT_COLUMNS[0]
        return {"text": first, "pair": trained.get("pair_column") or DEFAULT_COLUMNS[1]}

    def columns(self, cfg) -> tuple[str, str, str]:
        """STS-B's names unless the config names others (the generic defaults, text/label, mean 'not given')."""
        first = cfg.text_column if cfg.text_column != "text" else DEFAULT_COLUMNS[0]
        second = cfg.pair_column or DEFAULT_COLUMNS[1]
        score = cfg.label_column if cfg.label_column != "label" else DEFAULT_COLUMNS[2]
        return first, second, score

    def read(self, path, cfg) -> list[Example]:
        first, second, score = self.columns(cfg)
        examples = read_examples(path, "regression", first, second, score)
        for e in examples:
            if not e.pair or not e.pair.strip():
                raise TaskDataError(f"{path}:{e.line}: field '{second}' is empty (a pair needs two sentences)")
        return examples

    def labels(self, train, dev, cfg, given=None) -> list[str]:
        return ["score"]

    def encode(self, tokenizer, examples, labels, cfg) -> Encoded:
        return Encoded(tokenizer, examples, cfg.max_seq_length, targets(examples, labels, "regression"))

    def evaluate(self, model, data, labels, cfg, device) -> dict[str, float]:
        scores = evaluate(model, data, "regression", cfg.batch_size * 2, device)
        return {**scores, "pearson_spearman": (scores["pearson"] + scores["spearman"]) / 2}
