"""Extractive question answering (SQuAD v1.1 / v2.0): features with a document stride, n-best span decoding, EM/F1.

Each example becomes one or more windows ``[CLS] question [SEP] context-window [SEP]``; each window starts
``min(doc_stride, window length)`` tokens after the previous one, so every context token is in some window. A window
that does not contain the answer (and every window of an unanswerable v2.0 question) is labelled with the [CLS]
position, as in BERT/ALBERT's run_squad. Decoding takes the n best starts and ends of each window, keeps spans
inside the context no longer than ``max_answer_length`` tokens that start where the window gives the token its most
context (run_squad's max-context rule), and maps them back to the context through character offsets. For v2.0 the
null score is start[CLS] + end[CLS] (or the answerability classifier's logit); an answer is given only when its
score minus the null score reaches the threshold tuned on dev (``best_f1``'s), which fine-tuning saves with the model
(decoding.json) and prediction applies, with the windows the model was trained with: what `albert predict`, the
server and ``Predictor.answer`` give scores what `albert evaluate` reports. EM and F1 follow the official evaluation
script (lower-case, strip punctuation and English articles, collapse whitespace).
"""

from __future__ import annotations

import collections
import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from typing_extensions import TypedDict

from albert.batching import as_tensors, encoder_inputs
from albert.readers import read_text
from albert.tasks.base import Task
from albert.tasks.classification import TaskDataError
from albert.tokenizer import AlbertTokenizer


@dataclass
class QAExample:
    id: str
    question: str
    context: str
    answers: list[tuple[str, int]]  # (text, character start in context); empty: unanswerable
    is_impossible: bool = False


def read_squad(path: str | Path) -> list[QAExample]:
    """SQuAD v1.1 / v2.0 JSON ({"data": [{"paragraphs": [{"context", "qas": [...]}]}]})."""
    path = Path(path)
    source = read_text(path)
    try:
        data = json.loads(source)["data"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise TaskDataError(f'{path}: not SQuAD JSON (expected {{"data": [...]}}: {err})') from None
    examples = []
    try:
        for article in data:
            for paragraph in article.get("paragraphs", []):
                for qa in paragraph.get("qas", []):
                    examples.append(_question(qa, paragraph["context"], path, source))
    except TaskDataError:  # (a ValueError too: not to be caught below)
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # a missing key or a value of the wrong type
        raise TaskDataError(
            f'{path}: not SQuAD JSON (each paragraph needs "context" and "qas", each question "id", "question" and '
            f'"answers" of "text" and "answer_start"; {type(err).__name__}: {err})'
        ) from None
    if not examples:
        raise TaskDataError(f"{path}: no questions found")
    return examples


def _question(qa: dict, context: str, path: Path, source: str) -> QAExample:
    answers = [(a["text"], int(a["answer_start"])) for a in qa.get("answers", [])]
    for text, start in answers:
        if context[start : start + len(text)] != text:
            # the file is one JSON object (no positions from json.loads): the line is the one the id is on
            at = source.find(json.dumps(str(qa["id"])))
            where = f"{path}:{source.count(chr(10), 0, at) + 1}" if at >= 0 else str(path)
            raise TaskDataError(f"{where}: question {qa['id']}: answer {text!r} is not at {start} in its context")
    return QAExample(str(qa["id"]), qa["question"], context, answers, qa.get("is_impossible", False))


class QAFeatures:
    """Windows over the examples' contexts, with labels (when answers are known) and the offsets to decode."""

    # The span loss is a softmax over every position of the padded window (as transformers' and the official v1
    # heads have it), so it depends on the padding: fine-tuning pads every pass of a step to the step's longest window,
    # which makes the step's gradient that of one padded batch however the step is cut into passes (albert/finetune.py).
    pad_to_step = True

    def __init__(
        self,
        tok: AlbertTokenizer,
        examples: Sequence[QAExample],
        max_length: int = 384,
        doc_stride: int = 128,
        max_query_length: int = 64,
        answerability: bool = False,  # also label each window "no answer here" for the answerability classifier
    ):
        self.examples, self.pad, self.answerability = list(examples), tok.pad_token_id, answerability
        questions, _ = tok.encode_batch([e.question for e in examples])
        contexts, offsets = tok.encode_batch([e.context for e in examples], offsets=True)
        self.ids, self.types, self.starts, self.ends, self.example_of, self.spans = [], [], [], [], [], []
        self.truncated = sum(len(q) > max_query_length for q in questions)  # questions cut to max_query_length
        if doc_stride < 1:
            raise TaskDataError(f"doc_stride must be at least 1 token, found {doc_stride}")
        if max_length - min(max_query_length, max(map(len, questions), default=0)) - 3 < 1:
            raise TaskDataError(
                f"max_seq_length {max_length} leaves no room for context after a question of up to "
                f"{max_query_length} tokens and 3 special tokens; raise max_seq_length or lower max_query_length"
            )
        for n, (example, q, c, off) in enumerate(zip(examples, questions, contexts, offsets, strict=True)):
            q = q[:max_query_length]
            room = max_length - len(q) - 3
            answer = _token_span(example, off)
            first = 0
            while True:
                last = min(first + room, len(c))
                ids = [tok.cls_token_id, *q, tok.sep_token_id, *c[first:last], tok.sep_token_id]
                shift = len(q) + 2 - first  # context token k sits at input position k + shift
                if answer is not None and first <= answer[0] and answer[1] < last:
                    start, end = answer[0] + shift, answer[1] + shift
                else:
                    start = end = 0  # [CLS]: no answer in this window
                self.ids.append(ids)
                self.types.append([0] * (len(q) + 2) + [1] * (last - first + 1))
                self.starts.append(start)
                self.ends.append(end)
                self.example_of.append(n)
                self.spans.append((first, last, shift))
                if last >= len(c):
                    break
                # never past the window's end: a stride wider than the window would skip tokens (BERT's run_squad
                # advances by min(doc_stride, room) for the same reason)
                first += min(doc_stride, room)
        self.offsets = offsets
        # for each window, which of its context tokens have their most central window here (BERT's
        # _check_is_max_context): decoding starts answers only there, so overlapping windows do not compete
        by_example: dict[int, list[int]] = collections.defaultdict(list)
        for r, n in enumerate(self.example_of):
            by_example[n].append(r)
        flags = {}
        for rows in by_example.values():
            flags.update(zip(rows, _max_context([self.spans[r][:2] for r in rows]), strict=True))
        self.max_context: list[np.ndarray] = [flags[r] for r in range(len(self.spans))]

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, rows: Sequence[int], width: int | None = None) -> dict[str, torch.Tensor]:
        out = as_tensors(encoder_inputs([self.ids[r] for r in rows], [self.types[r] for r in rows], self.pad, width))
        out["start_positions"] = torch.tensor([self.starts[r] for r in rows])
        out["end_positions"] = torch.tensor([self.ends[r] for r in rows])
        if self.answerability:  # the classifier's label: no answer in this window (none at all, or outside it), as
            # squad_utils labels a window whose answer is out of span
            out["is_impossible"] = (out["start_positions"] == 0).float()
        return out


