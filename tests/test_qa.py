"""Extractive QA: SQuAD reading, windows and labels, decoding, the official EM/F1, training on derived cloze QA."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import write_small_model

from albert.finetune import FinetuneConfig, train
from albert.tasks import qa
from albert.tasks.classification import TaskDataError


def _squad(records) -> dict:
    return {"version": "v2.0", "data": [{"title": "t", "paragraphs": records}]}


@pytest.fixture(scope="module")
def cloze(realdata, tmp_path_factory):
    """No QA data set is available here, so questions are derived from real Brown paragraphs: a sentence of the
    paragraph with one capitalised word or number blanked out is the question, that word in the paragraph the
    answer. v2.0-style unanswerable questions blank a sentence from another document."""
    root = tmp_path_factory.mktemp("qa")
    rng = np.random.default_rng(0)
    docs = [d["sentences"] for d in realdata.brown_documents()[:200]]
    paragraphs, n = [], 0
    for k, sentences in enumerate(docs):
        context = " ".join(sentences[:6])
        qas = []
        for sentence in sentences[:6]:
            # whole words only (after a space, before a space or punctuation), so answers align with tokens
            words = list(re.finditer(r"(?<=\s)([A-Z][a-z]+|\d+)(?=[\s;:!?]|[.,](?!\d))", sentence))
            if not words:
                continue
            m = words[int(rng.integers(len(words)))]
            question = sentence[: m.start()] + "____" + sentence[m.end() :]
            start = context.index(sentence) + m.start()
            qas.append(
                {
                    "id": f"q{n}",
                    "question": question,
                    "answers": [{"text": m.group(), "answer_start": start}],
                    "is_impossible": False,
                }
            )
            n += 1
        other = docs[(k + 7) % len(docs)][0]
        qas.append({"id": f"q{n}", "question": other, "answers": [], "is_impossible": True})
        n += 1
        paragraphs.append({"context": context, "qas": qas})
    (root / "train.json").write_text(json.dumps(_squad(paragraphs[:160])))
    (root / "dev.json").write_text(json.dumps(_squad(paragraphs[160:])))
    return root


def test_windows_cover_the_answer_and_decode_back_to_it(brown_tokenizer, cloze):
    examples = [e for e in qa.read_squad(cloze / "train.json") if e.answers][:200]
    features = qa.QAFeatures(brown_tokenizer, examples, max_length=64, doc_stride=24, max_query_length=24)
    assert len(features) > len(examples)  # long contexts need several windows
    found = set()
    for r in range(len(features)):
        start, end = features.starts[r], features.ends[r]
        if start == 0:
            continue
        n = features.example_of[r]
        shift = features.spans[r][2]
        offsets = features.offsets[n]
        text = examples[n].context[offsets[start - shift][0] : offsets[end - shift][1]]
        assert text == examples[n].answers[0][0]  # the labelled tokens are exactly the answer
        found.add(n)
    assert len(found) == len(examples)  # every answer lies inside at least one window


def test_official_em_and_f1():
    assert qa.exact_match("the Cat.", "cat") == 1.0
    assert qa.f1_score("a big red dog", "the red dog barked") == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))
    assert qa.f1_score("", "") == 1.0 and qa.f1_score("x", "") == 0.0
    examples = [
        qa.QAExample("1", "q", "ctx", [("Denver Broncos", 0), ("Broncos", 7)]),
        qa.QAExample("2", "q", "ctx", [], True),
    ]
    assert qa.squad_metrics(examples, {"1": "Broncos", "2": ""}) == {"exact_match": 100.0, "f1": 100.0}
    scored = {"1": ("Broncos", 2.0), "2": ("something", -1.0)}
    result = qa.evaluate(examples, scored)
    assert result["f1"] == 50.0 and result["best_f1"] == 100.0 and result["f1_threshold"] == 2.0


def test_bad_squad_files(tmp_path):
    (tmp_path / "a.json").write_text('{"version": "1.1"}')
    with pytest.raises(TaskDataError, match=r"a\.json: not SQuAD JSON"):
        qa.read_squad(tmp_path / "a.json")
    bad = _squad(
        [{"context": "abc def", "qas": [{"id": "x", "question": "q", "answers": [{"text": "def", "answer_start": 1}]}]}]
    )
    (tmp_path / "b.json").write_text(json.dumps(bad))
    with pytest.raises(TaskDataError, match=r"question x: answer 'def' is not at 1 in its context"):
        qa.read_squad(tmp_path / "b.json")


def test_qa_trains_and_decodes(brown_tokenizer, cloze, tmp_path):
    brown_tokenizer.save_pretrained(tmp_path / "tok")
    write_small_model(tmp_path / "model.json", vocab_size=brown_tokenizer.vocab_size, max_positions=256)
    result = train(
        FinetuneConfig(
            task="qa",
            train=str(cloze / "train.json"),
            eval=str(cloze / "dev.json"),
            init="random:" + str(tmp_path / "model.json"),
            tokenizer=str(tmp_path / "tok"),
            out=str(tmp_path / "out"),
            epochs=4,
            batch_size=16,
            learning_rate=2e-3,
            max_seq_length=192,
            doc_stride=64,
            progress=False,
        )
    )
    rows = [r for r in map(json.loads, (tmp_path / "out" / "log.jsonl").read_text().splitlines()) if "step" in r]
    assert np.mean([r["loss"] for r in rows[-10:]]) < np.mean([r["loss"] for r in rows[:10]]) - 0.5
    assert {"f1", "exact_match", "best_f1", "f1_threshold"} <= set(result)
    assert result["best_f1"] >= result["f1"] and result["best_f1"] > 20  # the unanswerable fifth alone gives ~17


def test_answerability_classifier(brown_tokenizer, cloze, tmp_path):
    """The official SQuAD 2.0 model's answerability head trains, decides no-answer, and saves/loads."""
    import albert

    brown_tokenizer.save_pretrained(tmp_path / "tok")
    write_small_model(tmp_path / "model.json", vocab_size=brown_tokenizer.vocab_size, max_positions=256)
    result = train(
        FinetuneConfig(
            task="qa",
            answerability=True,
            train=str(cloze / "train.json"),
            eval=str(cloze / "dev.json"),
            init="random:" + str(tmp_path / "model.json"),
            tokenizer=str(tmp_path / "tok"),
            out=str(tmp_path / "out"),
            epochs=2,
            batch_size=16,
            learning_rate=2e-3,
            max_seq_length=192,
            doc_stride=64,
            progress=False,
        )
    )
    assert {"best_f1", "f1_threshold"} <= set(result) and result["best_f1"] >= result["f1"]
    model = albert.AlbertForQuestionAnsweringWithAnswerability.from_pretrained(tmp_path / "out")
    assert model.load_report.initialised == []
    transformers = pytest.importorskip("transformers")
    span_only = transformers.AlbertForQuestionAnswering.from_pretrained(tmp_path / "out")  # encoder + qa_outputs
    assert span_only.qa_outputs.weight.shape == (2, 64)
