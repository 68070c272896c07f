"""Extractive summarisation, BertSum-style: score each sentence from its own [CLS] and pick the best ones.

Input: CNN/DailyMail-style ``.story`` files (the article, then ``@highlight`` lines each followed by one summary
sentence; a directory of them) or JSONL records ``{"text" or "sentences", "summary" (a string or a list)}``.
Documents are split into sentences (English and Chinese end punctuation); the model reads
``[CLS] s1 [SEP] [CLS] s2 [SEP] …`` with alternating segment ids. Training labels are the oracle: sentences chosen
greedily while they raise ROUGE-1 + ROUGE-2 against the reference. Evaluation picks the top ``k`` sentences (in
document order) and reports ROUGE-1/2/L F1 (rouge-score; characters for Chinese), next to the lead-k baseline.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from typing_extensions import TypedDict

from albert.batching import as_tensors, encoder_inputs, pad_rows
from albert.engines import plan_batches
from albert.extras import require
from albert.readers import read_text
from albert.tasks.base import Task
from albert.tasks.classification import TaskDataError
from albert.tokenizer import AlbertTokenizer, is_cjk

_SENTENCE_END = re.compile(r"(?<=[。！？])|(?<=[.!?])\s+|(?<=[.!?][\"'”’)])\s+")


@dataclass
class Document:
    sentences: list[str]
    summary: list[str] | None
    source: str


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def read_documents(path: str | Path) -> list[Document]:
    path = Path(path)
    docs: list[Document] = []
    if path.is_dir():
        for story in sorted(path.glob("*.story")):
            parts = read_text(story).split("@highlight")
            sentences = [s for para in parts[0].split("\n\n") for s in split_sentences(para.replace("\n", " "))]
            summary = [h.strip() for h in parts[1:] if h.strip()]
            docs.append(Document(sentences, summary or None, str(story)))
    else:
        for number, line in enumerate(read_text(path).splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
                sentences = record.get("sentences") or split_sentences(record["text"])
                summary = record.get("summary")
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise TaskDataError(
                    f'{where}: expected a JSON object with "text" (or "sentences") and "summary"'
                ) from None
            if isinstance(summary, str):
                summary = split_sentences(summary)
            docs.append(Document([str(s) for s in sentences], summary, where))
    docs = [d for d in docs if d.sentences]
    if not docs:
        raise TaskDataError(f"{path}: no documents found (expected .story files or JSONL)")
    return docs


class _Tokens:
    """rouge-score's tokenizer interface: characters for CJK text, else lower-cased alphanumeric words."""

    def tokenize(self, text: str) -> list[str]:
        if any(is_cjk(c) for c in text):
            return [c for c in text if not c.isspace()]
        return re.findall(r"[a-z0-9]+", text.lower())


def _scorer(types=("rouge1", "rouge2", "rougeL")):
    rouge_scorer = require("rouge_score.rouge_scorer", "ROUGE scores")

    return rouge_scorer.RougeScorer(list(types), tokenizer=_Tokens())


def oracle(sentences: Sequence[str], summary: Sequence[str], max_sentences: int = 3) -> list[int]:
    """Greedy oracle: add the sentence that most raises ROUGE-1 + ROUGE-2 F1, while it raises it."""
    scorer, reference = _scorer(("rouge1", "rouge2")), " ".join(summary)
    chosen: list[int] = []
    best = 0.0
    while len(chosen) < max_sentences:
        gains = []
        for i in range(len(sentences)):
            if i not in chosen:
                scores = scorer.score(reference, " ".join(sentences[j] for j in sorted([*chosen, i])))
                gains.append((scores["rouge1"].fmeasure + scores["rouge2"].fmeasure, i))
        if not gains or max(gains)[0] <= best:
            break
        best, pick = max(gains)
        chosen.append(pick)
    return sorted(chosen)


class EncodedDocuments:
    """[CLS] s [SEP] per sentence, alternating segments; labels per sentence from the oracle (when summaries exist)."""

    def __init__(self, tok: AlbertTokenizer, docs: Sequence[Document], max_length: int = 512, max_sentences: int = 3):
        self.docs, self.pad, self.truncated = list(docs), tok.pad_token_id, 0
        self.ids, self.types, self.cls, self.labels = [], [], [], []
        pieces, _ = tok.encode_batch([s for d in docs for s in d.sentences])
        k = 0
        for d in docs:
            ids, types, cls = [], [], []
            for i in range(len(d.sentences)):
                sentence = pieces[k + i][: max_length - 2]
                if len(ids) + len(sentence) + 2 > max_length:
                    self.truncated += 1
                    break
                cls.append(len(ids))
                ids += [tok.cls_token_id, *sentence, tok.sep_token_id]
                types += [i % 2] * (len(sentence) + 2)
            k += len(d.sentences)
            chosen = set(oracle(d.sentences, d.summary, max_sentences)) if d.summary else set()
            self.ids.append(ids)
            self.types.append(types)
            self.cls.append(cls)
            self.labels.append([float(i in chosen) for i in range(len(cls))])

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        inputs = encoder_inputs([self.ids[r] for r in rows], [self.types[r] for r in rows], self.pad)
        inputs["cls_positions"] = pad_rows([self.cls[r] for r in rows])
        inputs["labels"] = pad_rows([self.labels[r] for r in rows], -100.0, np.float32)  # -100: padding
        return as_tensors(inputs)


