"""Bad input, as a new user brings it: every subcommand with bad values for its flags and bad files of every kind.

Each case runs `albert` in this process (as the console script does) inside a working folder of real files: a tiny
fine-tuned classifier, a tokenizer, a pretraining run's folder, CSV/JSONL files and earlier outputs. Every case must
exit with status 2, print no traceback, end stderr with one line that names the flag, file or line, and leave every
file that existed before exactly as it was (nothing overwritten, emptied or half-written).
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import folder_hashes, write_tiny_model

import albert
from albert import cli
from albert.outputs import file_mode

NO_CUDA = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def work(models, brown_tokenizer, tmp_path_factory):
    """A folder with everything the cases point at (paths relative to it; each case runs with it as cwd)."""
    root = tmp_path_factory.mktemp("bad-input")
    for name in ("model", "other-model"):  # the command's model, and another model that is no input of it
        (root / name).mkdir()
        for f in Path(models["clf"]).iterdir():
            (root / name / f.name).write_bytes(f.read_bytes())
    brown_tokenizer.save_pretrained(root / "tok")
    rows = ["text,label"] + [
        f"review number {i} was {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'}" for i in range(40)
    ]
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    (root / "ragged.csv").write_text("text,label\nI liked it,pos\nI liked it, a lot,great\n")
    (root / "short.csv").write_text("text,label\nok\n")
    (root / "unclosed.csv").write_text('text,label\nfine,pos\n"never closed, neg\nmore,pos\nlast,neg\n')
    (root / "latin1.csv").write_bytes("text,label\ncaf\xe9,pos\n".encode("latin-1"))
    (root / "bad.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n{"text": 3\n')
    (root / "texts.txt").write_text("a fine day\n\nanother one\n")
    # a previous output of `albert predict`, which a failed run must leave as it was
    (root / "keep.jsonl").write_text('{"text": "an earlier result", "prediction": {"label": "pos"}}\n')
    (root / "notes.jsonl").write_text('{"text": "a user\'s own records", "label": "pos"}\n')  # not an output
    (root / "old.onnx").write_bytes(b"not an onnx graph")
    (root / "photo.png").write_bytes(b"GIF89a not a png")
    (root / "run").mkdir()  # someone's earlier fine-tuning run
    (root / "run" / "log.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    (root / "run" / "config.json").write_text("{}\n")
    (root / "folder.jsonl").mkdir()
    (root / "typo.yaml").write_text("hiden_size: 64\n")
    (root / "range.yaml").write_text("batch_size: 0\n")
    write_tiny_model(root / "model.json", brown_tokenizer.vocab_size)
    return root


FINETUNE = ["finetune", "--train", "train.csv", "--init", "random:model.json", "--tokenizer", "tok", "--out", "new"]
PRETRAIN = ["pretrain", "--data", "data", "--out", "new-run"]
PREPARE = ["prepare", "--input", "texts.txt", "--tokenizer", "tok", "--out", "prepared"]
SERVE = ["serve", "--model", "model"]
PREDICT = ["predict", "--model", "model"]

# (case id, argv, text the last stderr line must contain)
FLAG_CASES = [
    *[
        (f"finetune{flag}={value}", [*FINETUNE, f"{flag}={value}"], f"argument {flag}: must be {expected}")
        for flag, value, expected in [
            ("--batch-size", "0", ">= 1"),
            ("--epochs", "0", "> 0"),
            ("--max-steps", "-3", ">= 1"),
            ("--grad-accum", "0", ">= 1"),
            ("--learning-rate", "0", "> 0"),
            ("--learning-rate", "nan", "> 0"),
            ("--warmup-ratio", "1.5", "in [0, 1]"),
            ("--weight-decay", "-0.1", ">= 0"),
            ("--max-seq-length", "2", ">= 4"),
            ("--classifier-dropout", "1", "in [0, 1)"),
            ("--dropout", "1.2", "in [0, 1)"),
            ("--eval-every", "0", ">= 1"),
            ("--early-stopping", "0", ">= 1"),
            ("--doc-stride", "0", ">= 1"),
            ("--max-query-length", "0", ">= 1"),
            ("--max-answer-length", "0", ">= 1"),
            ("--summary-sentences", "0", ">= 1"),
            ("--seed", "-1", ">= 0"),
            ("--device", "gpu", "auto, cpu, cuda"),
        ]
    ],
    ("finetune--task", [*FINETUNE, "--task", "sentiment"], "argument --task: invalid choice: 'sentiment'"),
    ("finetune--batch-size=abc", [*FINETUNE, "--batch-size", "abc"], "argument --batch-size: invalid int value"),
    ("finetune-no-train", ["finetune", "--init", "x", "--out", "y"], "the following arguments are required: --train"),
    *[
        (f"pretrain{flag}={value}", [*PRETRAIN, f"{flag}={value}"], f"argument {flag}: must be {expected}")
        for flag, value, expected in [
            ("--max-steps", "0", ">= 1"),
            ("--batch-size", "0", ">= 1"),
            ("--grad-accum", "0", ">= 1"),
            ("--learning-rate", "-1e-3", "> 0"),
            ("--warmup-steps", "-1", ">= 0"),
            ("--poly-power", "0", "> 0"),
            ("--clip-norm", "0", "> 0"),
            ("--max-seq-length", "4", ">= 8"),
            ("--max-predictions", "0", ">= 1"),
            ("--masked-lm-prob", "1.5", "in (0, 1]"),
            ("--short-seq-prob", "2", "in [0, 1]"),
            ("--dupe-factor", "0", ">= 1"),
            ("--eval-fraction", "1", "in [0, 1)"),
            ("--eval-every", "0", ">= 1"),
            ("--eval-batches", "0", ">= 1"),
            ("--save-every", "0", ">= 1"),
            ("--keep-last", "0", ">= 1"),
            ("--log-every", "0", ">= 1"),
            ("--dropout", "1", "in [0, 1)"),
        ]
    ],
    ("pretrain--optimizer", [*PRETRAIN, "--optimizer", "sgd"], "argument --optimizer: invalid choice: 'sgd'"),
    ("pretrain--masking", [*PRETRAIN, "--masking", "whole"], "argument --masking: invalid choice: 'whole'"),
    ("prepare--shard-tokens", [*PREPARE, "--shard-tokens", "0"], "argument --shard-tokens: must be >= 1"),
    ("prepare--chunk-lines", [*PREPARE, "--chunk-lines", "0"], "argument --chunk-lines: must be >= 1"),
    ("prepare--chinese-words", [*PREPARE, "--chinese-words", "x"], "argument --chinese-words: invalid choice"),
    ("prepare-nothing", ["prepare"], "the following arguments are required: --input"),
    *[
        (f"serve{flag}={value}", [*SERVE, f"{flag}={value}"], f"argument {flag}: must be {expected}")
        for flag, value, expected in [
            ("--port", "70000", "in [0, 65535]"),
            ("--port", "-1", "in [0, 65535]"),
            ("--max-batch", "0", ">= 1"),
            ("--max-wait-ms", "-5", ">= 0"),
            ("--max-queue", "0", ">= 1"),
            ("--max-request-texts", "0", ">= 1"),
            ("--max-text-chars", "0", ">= 1"),
            ("--max-body-bytes", "0", ">= 1"),
            ("--max-length", "1", ">= 4"),
            ("--threads", "0", "in [1,"),
            ("--graceful-timeout", "-1", ">= 0"),
        ]
    ],
    *[
        (f"predict{flag}={value}", [*PREDICT, f"{flag}={value}", "text"], f"argument {flag}: must be {expected}")
        for flag, value, expected in [
            ("--max-tokens", "0", ">= 1"),
            ("--max-batch", "0", ">= 1"),
            ("--threads", "-2", "in [1,"),
            ("--chunk", "0", ">= 1"),
            ("--max-seq-length", "0", ">= 4"),
        ]
    ],
    (
        "evaluate--max-seq-length",
        ["evaluate", "--model", "model", "--data", "train.csv", "--max-seq-length", "1"],
        ">= 4",
    ),
    (
        "export--opset",
        ["export", "--model", "model", "--onnx", "m.onnx", "--opset", "9"],
        "--opset: must be in [14, 20]",
    ),
    (
        "tokenizer--vocab-size",
        ["tokenizer", "train", "--input", "texts.txt", "--out", "t2", "--vocab-size", "0"],
        "--vocab-size: must be >= 16",
    ),
    (
        "tokenizer--character-coverage",
        ["tokenizer", "train", "--input", "texts.txt", "--out", "t2", "--character-coverage", "1.5"],
        "--character-coverage: must be in (0, 1]",
    ),
]

FILE_CASES = [
    ("finetune-missing-train", [*FINETUNE[:2], "missing.csv", *FINETUNE[3:]], "missing.csv: no such file"),
    (
        "finetune-ragged-row",
        [*FINETUNE[:2], "ragged.csv", *FINETUNE[3:]],
        "ragged.csv:3: 3 fields, but the header has 2",
    ),
    ("finetune-short-row", [*FINETUNE[:2], "short.csv", *FINETUNE[3:]], "short.csv:2: 1 field, but the header has 2"),
    ("finetune-unclosed-quote", [*FINETUNE[:2], "unclosed.csv", *FINETUNE[3:]], "unclosed.csv:3: a quoted field opens"),
    ("finetune-latin1", [*FINETUNE[:2], "latin1.csv", *FINETUNE[3:]], "latin1.csv:2: not UTF-8"),
    ("finetune-out-not-empty", [*FINETUNE[:-1], "run"], "--out run: is not empty (holds config.json, log.jsonl)"),
    (
        "finetune-out-is-init",
        [*FINETUNE[:4], "model", "--out", "model"],
        "--out model: holds this command's input model",
    ),
    ("finetune-out-is-a-file", [*FINETUNE[:-1], "train.csv"], "--out train.csv: is a file"),
    (
        "finetune-yaml-typo",
        [*FINETUNE, "--config", "typo.yaml"],
        "typo.yaml: unknown FinetuneConfig field(s): hiden_size",
    ),
    (
        "finetune-yaml-range",
        [*FINETUNE, "--config", "range.yaml"],
        "range.yaml: field 'batch_size' must be >= 1, found 0",
    ),
    (
        "predict-missing-input",
        [*PREDICT, "--input", "missing.csv", "--output", "keep.jsonl"],
        "--input missing.csv: no such input file",
    ),
    ("predict-bad-line", [*PREDICT, "--input", "bad.jsonl", "--output", "keep.jsonl"], "bad.jsonl:3: malformed JSON"),
    ("predict-ragged", [*PREDICT, "--input", "ragged.csv", "--output", "keep.jsonl"], "ragged.csv:3: 3 fields"),
    (
        "predict-output-is-dir",
        [*PREDICT, "--input", "texts.txt", "--output", "folder.jsonl"],
        "--output folder.jsonl: is a directory",
    ),
    ("predict-input-is-dir", [*PREDICT, "--input", "run"], "--input run: is a directory"),
    ("predict-stdin-latin1", [*PREDICT], "stdin line 2: not UTF-8"),
    (
        "predict-too-long",
        [*PREDICT, "--max-seq-length", "1000", "x"],
        "--max-seq-length 1000 exceeds the 128 positions",
    ),
    ("serve-too-long", [*SERVE, "--max-length", "1000"], "--max-length 1000 exceeds the 128 positions"),
    ("encode-stdin-latin1", ["tokenizer", "encode", "--tokenizer", "tok"], "stdin line 2: not UTF-8"),
    ("pretrain-out-not-empty", ["pretrain", "--data", "tok", "--out", "run"], "--out run: is not empty"),
    ("prepare-out-not-empty", [*PREPARE[:-1], "run"], "--out run: is not empty"),
    (
        "tokenizer-out-not-empty",
        ["tokenizer", "train", "--input", "texts.txt", "--out", "run"],
        "--out run: is not empty",
    ),
    ("convert-out-not-empty", ["convert", "model", "--from", "bert", "--out", "run"], "--out run: is not empty"),
]

# The output-file policy (albert/outputs.py): every flag that names a file to write, against a model, a run, the
# command's own input, a user's file of another kind and a wrong suffix; checked before any work.
EVALUATE = ["evaluate", "--model", "model", "--data", "train.csv"]
EXPORT = ["export", "--model", "model"]
OUTPUT_CASES = [
    ("predict-output-model-weights", [*PREDICT, "x", "--output", "model/model.safetensors"], "this command's input"),
    ("predict-output-in-model", [*PREDICT, "x", "--output", "model/preds.jsonl"], "this command's input model"),
    ("predict-output-is-input", [*PREDICT, "--input", "texts.txt", "--output", "texts.txt"], "input texts.txt"),
    ("predict-output-is-csv-input", [*PREDICT, "--input", "train.csv", "--output", "train.csv"], "input train.csv"),
    ("predict-output-in-run", [*PREDICT, "x", "--output", "run/preds.jsonl"], "lies inside run, a model, run"),
    ("predict-output-other-model", [*PREDICT, "x", "--output", "other-model/p.jsonl"], "lies inside other-model"),
    ("export-onnx-other-model", [*EXPORT, "--onnx", "other-model/m.onnx"], "--onnx other-model/m.onnx: lies inside"),
    ("evaluate-png-other-model", [*EVALUATE, "--confusion-png", "other-model/c.png"], "lies inside other-model"),
    ("predict-output-users-file", [*PREDICT, "x", "--output", "notes.jsonl"], "exists and is not predictions"),
    ("predict-output-csv", [*PREDICT, "x", "--output", "preds.csv"], "its name must end in .jsonl"),
    ("predict-output-tokenizer", [*PREDICT, "x", "--output", "tok/spiece.jsonl"], "lies inside tok"),
    ("export-onnx-model-weights", [*EXPORT, "--onnx", "model/model.safetensors"], "this command's input model"),
    ("export-onnx-csv", [*EXPORT, "--onnx", "train.csv"], "--onnx train.csv: the file is an ONNX graph"),
    ("export-onnx-in-run", [*EXPORT, "--onnx", "run/m.onnx"], "--onnx run/m.onnx: lies inside run"),
    ("export-onnx-not-ours", [*EXPORT, "--onnx", "old.onnx"], "--onnx old.onnx: exists and is not an ONNX graph"),
    ("evaluate-png-csv", [*EVALUATE, "--confusion-png", "out.csv"], "its name must end in .png"),
    ("evaluate-png-in-model", [*EVALUATE, "--confusion-png", "model/c.png"], "this command's input model"),
    ("evaluate-png-not-png", [*EVALUATE, "--confusion-png", "photo.png"], "photo.png: exists and is not a PNG"),
    ("evaluate-png-is-data", [*EVALUATE, "--confusion-png", "train.csv"], "is this command's input train.csv"),
    ("finetune-out-staging", [*FINETUNE[:-1], "new.incoming"], "names a run's staging directory; pass new"),
    ("predict-input-has-prediction", [*PREDICT, "--input", "keep.jsonl"], "keep.jsonl:1: has a field 'prediction'"),
    ("predict-threads-huge", [*PREDICT, "--threads", "100000", "x"], "argument --threads: must be in [1,"),
    ("serve-threads-huge", [*SERVE, "--threads", "100000"], "argument --threads: must be in [1,"),
]


CASES = [pytest.param(argv, expected, id=case) for case, argv, expected in FLAG_CASES + FILE_CASES + OUTPUT_CASES]
if NO_CUDA:  # on a machine with a GPU this is not an error
    CASES.append(pytest.param([*FINETUNE, "--device", "cuda"], "CUDA is not available", id="finetune-cuda"))


@pytest.mark.parametrize("argv, expected", CASES)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(work, monkeypatch, capsys, argv, expected):
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"fine\ncaf\xe9\n"), encoding="utf-8"))
    before = folder_hashes(work)
    try:
        status = cli.main(argv)
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err, err
    # progress lines ("INFO: loading the model from ...") may come first; the error is one line after them
    lines = [line for line in err.strip().splitlines() if line.strip() and not line.startswith("INFO:")]
    assert expected in lines[-1], err
    if lines[-1].startswith("albert: error:"):  # ours: one line, nothing before it
        assert len(lines) == 1, err
    else:  # argparse's: its usage, then one error line
        assert re.match(r"albert [\w ]+: error: ", lines[-1]) and lines[0].startswith("usage:"), err
    after = folder_hashes(work)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing that existed was changed
    assert not set(after) - set(before), set(after) - set(before)  # and nothing was left behind


def test_a_failed_prediction_leaves_the_old_output_and_a_good_one_replaces_it(work, monkeypatch):
    monkeypatch.chdir(work)
    target = work / "out-texts.jsonl"
    target.write_text("old\n")  # not predictions: replaced only when asked
    assert cli.main([*PREDICT, "--input", "texts.txt", "--output", str(target), "--quiet"]) == 2
    assert target.read_text() == "old\n"
    assert cli.main([*PREDICT, "--input", "texts.txt", "--output", str(target), "--quiet", "--overwrite"]) == 0
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["text"] for r in lines] == ["a fine day", "", "another one"]  # a blank line is a text: aligned output
    assert stat.S_IMODE(target.stat().st_mode) == file_mode()  # what open() would give it, not mkstemp's 0600
    target.unlink()
    nested = work / "made" / "for" / "it.jsonl"  # an output in a folder that does not exist yet: created
    assert cli.main([*PREDICT, "--input", "texts.txt", "--output", str(nested), "--quiet"]) == 0
    assert len(nested.read_text().splitlines()) == 3
    import shutil

    shutil.rmtree(work / "made")


def test_written_model_files_follow_the_umask(work, tmp_path, monkeypatch):
    """Every file of a fine-tuned model is readable by others under the usual umask 022 (mkstemp made them 0600)."""
    monkeypatch.chdir(work)
    old = os.umask(0o022)
    try:
        result = cli.main(
            [*FINETUNE[:-1], str(tmp_path / "out"), "--max-steps", "2", "--batch-size", "4", "--no-progress"]
        )
    finally:
        os.umask(old)
    assert result == 0
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "out").iterdir() if p.is_file()}
    assert {"config.json", "model.safetensors", "spiece.model", "tokenizer_config.json"} <= set(modes)
    assert all(mode == 0o644 for mode in modes.values()), modes
    assert not (tmp_path / "out" / "INCOMPLETE").exists()  # a finished run is not marked


def test_overwrite_replaces_a_run_but_never_an_input(work, tmp_path, monkeypatch):
    monkeypatch.chdir(work)
    out = tmp_path / "again"
    out.mkdir()
    (out / "stale.bin").write_text("from another run")
    assert (
        cli.main([*FINETUNE[:-1], str(out), "--max-steps", "1", "--batch-size", "4", "--no-progress", "--overwrite"])
        == 0
    )
    assert not (out / "stale.bin").exists() and (out / "model.safetensors").is_file()
    with pytest.raises(albert.AlbertError, match="holds this command's input"):
        from albert.finetune import FinetuneConfig, train

        train(FinetuneConfig(train=str(out / "log.jsonl"), init=str(out), out=str(out), overwrite=True, progress=False))
    assert (out / "model.safetensors").is_file()


def test_non_finite_loss_stops_with_a_clear_error(work, tmp_path, monkeypatch):
    """A learning rate that blows up stops at the first non-finite loss instead of saving a NaN "best" model."""
    from albert.finetune import FinetuneConfig, train

    monkeypatch.chdir(work)
    cfg = FinetuneConfig(
        train="train.csv",
        init="random:model.json",
        tokenizer="tok",
        out=str(tmp_path / "nan"),
        learning_rate=1e30,
        batch_size=8,
        max_steps=20,
        progress=False,
    )
    with pytest.raises(
        albert.AlbertError, match=r"step \d+: the training loss is nan \(not finite\); lower --learning-rate"
    ):
        train(cfg)
    assert (tmp_path / "nan" / "INCOMPLETE").is_file()  # and the folder says it is not a finished model


def test_an_interrupted_run_is_marked_and_loading_it_warns(work, tmp_path, caplog):
    (tmp_path / "half").mkdir()
    for f in (work / "model").iterdir():
        (tmp_path / "half" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "half" / "INCOMPLETE").write_text("")
    with caplog.at_level("WARNING", logger="albert"):
        albert.AlbertForSequenceClassification.from_pretrained(tmp_path / "half")
    assert "is from a run that did not finish" in caplog.text


def test_config_json_typo_is_named(caplog):
    with caplog.at_level("WARNING", logger="albert"):
        albert.AlbertConfig.from_dict({"hiden_size": 64, "vocab_size": 100}, "x/config.json")
    assert "x/config.json: unknown key 'hiden_size' is ignored (did you mean 'hidden_size'?)" in caplog.text
    with pytest.raises(albert.AlbertError, match="'layer_norm_eps' must be a positive number, found -1"):
        albert.AlbertConfig(vocab_size=10, layer_norm_eps=-1)


def test_a_tokenizer_bigger_than_the_model_is_refused_by_every_loader(work, tmp_path, brown_tokenizer):
    from albert import infer

    small = tmp_path / "small-vocab"
    small.mkdir()
    for f in (work / "model").iterdir():
        small.joinpath(f.name).write_bytes(f.read_bytes())
    data = json.loads((small / "config.json").read_text())
    data["vocab_size"] = 1000  # the Brown tokenizer has 8,000 pieces
    (small / "config.json").write_text(json.dumps(data))
    with pytest.raises(albert.AlbertError, match="the tokenizer has 8000 entries but the model only 1000"):
        infer.Predictor(small)


def test_text_classifier_behaves_as_scikit_learn_users_expect(work, tmp_path):
    from albert.estimators import TextClassifier

    texts = [line.split(",")[0] for line in (work / "train.csv").read_text().splitlines()[1:]]
    labels = [line.split(",")[1] for line in (work / "train.csv").read_text().splitlines()[1:]]
    base = tmp_path / "base"
    albert.AlbertForSequenceClassification(albert.AlbertConfig.from_json_file(work / "model.json")).save_pretrained(
        base
    )
    albert.AlbertTokenizer.from_pretrained(work / "tok").save_pretrained(base)
    clf = TextClassifier.from_pretrained(base, labels=["pos", "neg"])
    clf.fit(texts, labels, epochs=1, batch_size=8, max_seq_length=32)  # a FinetuneConfig field, not a clash
    assert clf.labels == ["pos", "neg"]  # the user's order: probability columns follow it
    assert clf.max_length == 32
    assert len(clf.predict("one whole text")) == 1  # a string is one text, not one per character
    assert clf.predict([]) == [] and clf.predict_proba([]).shape == (0, 2)
    clf.save(tmp_path / "saved")
    again = TextClassifier.from_pretrained(tmp_path / "saved")
    assert again.max_length == 32 and again.labels == ["pos", "neg"]
    np.testing.assert_allclose(again.predict_proba(texts[:3]), clf.predict_proba(texts[:3]), atol=1e-6)


def test_tokenizer_training_is_quiet_and_names_skipped_lines(work, tmp_path, capfd, caplog):
    """SentencePiece's own log (a hundred lines on stderr) only with --verbose; over-long lines it skips are named."""
    corpus = tmp_path / "corpus.txt"
    lines = [f"sentence number {i} of a small corpus about tokenizers" for i in range(300)] + ["word " * 2000]
    corpus.write_text("\n".join(lines) + "\n")
    assert (
        cli.main(["tokenizer", "train", "--input", str(corpus), "--out", str(tmp_path / "t"), "--vocab-size", "60"])
        == 0
    )
    err = capfd.readouterr().err
    assert "trainer_interface" not in err and "unigram_model_trainer" not in err, err[:500]
    assert "1 of 301 lines are longer than 4192 bytes and were left out of training" in caplog.text
    assert "(the first is non-empty input line 301)" in caplog.text
