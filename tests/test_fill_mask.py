"""Fill-mask: a masked-LM or pretraining directory answers as transformers' fill-mask pipeline does, through the
Python API, `albert predict` (PyTorch and ONNX) and `albert serve`; its embeddings stay one explicit choice away."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from servers import Server

import albert
from albert import infer

transformers = pytest.importorskip("transformers")

TEXTS = [
    "It was a [MASK] day.",
    "[MASK] jury said the election was conducted.",  # a mask first
    "The [MASK] of the [MASK] was late.",  # two masks: a list per mask, special tokens kept in the sequences
    "He looked at the house and then at the [MASK]",  # a mask last, no full stop
]


def write_masked_lm(path, cls: str, tokenizer, layers: int, seed: int):
    """A decisive random masked LM written by transformers, with ``tokenizer`` beside it."""
    config = transformers.AlbertConfig(
        vocab_size=tokenizer.vocab_size,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    model = getattr(transformers, cls)(config).eval()
    with torch.no_grad():  # far from init, so the candidates are not near-ties
        for p in model.parameters():
            p.normal_(0, 0.2)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module", params=["AlbertForMaskedLM", "AlbertForPreTraining"])
def mlm_dir(request, brown_tokenizer, tmp_path_factory):
    """The hub's layout (AlbertForMaskedLM) or a pretraining checkpoint's (AlbertForPreTraining: an SOP head and a
    pooler beside the MLM head)."""
    return write_masked_lm(tmp_path_factory.mktemp(request.param), request.param, brown_tokenizer, 2, 0)


def _same(ours, theirs) -> None:
    """Field for field, scores within 1e-5 (ours are rounded to 6 decimals, as every score we write)."""
    assert [f["token"] for f in ours] == [f["token"] for f in theirs]
    assert [f["token_str"] for f in ours] == [f["token_str"] for f in theirs]
    assert [f["sequence"] for f in ours] == [f["sequence"] for f in theirs]
    np.testing.assert_allclose([f["score"] for f in ours], [f["score"] for f in theirs], rtol=0, atol=1e-5)


def test_the_fills_are_the_pipelines(mlm_dir):
    pipe = transformers.pipeline("fill-mask", model=str(mlm_dir))
    predictor = infer.Predictor(mlm_dir)
    assert predictor.task == "fill_mask"  # the directory's default: no flag needed
    for top_k in (5, 12):
        ours = predictor.fill_mask(TEXTS, top_k=top_k)
        for text, got in zip(TEXTS, ours, strict=True):
            expected = pipe(text, top_k=top_k)
            if text.count("[MASK]") == 1:
                _same(got, expected)
            else:
                assert len(got) == len(expected) == 2
                for a, b in zip(got, expected, strict=True):
                    _same(a, b)
    # targets: a piece of the vocabulary and a word that is not one (the pipeline takes its first piece)
    targets = ["▁house", "▁day", "jurisdiction"]
    for text in (TEXTS[0], TEXTS[3]):
        _same(predictor.fill_mask([text], targets=targets)[0], pipe(text, targets=targets))
    assert len(predictor.fill_mask([TEXTS[0]], top_k=2, targets=targets)[0]) == 2
    assert predictor.options == {"top_k": 5, "targets": None}  # a call's options are its own
    with pytest.raises(albert.AlbertError, match="top_k 0: at least 1"):
        predictor.fill_mask([TEXTS[0]], top_k=0)


def test_the_fills_are_the_pipelines_with_a_chinese_wordpiece_vocabulary(realdata, tmp_path):
    """albert_zh's layout: the bert-base-chinese WordPiece vocabulary (BertTokenizer in transformers)."""
    tok = albert.AlbertTokenizer.from_pretrained(realdata.chinese_vocab())
    write_masked_lm(tmp_path, "AlbertForMaskedLM", tok, 1, 1)
    pipe = transformers.pipeline("fill-mask", model=str(tmp_path))
    texts = [
        "今天天气很[MASK]。",
        "[MASK]国的首都是北京",
        "这个手机[MASK]好用，电池也[MASK]用。",
        "Mixed 中文 and [MASK] text.",
    ]
    ours = infer.Predictor(tmp_path).fill_mask(texts, top_k=6)
    for text, got in zip(texts, ours, strict=True):
        expected = pipe(text, top_k=6)
        for a, b in zip(
            got if text.count("[MASK]") > 1 else [got],
            expected if text.count("[MASK]") > 1 else [expected],
            strict=True,
        ):
            _same(a, b)