def _max_context(windows: list[tuple[int, int]]) -> list[np.ndarray]:
    """Per window (first, last), a flag per context token: is this the window where the token has the most context,
    min(tokens left, tokens right) + 0.01 · window length (run_squad.py's rule, first window wins ties)?"""
    best_score: dict[int, float] = {}
    best_window: dict[int, int] = {}
    for w, (first, last) in enumerate(windows):
        for k in range(first, last):
            score = min(k - first, last - 1 - k) + 0.01 * (last - first)
            if k not in best_score or score > best_score[k]:
                best_score[k], best_window[k] = score, w
    return [
        np.array([best_window[k] == w for k in range(first, last)], dtype=bool)
        for w, (first, last) in enumerate(windows)
    ]


def _token_span(example: QAExample, offsets: list[tuple[int, int]]) -> tuple[int, int] | None:
    """Context token indices (first, last) that cover the first answer's characters."""
    if example.is_impossible or not example.answers:
        return None
    text, char_start = example.answers[0]
    char_end = char_start + len(text)
    covered = [k for k, (s, e) in enumerate(offsets) if s < char_end and e > char_start]
    return (covered[0], covered[-1]) if covered else None


def best_answers(
    forward, features: QAFeatures, n_best: int = 20, max_answer_length: int = 30, **batching
) -> dict[str, tuple[str, float, int]]:
    """Per example id: (best answer text, its score minus the null score, its character start in the context).
    Text "" with score < 0 means no answer. ``forward`` is a model or an infer backend; ``batching`` goes to
    engines.run_rows (max_tokens, max_batch)."""
    from albert.engines import run_rows

    out = run_rows(forward, features.ids, features.types, features.pad, **batching)
    best: dict[int, tuple[float, str, int]] = {}
    null: dict[int, float] = {}
    # The null score: the answerability classifier's logit where the model has one (the official v2 model), else
    # start + end at [CLS]; an example's null score is its most answerable window's.
    classifier = out.get("answerability_logits")
    for r in range(len(features)):
        starts, ends = out["start_logits"][r], out["end_logits"][r]
        n = features.example_of[r]
        first, last, shift = features.spans[r]
        row_null = float(np.asarray(classifier[r]).reshape(-1)[0]) if classifier is not None else starts[0] + ends[0]
        null[n] = min(null.get(n, np.inf), row_null)
        lo, hi = first + shift, last + shift  # input positions of this window's context tokens: [lo, hi)
        central = features.max_context[r]
        top_s = [i for i in np.argsort(starts)[::-1][:n_best] if lo <= i < hi and central[i - lo]]
        top_e = [i for i in np.argsort(ends)[::-1][:n_best] if lo <= i < hi]
        for i in top_s:
            for j in top_e:
                if i <= j < i + max_answer_length:
                    score = starts[i] + ends[j]
                    if n not in best or score > best[n][0]:
                        offsets = features.offsets[n]
                        char_start, char_end = offsets[i - shift][0], offsets[j - shift][1]
                        if char_end > char_start:  # not zero-width pieces alone (a lone "▁"): no text to answer
                            best[n] = (score, features.examples[n].context[char_start:char_end], char_start)
    results = {}
    for n, example in enumerate(features.examples):
        score, text, char_start = best.get(n, (-np.inf, "", -1))
        if classifier is not None:  # the classifier alone decides answer / no answer: larger is more answerable
            results[example.id] = (text, float(-null.get(n, 0.0)), char_start)
        else:
            results[example.id] = (text, float(score - null.get(n, 0.0)), char_start)
    return results


