"""Multiple choice (RACE-style): each option is read as ``[CLS] passage [SEP] question + option [SEP]``.

Input: RACE JSON files (``{"article", "questions": [...], "options": [[...], ...], "answers": ["A", ...]}``, one
file per passage, or a directory of them) or JSONL records ``{"passage", "question", "options": [...], "answer"}``
where answer is a letter or an index. As in google-research/albert's race_utils, the question and the option share
the second segment (a "_" blank in the question is filled with the option) and the passage is truncated first.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from typing_extensions import TypedDict

from albert.batching import encoder_inputs
from albert.engines import plan_batches
from albert.readers import json_object, read_text
from albert.tasks.base import Task
from albert.tasks.classification import TaskDataError
from albert.tokenizer import AlbertTokenizer


@dataclass
class Question:
    passage: str
    question: str
    options: list[str]
    answer: int | None
    source: str  # file:line, for messages


def _answer_index(value, n_options: int, where: str) -> int:
    if isinstance(value, str) and len(value) == 1 and value.isalpha():
        index = ord(value.upper()) - ord("A")
    elif isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        index = int(value)
    else:
        raise TaskDataError(f"{where}: answer must be a letter or an option index, found {value!r}")
    if not 0 <= index < n_options:
        raise TaskDataError(f"{where}: answer {value!r} is outside the {n_options} options")
    return index


def read_questions(path: str | Path) -> list[Question]:
    path = Path(path)
    files = (
        sorted(p for p in path.rglob("*") if p.suffix in (".json", ".txt") and p.is_file()) if path.is_dir() else [path]
    )
    questions: list[Question] = []
    for file in files:
        text = read_text(file)
        records = (
            [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
            if file.suffix == ".jsonl"
            else [(1, text)]
        )
        for number, raw in records:
            where = f"{file}:{number}"
            record = json_object(raw, where)  # an object, or an error naming the line (a list broke `in` below)
            if "article" in record:  # RACE: one passage, several questions
                try:
                    items = zip(record["questions"], record["options"], record["answers"], strict=True)
                except (KeyError, ValueError):
                    raise TaskDataError(f"{where}: RACE needs equally long 'questions', 'options', 'answers'") from None
                for q, options, answer in items:
                    questions.append(
                        Question(record["article"], q, list(options), _answer_index(answer, len(options), where), where)
                    )
            else:
                try:
                    options = list(record["options"])
                    answer = record.get("answer")
                    questions.append(
                        Question(
                            record["passage"],
                            record.get("question", ""),
                            options,
                            None if answer is None else _answer_index(answer, len(options), where),
                            where,
                        )
                    )
                except (KeyError, TypeError):
                    raise TaskDataError(f'{where}: expected "passage", "question", "options" (and "answer")') from None
    if not questions:
        raise TaskDataError(f"{path}: no questions found")
    counts = {len(q.options) for q in questions}
    if len(counts) != 1:
        raise TaskDataError(f"{path}: every question needs the same number of options, found {sorted(counts)}")
    return questions


class EncodedChoices:
    """(questions, options, tokens) ids, no row longer than ``max_length``. As race_utils cuts: the question +
    option keep their last ``max_qa_length`` tokens (the option's end), then the passage is cut to what is left; where
    ``max_length`` is smaller than race_utils assumes, question + option keep their last ``max_length - 3`` tokens.
    ``truncated`` counts questions (examples) with any option row cut."""

    def __init__(self, tok: AlbertTokenizer, questions: Sequence[Question], max_length: int, max_qa_length: int = 128):
        self.pad, self.truncated = tok.pad_token_id, 0
        self.ids, self.types, self.answers = [], [], []
        passages, _ = tok.encode_batch([q.passage for q in questions])
        second = [
            q.question.replace("_", o) if "_" in q.question else f"{q.question} {o}".strip()
            for q in questions
            for o in q.options
        ]
        qa, _ = tok.encode_batch(second)
        k, keep = 0, max(1, min(max_qa_length, max_length - 3))
        for q, passage in zip(questions, passages, strict=True):
            rows, types, cut = [], [], False
            for _ in q.options:
                b = qa[k][-keep:]
                cut |= len(b) < len(qa[k])
                k += 1
                room = max_length - 3 - len(b)
                cut |= len(passage) > room
                a = passage[: max(room, 0)]
                rows.append([tok.cls_token_id, *a, tok.sep_token_id, *b, tok.sep_token_id])
                types.append([0] * (len(a) + 2) + [1] * (len(b) + 1))
            self.ids.append(rows)
            self.types.append(types)
            self.answers.append(q.answer)
            self.truncated += cut
        self.y = np.array([a if a is not None else -1 for a in self.answers], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        C = len(self.ids[rows[0]])  # every question of a batch has C options
        flat = encoder_inputs(
            [option for r in rows for option in self.ids[r]], [t for r in rows for t in self.types[r]], self.pad
        )
        out = {name: torch.from_numpy(a.reshape(len(rows), C, -1)) for name, a in flat.items()}  # (B, C, T)
        if all(self.answers[r] is not None for r in rows):
            out["labels"] = torch.from_numpy(self.y[list(rows)])
        return out


@torch.no_grad()
def choice_scores(model, data: EncodedChoices, device, max_batch: int = 64, max_tokens: int | None = None) -> list:
    """Each question's option logits, in input order. Questions with as many options share batches, sorted by length
    and cut by a token budget (options × longest option × questions ≤ ``max_tokens``) as prediction does."""
    model.eval()
    scores: list = [None] * len(data)
    by_count: dict[int, list[int]] = {}
    for r in range(len(data)):
        by_count.setdefault(len(data.ids[r]), []).append(r)
    for rows in by_count.values():
        cost = [len(data.ids[r]) * max(map(len, data.ids[r])) for r in rows]
        for batch in plan_batches(cost, max_tokens or sys.maxsize, max_batch):
            picked = [rows[b] for b in batch]
            inputs = {k: v.to(device) for k, v in data.batch(picked).items() if k != "labels"}
            logits = model(**inputs).logits.float().cpu().numpy()
            for b, r in enumerate(picked):
                scores[r] = logits[b]
    return scores


def predict_scores(model, data: EncodedChoices, batch_size: int, device) -> np.ndarray:
    return np.stack(choice_scores(model, data, device, batch_size))


def metrics(answers: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {"accuracy": float((scores.argmax(-1) == answers).mean())}


class Item(TypedDict):
    passage: str
    question: str  # may be "" (SWAG: the option continues the passage); a "_" in it is filled with each option
    options: list[str]


class Choice(TypedDict):
    choice: int  # index of the chosen option
    answer: str  # its text
    probabilities: list[float]  # one per option


class MultipleChoice(Task):
    """RACE/SWAG style: one passage and question, C options, one right."""

    name, head, metric, pipeline_tag = "multiple_choice", "AlbertForMultipleChoice", "accuracy", "multiple-choice"
    architectures, exportable = ("AlbertForMultipleChoice",), False  # (B, C, T) inputs: PyTorch only
    item, result, route, summary, response = Item, Choice, "choose", "Pick the right option", "choices"

    def predict(self, predictor, items: list[Item]) -> list[Choice]:
        questions = [
            Question(i["passage"], i["question"], list(i["options"]), None, f"item {n}") for n, i in enumerate(items)
        ]
        for q in questions:
            if len(q.options) < 2:
                raise TaskDataError(f"{q.source}: a question needs at least two options, found {len(q.options)}")
        data = EncodedChoices(predictor.tokenizer, questions, predictor.max_length)
        scores = choice_scores(predictor.forward.model, data, predictor.forward.device, **predictor.batching)
        results: list[Choice] = []
        for q, logits in zip(questions, scores, strict=True):
            p = np.exp(logits - logits.max())
            p /= p.sum()
            best = int(p.argmax())
            results.append(
                {"choice": best, "answer": q.options[best], "probabilities": [round(float(x), 6) for x in p]}
            )
        return results

    def read(self, path, cfg) -> list[Question]:
        return read_questions(path)

    def labels(self, train, dev, cfg, given=None) -> list[str]:
        labels = [chr(ord("A") + i) for i in range(len(train[0].options))]
        if dev is not None and len(dev[0].options) != len(labels):
            raise TaskDataError(
                f"{dev[0].source}: {len(dev[0].options)} options per question, training has {len(labels)}"
            )
        return labels

    def encode(self, tokenizer, examples, labels, cfg) -> EncodedChoices:
        return EncodedChoices(tokenizer, examples, cfg.max_seq_length)

    def evaluate(self, model, data, labels, cfg, device) -> dict[str, float]:
        return metrics(data.y, predict_scores(model, data, cfg.batch_size, device))
