"""Multiple choice: RACE and JSONL reading, encoding, training on a derived continuation task from Brown."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import write_small_model

import albert
from albert.finetune import FinetuneConfig, train
from albert.tasks import multiple_choice as mc
from albert.tasks.classification import TaskDataError


@pytest.fixture(scope="module")
def continuation(realdata, tmp_path_factory):
    """Derived from real text (no MC data set is available here): a passage of three consecutive Brown sentences,
    and four options: the sentence that really follows, and three sentences from other documents."""
    root = tmp_path_factory.mktemp("mc")
    rng = np.random.default_rng(0)
    docs = [d["sentences"] for d in realdata.brown_documents()[:150]]
    records = []
    for k, sentences in enumerate(docs):
        for start in range(0, min(len(sentences) - 4, 12), 4):
            others = [
                docs[j][int(rng.integers(len(docs[j])))] for j in rng.choice([i for i in range(len(docs)) if i != k], 3)
            ]
            answer = int(rng.integers(4))
            options = others[:answer] + [sentences[start + 3]] + others[answer:]
            records.append(
                {
                    "passage": " ".join(sentences[start : start + 3]),
                    "question": "What comes next?",
                    "options": options,
                    "answer": "ABCD"[answer],
                }
            )
    rng.shuffle(records)
    for name, part in (("train", records[:320]), ("dev", records[320:400])):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    return root


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
    assert first == "[CLS] the jury met on friday. [SEP] the jury met on friday . [SEP]"  # the blank is filled
    batch = data.batch([0, 1])
    assert batch["input_ids"].shape[:2] == (2, 2) and batch["labels"].tolist() == [0, 0]
    # the passage is truncated first: question and option survive
    tight = mc.EncodedChoices(brown_tokenizer, questions, max_length=12)
    assert tight.truncated and all(len(row) <= 12 for q in tight.ids for row in q)
    assert brown_tokenizer.decode(tight.ids[1][1]).endswith("[SEP] who met? the mayor [SEP]")


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


def test_multiple_choice_trains(continuation, brown_tokenizer, tmp_path):
    brown_tokenizer.save_pretrained(tmp_path / "tok")
    write_small_model(tmp_path / "model.json", vocab_size=brown_tokenizer.vocab_size, max_positions=256)
    result = train(
        FinetuneConfig(
            task="multiple_choice",
            train=str(continuation / "train.jsonl"),
            eval=str(continuation / "dev.jsonl"),
            init="random:" + str(tmp_path / "model.json"),
            tokenizer=str(tmp_path / "tok"),
            out=str(tmp_path / "out"),
            epochs=3,
            batch_size=8,
            learning_rate=1e-3,
            max_seq_length=160,
            progress=False,
        )
    )
    rows = [r for r in map(json.loads, (tmp_path / "out" / "log.jsonl").read_text().splitlines()) if "step" in r]
    assert np.mean([r["loss"] for r in rows[-10:]]) < np.mean([r["loss"] for r in rows[:10]])
    assert 0.0 <= result["accuracy"] <= 1.0 and result["best_step"] > 0
    model = albert.AlbertForMultipleChoice.from_pretrained(tmp_path / "out")
    assert model.load_report.initialised == []
