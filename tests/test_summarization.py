"""Extractive summarisation: sentence splitting, CNN/DM stories, the greedy ROUGE oracle, training, lead-3."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import cli_evaluate, cli_predict, write_small_model

import albert
from albert.finetune import FinetuneConfig, train
from albert.tasks import summarization as summ
from albert.tasks.classification import TaskDataError


def test_sentence_splitting_english_and_chinese():
    assert summ.split_sentences('He came. She left! Why? "Fine." Then') == [
        "He came.",
        "She left!",
        "Why?",
        '"Fine."',
        "Then",
    ]
    assert summ.split_sentences("今天天气很好。我们去公园！你来吗？") == ["今天天气很好。", "我们去公园！", "你来吗？"]


def test_story_files_and_the_oracle(tmp_path):
    story = (
        "The mayor opened the bridge on Monday. Crowds cheered.\n\nTraffic will start next week.\n\n"
        "@highlight\n\nMayor opened the bridge on Monday\n\n@highlight\n\nTraffic will start next week\n"
    )
    (tmp_path / "a.story").write_text(story)
    docs = summ.read_documents(tmp_path)
    assert docs[0].sentences == [
        "The mayor opened the bridge on Monday.",
        "Crowds cheered.",
        "Traffic will start next week.",
    ]
    assert docs[0].summary == ["Mayor opened the bridge on Monday", "Traffic will start next week"]
    assert summ.oracle(docs[0].sentences, docs[0].summary) == [0, 2]
    assert summ.oracle(["我们去公园。", "今天下雨了。"], ["今天下雨"]) == [1]  # characters for Chinese
    (tmp_path / "bad.jsonl").write_text('{"summary": "x"}\n')
    with pytest.raises(TaskDataError, match=r"bad\.jsonl:1: expected a JSON object"):
        summ.read_documents(tmp_path / "bad.jsonl")


@pytest.fixture(scope="module")
def leads(realdata, tmp_path_factory):
    """Derived from real news (no summarisation set is available here): ten People's Daily paragraphs form a
    document whose reference summary is its first paragraph; the sentences are given in a shuffled order, so the
    model has to recognise lead sentences by their content, and lead-3 of the shuffled text is the baseline."""
    root = tmp_path_factory.mktemp("summ")
    rng = np.random.default_rng(0)
    paragraphs = realdata.peoples_daily_paragraphs()
    records = []
    for start in range(0, 3000, 10):
        summary = summ.split_sentences(paragraphs[start])
        body = [s for p in paragraphs[start : start + 10] for s in summ.split_sentences(p)][:14]
        order = rng.permutation(len(body))
        records.append({"sentences": [body[i] for i in order], "summary": summary})
    (root / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records[:250]))
    (root / "dev.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records[250:]))
    return root


def test_summarization_trains_and_beats_shuffled_lead(leads, realdata, tmp_path):
    tok = albert.AlbertTokenizer.from_pretrained(realdata.chinese_vocab())
    tok.save_pretrained(tmp_path / "tok")
    write_small_model(tmp_path / "model.json", vocab_size=tok.vocab_size, max_positions=512)
    result = train(
        FinetuneConfig(
            task="summarization",
            train=str(leads / "train.jsonl"),
            eval=str(leads / "dev.jsonl"),
            init="random:" + str(tmp_path / "model.json"),
            tokenizer=str(tmp_path / "tok"),
            out=str(tmp_path / "out"),
            epochs=4,
            batch_size=8,
            learning_rate=1e-3,
            max_seq_length=512,
            progress=False,
        )
    )
    rows = [r for r in map(json.loads, (tmp_path / "out" / "log.jsonl").read_text().splitlines()) if "step" in r]
    assert np.mean([r["loss"] for r in rows[-5:]]) < np.mean([r["loss"] for r in rows[:5]])
    assert {"rouge1", "rouge2", "rougeL", "lead_rouge1", "lead_rouge2"} <= set(result)
    # lead-3 of shuffled sentences is a chance-level choice (~24 ROUGE-1, ~13 ROUGE-2); the model reaches ~34 and ~26
    assert result["rouge1"] > result["lead_rouge1"] + 3 and result["rouge2"] > result["lead_rouge2"] + 4
    again = cli_evaluate(tmp_path / "out", leads / "dev.jsonl")
    assert again["rouge2"] == pytest.approx(result["rouge2"], abs=1e-4)
    model = albert.AlbertForExtractiveSummarization.from_pretrained(tmp_path / "out")
    assert model.load_report.initialised == [] and model.load_report.unused == []
    # `albert predict` summarises plain documents (one "text" per record) as well as evaluation did
    docs = summ.read_documents(leads / "dev.jsonl")
    (tmp_path / "docs.jsonl").write_text(
        "".join(json.dumps({"text": "".join(d.sentences)}, ensure_ascii=False) + "\n" for d in docs)
    )
    rows = cli_predict(tmp_path / "out", tmp_path / "docs.jsonl", tmp_path / "pred.jsonl")
    resplit = [summ.Document(summ.split_sentences(r["text"]), d.summary, "") for r, d in zip(rows, docs, strict=True)]
    predictions = [r["prediction"] for r in rows]
    assert all(
        p["summary"] == " ".join(d.sentences[i] for i in p["sentences"])
        for p, d in zip(predictions, resplit, strict=True)
    )
    predicted = summ.rouge(resplit, [p["sentences"] for p in predictions])
    assert predicted["rouge2"] > result["lead_rouge2"] + 4
