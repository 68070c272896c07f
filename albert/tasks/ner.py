"""Token classification (NER): read CoNLL/BIO or JSONL, label the first piece of each word, entity-level metrics.

Input: CoNLL-style text (one ``token label`` per line, whitespace-separated, the label last; a blank line between
sentences; ``-DOCSTART-`` lines skipped) or JSONL records ``{"tokens": [...], "tags": [...]}``. Chinese NER is
character-level: each character is a token. Metrics are seqeval's entity-level precision, recall and F1.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from typing_extensions import TypedDict

from albert.batching import as_tensors, encoder_inputs, pad_rows
from albert.extras import require
from albert.readers import read_text
from albert.tasks.base import Task
from albert.tasks.classification import TaskDataError
from albert.tokenizer import AlbertTokenizer, is_cjk


@dataclass
class Sentence:
    tokens: list[str]
    tags: list[str] | None
    line: int


def read_sentences(path: str | Path, labelled: bool = True) -> list[Sentence]:
    path = Path(path)
    text = read_text(path)
    sentences: list[Sentence] = []
    if path.suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                tokens, tags = [str(t) for t in record["tokens"]], record.get("tags")
            except (json.JSONDecodeError, KeyError, TypeError):
                raise TaskDataError(f'{path}:{number}: expected a JSON object with "tokens" (and "tags")') from None
            if labelled and (not isinstance(tags, list) or len(tags) != len(tokens)):
                raise TaskDataError(f"{path}:{number}: 'tags' must list one tag per token ({len(tokens)} tokens)")
            sentences.append(Sentence(tokens, [str(t) for t in tags] if labelled else None, number))
    else:
        tokens, tags, start = [], [], 1
        for number, line in enumerate([*text.splitlines(), ""], 1):
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                if tokens:
                    sentences.append(Sentence(tokens, tags if labelled else None, start))
                tokens, tags, start = [], [], number + 1
                continue
            if labelled and len(fields) < 2:
                raise TaskDataError(f"{path}:{number}: expected 'token label', found {line.strip()!r}")
            tokens.append(fields[0])
            tags.append(fields[-1])
    if not sentences:
        raise TaskDataError(f"{path}: no sentences found")
    for sentence in sentences if labelled else []:
        for tag in sentence.tags:
            if tag != "O" and not (tag[:2] in ("B-", "I-") and len(tag) > 2):
                raise TaskDataError(f"{path}:{sentence.line}: tag {tag!r} is not BIO (O, B-TYPE, I-TYPE)")
    return sentences


def tag_list(sentences: Sequence[Sentence]) -> list[str]:
    tags = {t for s in sentences for t in s.tags}
    return ["O", *sorted(tags - {"O"}, key=lambda t: (t[2:], t[:2]))]


def check_tags(sentences: Sequence[Sentence], labels: list[str], path: str | Path) -> None:
    known = set(labels)
    for s in sentences:
        unknown = sorted(set(s.tags) - known)
        if unknown:
            raise TaskDataError(f"{path}:{s.line}: tag {unknown[0]!r} never occurs in the training data")


class EncodedTokens:
    """Sentences as piece ids; the label sits on each word's first piece (-100 elsewhere), and word_of maps back."""

    def __init__(self, tok: AlbertTokenizer, sentences: Sequence[Sentence], labels: list[str], max_length: int):
        index = {label: i for i, label in enumerate(labels)}
        words = [w for s in sentences for w in s.tokens]
        pieces, _ = tok.encode_batch(words)
        self.ids, self.targets, self.word_of, self.sentences = [], [], [], list(sentences)
        self.pad, self.truncated, k = tok.pad_token_id, 0, 0
        for s in sentences:
            ids, targets, word_of = [tok.cls_token_id], [-100], [-1]
            for w in range(len(s.tokens)):
                word = pieces[k + w] or [tok.unk_token_id]  # a word the tokenizer drops (e.g. a control character)
                if len(ids) + len(word) > max_length - 1:
                    self.truncated += 1
                    break
                ids += word
                targets += [index[s.tags[w]] if s.tags else -100] + [-100] * (len(word) - 1)
                word_of += [w] + [-1] * (len(word) - 1)
            k += len(s.tokens)
            self.ids.append(ids + [tok.sep_token_id])
            self.targets.append(targets + [-100])
            self.word_of.append(word_of + [-1])

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        inputs = encoder_inputs([self.ids[r] for r in rows], None, self.pad)
        del inputs["token_type_ids"]  # one segment
        inputs["labels"] = pad_rows([self.targets[r] for r in rows], -100)  # -100: no prediction (pieces, padding)
        return as_tensors(inputs)

    def decode(self, row: int, logits: np.ndarray, labels: list[str]) -> list[str]:
        """Word-level tags for one sentence from its token logits; words cut off by truncation get "O"."""
        tags = ["O"] * len(self.sentences[row].tokens)
        for position, word in enumerate(self.word_of[row]):
            if word >= 0:
                tags[word] = labels[int(logits[position].argmax())]
        return tags


