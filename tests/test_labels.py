"""Labels are checked where they are read, and long waits show progress.

A regression or similarity target of nan, inf, -inf or nothing once reached training and stopped it at step 1 with
"lower --learning-rate", naming no file; a label `albert evaluate` had never seen was reported against "the training
labels:3", a file that does not exist. Each case here runs `albert` in this process on a folder of real files and
must exit with status 2, print no traceback, end stderr with a line naming the user's file and line, and change no
file. Then: the learning-rate range test and ``TextClassifier.fit`` show a progress bar, and only when asked.
"""

from __future__ import annotations

import json
import math
import types
from pathlib import Path

import pytest
import torch
from conftest import folder_hashes, tiny_config, write_tiny_model

import albert
from albert import cli, lrfind

GOOD = [f"review number {i} of the shop,{i % 5}.5" for i in range(12)]
STS = [f"a man plays {i}\ta man is playing {i}\t{i % 5}.0" for i in range(12)]


@pytest.fixture(scope="module")
def work(models, brown_tokenizer, tmp_path_factory):
    """A tokenizer, a random-init config, a classifier (labels neg/pos/neutral), a regression and a similarity model,
    and data files, each bad one with its bad value on line 3."""
    root = tmp_path_factory.mktemp("labels")
    brown_tokenizer.save_pretrained(root / "tok")
    (root / "clf").mkdir()
    for f in Path(models["clf"]).iterdir():
        (root / "clf" / f.name).write_bytes(f.read_bytes())
    reg = tiny_config(vocab_size=brown_tokenizer.vocab_size, max_position_embeddings=128, num_labels=1)
    reg.problem_type = "regression"
    for name in ("reg", "sim"):
        albert.AlbertForSequenceClassification(reg).save_pretrained(root / name)
        brown_tokenizer.save_pretrained(root / name)
    (root / "sim" / "finetune_config.json").write_text(json.dumps({"task": "similarity"}))
    write_tiny_model(root / "model.json", brown_tokenizer.vocab_size)
    (root / "reg.csv").write_text("\n".join(["text,label", *GOOD]) + "\n")
    (root / "sts.tsv").write_text("\n".join(["sentence1\tsentence2\tscore", *STS]) + "\n")
    for name, value in BAD_VALUES.items():
        rows = [*GOOD[:1], f"a review with a bad score,{value}", *GOOD[1:]]
        (root / f"reg-{name}.csv").write_text("\n".join(["text,label", *rows]) + "\n")
        pairs = [*STS[:1], f"one sentence\tanother one\t{value}", *STS[1:]]
        (root / f"sts-{name}.tsv").write_text("\n".join(["sentence1\tsentence2\tscore", *pairs]) + "\n")
    lines = [json.dumps({"text": "fine", "label": 1.5}), '{"text": "not a number", "label": NaN}']
    (root / "reg-nan.jsonl").write_text("\n".join(lines) + "\n")  # JSON's NaN literal, which json.loads accepts
    (root / "unseen.csv").write_text("text,label\nfine,pos\nso so,great\n")
    return root


BAD_VALUES = {"nan": "nan", "inf": "inf", "-inf": "-inf", "empty": ""}
FOUND = {
    "nan": "must be a finite number, found 'nan'",
    "inf": "found 'inf'",
    "-inf": "found '-inf'",
    "empty": "is empty",
}
FINETUNE = ["finetune", "--init", "random:model.json", "--tokenizer", "tok", "--out", "new", "--no-progress"]
REG = [*FINETUNE, "--task", "regression"]
SIM = [*FINETUNE, "--task", "similarity"]

# each command with the bad file (its last argument) in each role it reads one; "{}" is the bad value's name
COMMANDS = {
    "finetune-train": [*REG, "--train", "reg-{}.csv"],
    "finetune-eval": [*REG, "--train", "reg.csv", "--eval", "reg-{}.csv"],
    "similarity-train": [*SIM, "--train", "sts-{}.tsv"],
    "similarity-eval": [*SIM, "--train", "sts.tsv", "--eval", "sts-{}.tsv"],
    "evaluate": ["evaluate", "--model", "reg", "--data", "reg-{}.csv"],
    "evaluate-similarity": ["evaluate", "--model", "sim", "--data", "sts-{}.tsv"],
}
# (case id, argv, the file:line the last stderr line must name, what it must say of it)
CASES = [
    *[
        (f"{command}-{name}", [a.format(name) for a in argv], argv[-1].format(name) + ":3", found)
        for command, argv in COMMANDS.items()
        for name, found in FOUND.items()
    ],
    ("finetune-json-NaN", [*REG, "--train", "reg-nan.jsonl"], "reg-nan.jsonl:2", "must be a finite number, found nan"),
    ("evaluate-unseen", ["evaluate", "--model", "clf", "--data", "unseen.csv"], "unseen.csv:3", "label 'great' is not"),
]


