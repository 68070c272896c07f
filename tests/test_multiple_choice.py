"""Multiple choice: RACE and JSONL reading, encoding, training on a task derived from Brown text."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import cli_evaluate, cli_predict, write_small_model

import albert
from albert.finetune import FinetuneConfig, train
from albert.tasks import multiple_choice as mc
from albert.tasks.classification import TaskDataError

NUMBER = re.compile(r"(?<![\w.,$])\d+(?![\w.,]\d)(?!\w)")


@pytest.fixture(scope="module")
def numbers(realdata, tmp_path_factory):
    """Derived from real text (no MC data set is available here): a passage of three consecutive Brown sentences,
    the question "Which sentence has a number?" and four Brown sentences as options, exactly one with a number.
    A 2-layer model learns the cue from scratch in seconds, so the test checks that training and scoring rank the
    options of each question (labels, option axis, softmax), not comprehension. (The harder "what comes next?"
    needs a pretrained encoder: from random initialisation it stays at chance.)"""
    root = tmp_path_factory.mktemp("mc")
    rng = np.random.default_rng(0)
    docs = [d["sentences"] for d in realdata.brown_documents()]
    sentences = [s for d in docs for s in d if 5 <= len(s.split()) <= 30]
    numbered = [s for s in sentences if NUMBER.search(s)]
    plain = [s for s in sentences if not NUMBER.search(s)]
    records = []
    for _ in range(1100):
        answer = int(rng.integers(4))
        options = [plain[int(rng.integers(len(plain)))] for _ in range(3)]
        options.insert(answer, numbered[int(rng.integers(len(numbered)))])
        doc = docs[int(rng.integers(len(docs)))]
        first = int(rng.integers(len(doc) - 3))
        records.append(
            {
                "passage": " ".join(doc[first : first + 3]),
                "question": "Which sentence has a number?",
                "options": options,
                "answer": "ABCD"[answer],
            }
        )
    for name, part in (("train", records[:1000]), ("dev", records[1000:])):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    return root


def majority_accuracy(path) -> float:
    """The trivial baseline: always choosing the option position that is most often right (at least 1/C)."""
    answers = [q.answer for q in mc.read_questions(path)]
    return max(answers.count(a) for a in set(answers)) / len(answers)


def test_race_json_and_blanks(brown_tokenizer, tmp_path):
    race = {
        "article": "The jury met on Friday.",
        "questions": ["The jury met on _ .", "Who met?"],
        "options": [["Friday", "Monday"], ["the jury", "the mayor"]],
        "answers": ["A", "A"],
        "id": "x.txt",
    }
    (tmp_path / "race").mkdir()
    (tmp_path / "race" / "1.txt").write_text(json.dumps(race))
    questions = mc.read_questions(tmp_path / "race")
    assert [q.answer for q in questions] == [0, 0] and questions[1].options == ["the jury", "the mayor"]
    data = mc.EncodedChoices(brown_tokenizer, questions, max_length=32)
    first = brown_tokenizer.decode(data.ids[0][0])
    assert first == "[CLS] the jury met on friday.[SEP] the jury met on friday .[SEP]"  # the blank is filled
    batch = data.batch([0, 1])
    assert batch["input_ids"].shape[:2] == (2, 2) and batch["labels"].tolist() == [0, 0]
    # the passage is truncated first: question and option survive
    tight = mc.EncodedChoices(brown_tokenizer, questions, max_length=12)
    assert tight.truncated and all(len(row) <= 12 for q in tight.ids for row in q)
    assert brown_tokenizer.decode(tight.ids[1][1]).endswith("[SEP] who met? the mayor[SEP]")


def test_bad_multiple_choice_files(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"passage": "p", "question": "q", "options": ["x", "y"], "answer": "E"}\n')
    with pytest.raises(TaskDataError, match=r"a\.jsonl:1: answer 'E' is outside the 2 options"):
        mc.read_questions(tmp_path / "a.jsonl")
    (tmp_path / "b.jsonl").write_text(
        '{"passage": "p", "options": ["x", "y"], "answer": 0}\n'
        '{"passage": "p", "options": ["x", "y", "z"], "answer": 1}\n'
    )
    with pytest.raises(TaskDataError, match=r"same number of options, found \[2, 3\]"):
        mc.read_questions(tmp_path / "b.jsonl")


def test_multiple_choice_trains(numbers, brown_tokenizer, tmp_path):
    brown_tokenizer.save_pretrained(tmp_path / "tok")
    write_small_model(tmp_path / "model.json", vocab_size=brown_tokenizer.vocab_size, max_positions=256)
    result = train(
        FinetuneConfig(
            task="multiple_choice",
            train=str(numbers / "train.jsonl"),
            eval=str(numbers / "dev.jsonl"),
            init="random:" + str(tmp_path / "model.json"),
            tokenizer=str(tmp_path / "tok"),
            out=str(tmp_path / "out"),
            epochs=4,
            batch_size=8,
            learning_rate=1e-3,
            max_seq_length=96,
            progress=False,
        )
    )
    rows = [r for r in map(json.loads, (tmp_path / "out" / "log.jsonl").read_text().splitlines()) if "step" in r]
    assert np.mean([r["loss"] for r in rows[-10:]]) < np.mean([r["loss"] for r in rows[:10]])
    assert result["accuracy"] > majority_accuracy(numbers / "dev.jsonl") + 0.4  # ~0.97 against ~0.3
    # `albert evaluate` scores the saved (best) model exactly as training's evaluation did
    assert cli_evaluate(tmp_path / "out", numbers / "dev.jsonl")["accuracy"] == pytest.approx(result["accuracy"])
    model = albert.AlbertForMultipleChoice.from_pretrained(tmp_path / "out")
    assert model.load_report.initialised == []
    # `albert predict` reads the same JSONL (passage, question, options) and picks what evaluation scored
    rows = cli_predict(tmp_path / "out", numbers / "dev.jsonl", tmp_path / "pred.jsonl")
    answers = [q.answer for q in mc.read_questions(numbers / "dev.jsonl")]
    assert np.mean([r["prediction"]["choice"] == a for r, a in zip(rows, answers, strict=True)]) == pytest.approx(
        result["accuracy"], abs=0.02
    )
    predicted = [r["prediction"] for r in rows]
    assert all(
        p["answer"] == r["options"][p["choice"]] and len(p["probabilities"]) == 4
        for p, r in zip(predicted, rows, strict=True)
    )
    # the user's own fields are kept as given: the gold answer stays beside the predicted one
    records = [json.loads(line) for line in (numbers / "dev.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in r.items() if k != "prediction"} for r in rows] == records


def test_no_row_is_longer_than_max_seq_length(brown_tokenizer, realdata):
    """Whatever the lengths of passage, question and options and however small --max-seq-length is, every option row
    fits it (a model with fewer positions failed in the forward pass); question + option keep their end, as
    race_utils keeps them; the truncation count counts questions, not option rows."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    words = " ".join(realdata.brown_lines()[:300]).split()

    def text(n: int, at: int) -> str:
        return " ".join(words[at : at + n])

    @settings(max_examples=60, deadline=None)
    @given(
        max_length=st.integers(4, 80),
        passage=st.integers(0, 120),
        question=st.integers(0, 60),
        options=st.lists(st.integers(1, 50), min_size=2, max_size=5),
        at=st.integers(0, 1000),
    )
    def check(max_length, passage, question, options, at):
        q = mc.Question(
            text(passage, at), text(question, at + 7), [text(n, at + 13 * k) for k, n in enumerate(options)], 0, "x"
        )
        encoded = mc.EncodedChoices(brown_tokenizer, [q, q], max_length)
        rows = [row for question_rows in encoded.ids for row in question_rows]
        assert all(len(row) <= max_length for row in rows)
        assert all(len(r) == len(t) for r, t in zip(rows, [t for ts in encoded.types for t in ts], strict=True))
        assert encoded.truncated in (0, 2)  # two questions, each counted once however many of its rows were cut
        full, _ = brown_tokenizer.encode_batch([f"{q.question} {o}".strip() for o in q.options])
        for row, pieces in zip(encoded.ids[0], full, strict=True):
            second = row[row.index(brown_tokenizer.sep_token_id) + 1 : -1]
            assert second == pieces[len(pieces) - len(second) :]  # the end of question + option survives

    check()