def test_predict_fills_masks_by_default_and_embeds_when_asked(mlm_dir, tmp_path):
    run = [sys.executable, "-m", "albert", "predict", "--model", str(mlm_dir)]
    done = subprocess.run([*run, TEXTS[0], "--top-k", "3"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["text"] == TEXTS[0]
    _same(record["prediction"], infer.Predictor(mlm_dir).fill_mask([TEXTS[0]], top_k=3)[0])

    done = subprocess.run([*run, "--task", "embedding", TEXTS[0]], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    vector = json.loads(done.stdout)["prediction"]
    expected = infer.Predictor(mlm_dir, task="embedding").embed([TEXTS[0]])[0]
    np.testing.assert_allclose(vector, expected, rtol=0, atol=1e-5)

    done = subprocess.run([*run, "It was a fine day."], capture_output=True, text=True)
    assert done.returncode != 0 and "no [MASK] in the text 'It was a fine day.'" in done.stderr
    assert "Traceback" not in done.stderr
    long = "word " * 70 + "[MASK]"  # past the model's 64 positions: refused, never cut (the mask would be lost)
    done = subprocess.run([*run, long], capture_output=True, text=True)
    assert done.returncode != 0 and "more than 64" in done.stderr and "Traceback" not in done.stderr


def test_a_classifier_is_not_asked_to_fill_masks(models):
    with pytest.raises(Exception, match="does classification, not fill_mask"):
        infer.Predictor(models["clf"], task="fill_mask")


def test_the_onnx_export_fills_as_pytorch(mlm_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    from albert.export import export_onnx

    report = export_onnx(mlm_dir, tmp_path / "mlm.onnx")
    assert report["model_class"] == "AlbertForMaskedLM" and report["outputs"] == ["logits"]
    torch_fills = infer.Predictor(mlm_dir).fill_mask(TEXTS)
    onnx_fills = infer.Predictor(mlm_dir, onnx=tmp_path / "mlm.onnx").fill_mask(TEXTS)
    for a, b in zip(torch_fills, onnx_fills, strict=True):
        for x, y in zip(a if isinstance(a[0], list) else [a], b if isinstance(b[0], list) else [b], strict=True):
            _same(x, y)
    # the encoder's graph is one flag away too, and the wrong graph for a task says which flag makes the right one
    with pytest.raises(albert.CheckpointError, match="export it with --task embedding"):
        infer.Predictor(mlm_dir, onnx=tmp_path / "mlm.onnx", task="embedding")
    assert export_onnx(mlm_dir, tmp_path / "enc.onnx", task="embedding")["model_class"] == "AlbertModel"
    vectors = infer.Predictor(mlm_dir, onnx=tmp_path / "enc.onnx", task="embedding").embed(TEXTS)
    expected = infer.Predictor(mlm_dir, task="embedding").embed(TEXTS)
    np.testing.assert_allclose(vectors, expected, rtol=0, atol=1e-4)


def test_the_server_fills_masks(mlm_dir):
    pytest.importorskip("fastapi")
    server = Server(mlm_dir, "--top-k", "4")
    try:
        status, health = server.get("/health")
        assert status == 200 and health["routes"] == ["fill-mask"]
        status, body = server.post("/fill-mask", {"texts": TEXTS[:3]})
        assert status == 200, body
        expected = infer.Predictor(mlm_dir, top_k=4).fill_mask(TEXTS[:3])
        assert body["fills"] == expected
        status, body = server.post("/fill-mask", {"texts": ["no mask here"]})
        assert status == 422 and "no [MASK]" in json.dumps(body)
    finally:
        server.stop()