def predict_tags(model, data: EncodedTokens, labels: list[str], batch_size: int, device=None) -> list[list[str]]:
    """Word-level tags per sentence; ``model`` is a model or an infer backend."""
    from albert.engines import as_forward, run_rows

    logits = run_rows(as_forward(model, device), data.ids, None, data.pad, max_batch=batch_size)["logits"]
    return [data.decode(r, logits[r], labels) for r in range(len(data))]


def metrics(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    seqeval = require("seqeval.metrics", "entity-level NER metrics")
    accuracy_score, f1_score = seqeval.accuracy_score, seqeval.f1_score
    precision_score, recall_score = seqeval.precision_score, seqeval.recall_score

    return {
        "f1": float(f1_score(gold, predicted)),
        "precision": float(precision_score(gold, predicted)),
        "recall": float(recall_score(gold, predicted)),
        "token_accuracy": float(accuracy_score(gold, predicted)),
    }


def spans(tokens: list[str], tags: list[str]) -> list[dict]:
    """Entities as {type, start, end (token indices, end exclusive), text}; I- without B- starts an entity."""
    found, current = [], None
    for i, tag in enumerate([*tags, "O"]):
        if current and (tag == "O" or tag.startswith("B-") or tag[2:] != current["type"]):
            current["end"] = i
            current["text"] = (
                "".join(tokens[current["start"] : i])
                if all(len(t) == 1 for t in tokens)
                else " ".join(tokens[current["start"] : i])
            )
            found.append(current)
            current = None
        if tag != "O" and current is None:
            current = {"type": tag[2:], "start": i}
    return found


class Entity(TypedDict):
    type: str
    start: int  # character offsets in the text: text[start:end] is the entity
    end: int
    text: str


def split_words(text: str) -> list[tuple[str, int]]:
    """(token, character offset) pairs: characters for text with CJK characters (as Chinese NER data is tagged),
    whitespace-separated words otherwise."""
    if any(is_cjk(c) for c in text):
        return [(c, i) for i, c in enumerate(text) if not c.isspace()]
    tokens, position = [], 0
    for word in text.split():
        position = text.index(word, position)
        tokens.append((word, position))
        position += len(word)
    return tokens


def tag_texts(forward, tokenizer, labels, texts, max_length=128, **batching) -> list[list[Entity]]:
    """Entity spans with character offsets; CJK text is tagged per character, other text per word."""
    from albert.engines import run_rows

    split = [split_words(t) for t in texts]
    sentences = [Sentence([w for w, _ in s] or [""], None, n) for n, s in enumerate(split)]
    data = EncodedTokens(tokenizer, sentences, labels, max_length)
    logits = run_rows(forward, data.ids, None, tokenizer.pad_token_id, **batching)["logits"] if len(data) else []
    results = []
    for r, (text, tokens) in enumerate(zip(texts, split, strict=True)):
        tags = data.decode(r, logits[r], labels)[: len(tokens)]
        entities: list[Entity] = []
        for span in spans([w for w, _ in tokens], tags):
            start = tokens[span["start"]][1]
            last_word, last_at = tokens[span["end"] - 1]
            end = last_at + len(last_word)
            entities.append({"type": span["type"], "start": start, "end": end, "text": text[start:end]})
        results.append(entities)
    return results


class NamedEntities(Task):
    """A tag per word (BIO/BIOES), scored by seqeval's entity-level F1."""

    name, head, metric, pipeline_tag = "ner", "AlbertForTokenClassification", "f1", "token-classification"
    architectures, route, summary = ("AlbertForTokenClassification",), "ner", "Entity spans in texts"
    result, response, named_labels = list[Entity], "entities", True

    def predict(self, predictor, items: list[str]) -> list[list[Entity]]:
        p = predictor
        return tag_texts(p.forward, p.tokenizer, p.labels, items, p.max_length, **p.batching)

    def read(self, path, cfg) -> list[Sentence]:
        return read_sentences(path)

    def labels(self, train, dev, cfg, given=None) -> list[str]:
        labels = given or tag_list(train)
        if dev is not None:
            check_tags(dev, labels, cfg.eval or "eval")
        return labels

    def encode(self, tokenizer, examples, labels, cfg) -> EncodedTokens:
        return EncodedTokens(tokenizer, examples, labels, cfg.max_seq_length)

    def evaluate(self, model, data, labels, cfg, device) -> dict[str, float]:
        predicted = predict_tags(model, data, labels, cfg.batch_size * 2, device)
        return metrics([s.tags for s in data.sentences], predicted)