@torch.no_grad()
def sentence_scores(model, data: EncodedDocuments, device, max_batch: int = 64, max_tokens: int | None = None):
    """Each document's sentence logits, in input order, from length-sorted batches within a token budget."""
    model.eval()
    scores: list = [None] * len(data)
    for rows in plan_batches([len(ids) for ids in data.ids], max_tokens or sys.maxsize, max_batch):
        batch = {key: v.to(device) for key, v in data.batch(rows).items() if key != "labels"}
        logits = model(**batch).logits.float().cpu().numpy()
        for b, r in enumerate(rows):
            scores[r] = logits[b, : len(data.cls[r])]
    return scores


def select(model, data: EncodedDocuments, batch_size: int, device, k: int = 3) -> list[list[int]]:
    """The k highest-scored sentences of each document, in document order."""
    return [sorted(np.argsort(-s)[:k].tolist()) for s in sentence_scores(model, data, device, batch_size)]


def rouge(docs: Sequence[Document], picks: Sequence[Sequence[int]]) -> dict[str, float]:
    scorer = _scorer()
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for d, chosen in zip(docs, picks, strict=True):
        scores = scorer.score(" ".join(d.summary), " ".join(d.sentences[i] for i in chosen))
        for key in totals:
            totals[key] += scores[key].fmeasure
    return {key: 100 * value / len(docs) for key, value in totals.items()}


def evaluate(model, data: EncodedDocuments, batch_size: int, device, k: int = 3) -> dict[str, float]:
    """ROUGE F1 of the model's top-k sentences, and of the first k (lead-k) for comparison."""
    ours = rouge(data.docs, select(model, data, batch_size, device, k))
    lead = rouge(data.docs, [list(range(min(k, len(c)))) for c in data.cls])
    return {**ours, **{f"lead_{key}": value for key, value in lead.items()}}


class Summary(TypedDict):
    summary: str  # the chosen sentences, in document order, joined by a space
    sentences: list[int]  # their indices among the document's sentences
    scores: list[float]  # every scored sentence's logit (sentences past the sequence length are not scored)


class ExtractiveSummarization(Task):
    """Pick the sentences of a document that best cover its reference summary (ROUGE-2 picks the checkpoint)."""

    name, head, metric = "summarization", "AlbertForExtractiveSummarization", "rouge2"
    # The Hub has no extractive-summarisation tag. "summarization" says what the model is for (a document in, its
    # summary out) and is where people look for one, though the Hub's widget and transformers' pipeline expect a
    # generative model and cannot run this head; "token-classification" would describe the mechanism (a score per
    # sentence) and hide the purpose.
    pipeline_tag = "summarization"
    architectures, exportable = ("AlbertForExtractiveSummarization",), False  # sentence positions: PyTorch only
    result, route, summary, response = Summary, "summarize", "Extractive summaries of documents", "summaries"

    def predict(self, predictor, items: list[str]) -> list[Summary]:
        """Each document's ``summary_sentences`` best sentences (the number it was trained with; 3 by default)."""
        k = int(predictor.trained.get("summary_sentences") or 3)
        docs = [Document(split_sentences(text) or [""], None, f"item {n}") for n, text in enumerate(items)]
        data = EncodedDocuments(predictor.tokenizer, docs, predictor.max_length)
        scores = sentence_scores(predictor.forward.model, data, predictor.forward.device, **predictor.batching)
        results: list[Summary] = []
        for doc, s in zip(docs, scores, strict=True):
            chosen = sorted(np.argsort(-s)[:k].tolist())
            results.append(
                {
                    "summary": " ".join(doc.sentences[i] for i in chosen),
                    "sentences": chosen,
                    "scores": [round(float(x), 6) for x in s],
                }
            )
        return results

    def read(self, path, cfg) -> list[Document]:
        return read_documents(path)

    def labels(self, train, dev, cfg, given=None) -> list[str]:
        return ["summary"]

    def encode(self, tokenizer, examples, labels, cfg) -> EncodedDocuments:
        return EncodedDocuments(tokenizer, examples, cfg.max_seq_length, cfg.summary_sentences)

    def evaluate(self, model, data, labels, cfg, device) -> dict[str, float]:
        return evaluate(model, data, cfg.batch_size, device, cfg.summary_sentences)