def normalize_answer(s: str) -> str:
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1_score(prediction: str, truth: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not pred or not gold:  # v2.0: no-answer is right only against no-answer
        return float(pred == gold)
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def squad_metrics(examples: Sequence[QAExample], predictions: dict[str, str]) -> dict[str, float]:
    em = f1 = 0.0
    for e in examples:
        truths = [t for t, _ in e.answers] or [""]
        em += max(exact_match(predictions[e.id], t) for t in truths)
        f1 += max(f1_score(predictions[e.id], t) for t in truths)
    return {"exact_match": 100 * em / len(examples), "f1": 100 * f1 / len(examples)}


def evaluate(examples: Sequence[QAExample], scored: dict[str, tuple[str, float, int]]) -> dict[str, float]:
    """EM/F1 answering every question; with unanswerable questions, also the best EM/F1 over null thresholds and the
    thresholds (answer when score - null score >= threshold), swept as the official v2.0 script does. A threshold
    lies midway between the last score answered and the next one left out (the official script takes the score
    itself; midway, a float's last bit of difference between two batchings cannot flip that question), and is
    always finite: where answering nothing is best, it lies above every score."""
    result = squad_metrics(examples, {k: v[0] for k, v in scored.items()})
    if all(e.answers for e in examples):
        return result
    order = sorted(examples, key=lambda e: -scored[e.id][1])
    scores = [scored[e.id][1] for e in order]
    finite = [s for s in scores if np.isfinite(s)] or [0.0]
    for name, fn in (("f1", f1_score), ("exact_match", exact_match)):
        current = float(sum(not e.answers for e in examples))  # everything left unanswered
        best, answered = current, 0
        for k, e in enumerate(order):
            text = scored[e.id][0]
            truths = [t for t, _ in e.answers] or [""]
            current += max(fn(text, t) for t in truths) - max(fn("", t) for t in truths)  # answer this one too
            if current > best:
                best, answered = current, k + 1
        above = scores[answered - 1] if answered else max(finite) + 1.0
        below = scores[answered] if answered < len(scores) and np.isfinite(scores[answered]) else above - 1.0
        result[f"best_{name}"] = 100 * best / len(examples)
        result[f"{name}_threshold"] = float((above + below) / 2)
    return result


class Question(TypedDict):
    question: str
    context: str


class Answer(TypedDict):
    answer: str  # "" where the model gives no answer (score below the tuned null threshold, or no span at all)
    score: float | None  # best span score minus the no-answer score (larger: more confident); None: no span at all
    start: int  # character offsets in the context (-1, -1 without an answer)
    end: int


@dataclass(frozen=True)
class Windows:
    """How questions are windowed and answers decoded: the settings a model is fine-tuned and evaluated with
    (FinetuneConfig's fields of the same names; SQuAD's defaults for a model fine-tuned elsewhere) and the tuned
    null threshold (None: always answer, as for SQuAD 1.1)."""

    max_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64
    max_answer_length: int = 30
    null_threshold: float | None = None


def answer_questions(forward, tokenizer, questions, contexts, windows: Windows = Windows(), **batching) -> list[Answer]:
    """The best answer span in each context, or no answer ({"answer": "", "start": -1, "end": -1}) where its score
    is below ``windows.null_threshold``; the score is None where no window holds a valid span at all."""
    examples = [QAExample(str(n), q, c, [], False) for n, (q, c) in enumerate(zip(questions, contexts, strict=True))]
    features = QAFeatures(tokenizer, examples, windows.max_length, windows.doc_stride, windows.max_query_length)
    scored = best_answers(forward, features, max_answer_length=windows.max_answer_length, **batching)
    out: list[Answer] = []
    for n in range(len(examples)):
        text, score, start = scored[str(n)]
        threshold = windows.null_threshold
        if not np.isfinite(score) or (threshold is not None and score < threshold):
            text, start = "", -1
        shown = round(float(score), 6) if np.isfinite(score) else None
        out.append({"answer": text, "score": shown, "start": start, "end": start + len(text) if text else -1})
    return out


class ExtractiveQA(Task):
    """SQuAD 1.1/2.0: an answer span in the context, or none; windows over long contexts."""

    name, metric, pipeline_tag = "qa", "f1", "question-answering"
    architectures = ("AlbertForQuestionAnswering", "AlbertForQuestionAnsweringWithAnswerability")
    item, result, route, summary, response = Question, Answer, "qa", "Answer spans in contexts", "answers"

    def predict(self, predictor, items: list[Question]) -> list[Answer]:
        questions, contexts = [i["question"] for i in items], [i["context"] for i in items]
        windows = self.windows(predictor)
        return answer_questions(
            predictor.forward, predictor.tokenizer, questions, contexts, windows, **predictor.batching
        )

    @staticmethod
    def windows(predictor) -> Windows:
        """The windows the model was fine-tuned and evaluated with (finetune_config.json), its tuned threshold
        (decoding.json); SQuAD's 384-token windows for a model fine-tuned elsewhere, where its positions allow."""
        trained, p = predictor.trained, predictor
        length = p.max_length if trained else min(max(p.max_length, 384), p.config.max_position_embeddings)
        defaults = Windows()
        return Windows(
            max_length=length,
            doc_stride=int(trained.get("doc_stride") or defaults.doc_stride),
            max_query_length=int(trained.get("max_query_length") or defaults.max_query_length),
            max_answer_length=int(trained.get("max_answer_length") or defaults.max_answer_length),
            null_threshold=p.decoding.get("null_threshold"),
        )

    def untrained_settings(self, config: dict) -> dict:
        """SQuAD's 384-token windows where the positions allow (as ``windows`` predicts), and the head it has."""
        with_classifier = (config.get("architectures") or [""])[0] == "AlbertForQuestionAnsweringWithAnswerability"
        return {
            "max_seq_length": min(384, int(config.get("max_position_embeddings", 512))),
            "answerability": with_classifier,
        }

    def selection_metric(self, scores: dict[str, float]) -> str:
        return "best_f1" if "best_f1" in scores else "f1"  # SQuAD 2.0: F1 at the tuned threshold, as predicted

    def decoding(self, scores: dict[str, float]) -> dict[str, float] | None:
        return {"null_threshold": scores["f1_threshold"]} if "f1_threshold" in scores else None

    def head_class(self, cfg) -> type:
        from albert import heads

        return (
            heads.AlbertForQuestionAnsweringWithAnswerability if cfg.answerability else heads.AlbertForQuestionAnswering
        )

    def read(self, path, cfg) -> list[QAExample]:
        return read_squad(path)

    def labels(self, train, dev, cfg, given=None) -> list[str]:
        return ["start", "end"]

    def encode(self, tokenizer, examples, labels, cfg) -> QAFeatures:
        return QAFeatures(
            tokenizer, examples, cfg.max_seq_length, cfg.doc_stride, cfg.max_query_length, cfg.answerability
        )

    def evaluate(self, model, data, labels, cfg, device) -> dict[str, float]:
        scored = best_answers(model, data, max_answer_length=cfg.max_answer_length, max_batch=cfg.batch_size)
        return evaluate(data.examples, scored)