@pytest.mark.parametrize("argv, where, says", [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_a_bad_label_names_the_users_file_and_line(work, monkeypatch, capsys, argv, where, says):
    monkeypatch.chdir(work)
    before = folder_hashes(work)
    status = cli.main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("albert: error: ") and f"{where}: " in last and says in last, err  # (path made absolute)
    assert folder_hashes(work) == before  # nothing changed, nothing left behind (no "new" folder)


def test_fit_refuses_a_non_finite_target_before_training(work):
    from albert.estimators import TextClassifier

    clf = TextClassifier.from_pretrained(work / "reg")
    with pytest.raises(albert.AlbertError, match=r"labels\[1\] must be a finite number, found nan"):
        clf.fit(["a text", "another"], [1.0, math.nan], progress=False)
    with pytest.raises(albert.AlbertError, match=r"eval labels\[0\] must be a finite number, found inf"):
        clf.fit(["a text", "another"], [1.0, 2.0], eval=(["x"], [math.inf]), progress=False)


def _range_test(progress: bool) -> lrfind.RangeTest:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(16, 4), torch.randn(16, 1)

    def run_step(k: int) -> float:
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss.item()

    return lrfind.range_test(model, torch.optim.SGD(model.parameters(), lr=1.0), run_step, 12, progress=progress)


def test_the_range_test_shows_steps_and_loss_only_when_asked(capsys):
    _range_test(progress=True)
    err = capsys.readouterr().err
    assert "learning-rate range test" in err and "/12" in err and "loss=" in err, err
    _range_test(progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("rank0", [True, False])
def test_choose_rate_shows_the_bar_on_rank_0_only(tmp_path, capsys, rank0):
    model = torch.nn.Linear(4, 2)
    model.config = types.SimpleNamespace(hidden_size=64)  # the size default, if the 10-point curve is inconclusive
    cfg = types.SimpleNamespace(learning_rate="auto", find_lr=False, weight_decay=0.0, find_lr_steps=10, progress=True)

    def run_step(k: int) -> float:
        loss = model(torch.ones(3, 4)).pow(2).mean()
        loss.backward()
        return loss.item()

    lrfind.choose_rate(cfg, model, run_step, tmp_path, types.SimpleNamespace(is_main=rank0))
    assert ("learning-rate range test" in capsys.readouterr().err) == rank0


def test_text_classifier_fit_shows_a_bar_unless_progress_is_false(work, tmp_path, capsys):
    from albert.estimators import TextClassifier

    base = tmp_path / "base"
    albert.AlbertForSequenceClassification(albert.AlbertConfig.from_json_file(work / "model.json")).save_pretrained(
        base
    )
    albert.AlbertTokenizer.from_pretrained(work / "tok").save_pretrained(base)
    texts, labels = [f"review {i} was {'good' if i % 2 else 'bad'}" for i in range(16)], ["pos", "neg"] * 8
    settings = dict(max_steps=2, batch_size=8, max_seq_length=32, learning_rate=1e-3)
    clf = TextClassifier.from_pretrained(base, labels=["pos", "neg"])
    clf.fit(texts, labels, progress=False, **settings)
    assert capsys.readouterr().err == ""
    clf.fit(texts, labels, **settings)  # progress=True, the default
    err = capsys.readouterr().err
    assert "fine-tuning" in err and "2/2" in err, err


def test_other_tasks_name_the_file_and_line_of_a_bad_answer(tmp_path):
    from albert.tasks import multiple_choice, qa

    squad = {"data": [{"paragraphs": [{"context": "abc def", "qas": []}]}]}
    squad["data"][0]["paragraphs"][0]["qas"] = [
        {"id": "q1", "question": "q", "answers": [{"text": "abc", "answer_start": 0}]},
        {"id": "q2", "question": "q", "answers": [{"text": "def", "answer_start": 1}]},
    ]
    (tmp_path / "dev.json").write_text(json.dumps(squad, indent=1))
    line = next(n for n, text in enumerate(json.dumps(squad, indent=1).splitlines(), 1) if '"q2"' in text)
    with pytest.raises(albert.AlbertError, match=rf"^[^ ]*dev\.json:{line}: question q2: answer 'def' is not at 1"):
        qa.read_squad(tmp_path / "dev.json")
    del squad["data"][0]["paragraphs"][0]["qas"][0]["question"]
    (tmp_path / "dev.json").write_text(json.dumps(squad))
    with pytest.raises(albert.AlbertError, match=r"dev\.json: not SQuAD JSON \(.*KeyError: 'question'"):
        qa.read_squad(tmp_path / "dev.json")

    question = {"passage": "p", "question": "q", "options": ["a", "b"], "answer": "A"}
    rows = [question, {**question, "answer": "C"}]
    (tmp_path / "mc.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    with pytest.raises(albert.AlbertError, match=r"mc\.jsonl:2: answer 'C' is outside the 2 options"):
        multiple_choice.read_questions(tmp_path / "mc.jsonl")
    (tmp_path / "mc.jsonl").write_text(json.dumps(question) + "\n[1, 2]\n")
    with pytest.raises(albert.AlbertError, match=r"mc\.jsonl:2: expected a JSON object, found list"):
        multiple_choice.read_questions(tmp_path / "mc.jsonl")
    (tmp_path / "train.jsonl").write_text(json.dumps(question) + "\n")
    (tmp_path / "dev.jsonl").write_text("\n" + json.dumps({**question, "options": ["a", "b", "c"]}) + "\n")
    train, dev = (multiple_choice.read_questions(tmp_path / name) for name in ("train.jsonl", "dev.jsonl"))
    with pytest.raises(albert.AlbertError, match=r"dev\.jsonl:2: 3 options per question, training has 2"):
        multiple_choice.MultipleChoice().labels(train, dev, types.SimpleNamespace(eval=str(tmp_path / "dev.jsonl")))
