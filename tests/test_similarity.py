"""Sentence-pair similarity (STS-B style), the task added through the task interface alone: reading STS-B's TSV,
training a regression head on pairs, and its Pearson/Spearman metric."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import cli_evaluate, write_small_model

from albert import tasks
from albert.estimators import TextClassifier
from albert.finetune import FinetuneConfig, train
from albert.tasks.classification import TaskDataError


def _write_tsv(path, rows) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["index", "genre", "sentence1", "sentence2", "score"])  # STS-B's own layout, abridged
        for k, (a, b, score) in enumerate(rows):
            writer.writerow([k, "brown", a, b, f"{score:.3f}"])


@pytest.fixture(scope="module")
def pairs(realdata, tmp_path_factory):
    """Real Brown sentences in pairs. No similarity data set is available here, and a 2-layer model trained from
    scratch in seconds cannot learn meaning, so the score is one it can learn from the pair itself: 5 × the second
    sentence's share of the pair's words. The test checks the pipeline (pair encoding with token types, regression
    head, correlation metrics), not semantic similarity."""
    root = tmp_path_factory.mktemp("sts")
    rng = np.random.default_rng(0)
    sentences = [s for d in realdata.brown_documents()[:200] for s in d["sentences"] if 3 <= len(s.split()) <= 30]
    rows = []
    for _ in range(900):
        a, b = (sentences[int(i)] for i in rng.integers(len(sentences), size=2))
        rows.append((a, b, 5 * len(b.split()) / (len(a.split()) + len(b.split()))))
    _write_tsv(root / "train.tsv", rows[:800])
    _write_tsv(root / "dev.tsv", rows[800:])
    return root


def test_reads_sts_b_columns_and_refuses_a_missing_second_sentence(pairs, tmp_path):
    task = tasks.get("similarity")
    cfg = FinetuneConfig(task="similarity")
    examples = task.read(pairs / "dev.tsv", cfg)
    assert len(examples) == 100 and all(e.pair and isinstance(e.label, float) for e in examples)
    _write_tsv(tmp_path / "bad.tsv", [("one sentence", "", 1.0)])
    with pytest.raises(TaskDataError, match=r"bad\.tsv:2: field 'sentence2' is empty"):
        task.read(tmp_path / "bad.tsv", cfg)


def test_similarity_trains_and_correlates(pairs, brown_tokenizer, tmp_path):
    brown_tokenizer.save_pretrained(tmp_path / "tok")
    write_small_model(tmp_path / "model.json", vocab_size=brown_tokenizer.vocab_size)
    result = train(
        FinetuneConfig(
            task="similarity",
            train=str(pairs / "train.tsv"),
            eval=str(pairs / "dev.tsv"),
            init="random:" + str(tmp_path / "model.json"),
            tokenizer=str(tmp_path / "tok"),
            out=str(tmp_path / "out"),
            epochs=6,
            batch_size=16,
            learning_rate=1e-3,
            max_seq_length=96,
            progress=False,
        )
    )
    # a constant prediction has no correlation at all; the pair model tracks the score closely
    assert result["pearson_spearman"] > 0.6 and result["pearson"] > 0.6, result
    again = cli_evaluate(tmp_path / "out", pairs / "dev.tsv")  # columns as trained (finetune_config.json)
    assert again["pearson"] == pytest.approx(result["pearson"], abs=1e-4)
    scores = TextClassifier.from_pretrained(tmp_path / "out").predict_proba(["a short one", "a much longer one here"])
    assert scores.shape == (2,) and np.isfinite(scores).all()
    # `albert predict` reads the STS-B file itself (sentence1, sentence2: the columns it was trained with), and gives
    # what the API gives for the same pairs
    import csv
    import json

    from albert import cli, infer

    out = tmp_path / "scores.jsonl"
    assert (
        cli.main(
            [
                "predict",
                "--model",
                str(tmp_path / "out"),
                "--input",
                str(pairs / "dev.tsv"),
                "--output",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    with open(pairs / "dev.tsv", newline="") as f:
        given = list(csv.DictReader(f, delimiter="\t"))
    assert [{k: v for k, v in r.items() if k != "prediction"} for r in rows] == given
    items = [{"text": g["sentence1"], "pair": g["sentence2"]} for g in given]
    want = infer.Predictor(tmp_path / "out").predict(items)
    np.testing.assert_allclose([r["prediction"]["score"] for r in rows], [w["score"] for w in want], atol=2e-6)
