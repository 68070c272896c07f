"""An ONNX export is tied to the directory it was exported from (weights, head, tokenizer), not only to its shape."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
from conftest import LABELS, tiny_config

import albert
from albert import cli, infer
from albert.checkpoint import fingerprint


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory):
    """The classifier's fp32 export (a.onnx), and the classifier's directory."""
    from albert.export import export_onnx

    path = tmp_path_factory.mktemp("fingerprint") / "a.onnx"
    export_onnx(models["clf"], path)
    return models["clf"], path


def _copy(model_dir, target):
    shutil.copytree(model_dir, target)
    return target


def _metadata(path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_export_records_the_fingerprint_and_the_matching_pair_predicts(exported, brown_texts, tmp_path):
    from albert.export import export_onnx

    model_dir, onnx_path = exported
    assert _metadata(onnx_path)["albert_fingerprint"] == fingerprint(model_dir)
    export_onnx(model_dir, tmp_path / "q.onnx", int8=True)
    assert _metadata(tmp_path / "q.onnx")["albert_fingerprint"] == fingerprint(model_dir)  # int8: the same one
    got = infer.Predictor(model_dir, onnx=onnx_path).classify(brown_texts[:8])
    want = infer.Predictor(model_dir).classify(brown_texts[:8])
    assert [g["label"] for g in got] == [w["label"] for w in want]
    copied = _copy(model_dir, tmp_path / "copy")  # the same files elsewhere: the same model
    assert infer.Predictor(copied, onnx=onnx_path).classify(brown_texts[:2])


def test_onnx_from_another_model_of_the_same_shape_is_refused(exported, brown_tokenizer, tmp_path, capsys):
    model_dir, onnx_path = exported
    other = tmp_path / "b"
    cfg = tiny_config(vocab_size=brown_tokenizer.vocab_size, max_position_embeddings=128, id2label=LABELS)
    albert.AlbertForSequenceClassification(cfg).save_pretrained(other)  # same shape, other (fresh) weights
    brown_tokenizer.save_pretrained(other)
    with pytest.raises(albert.CheckpointError) as err:
        infer.Predictor(other, onnx=onnx_path)
    message = str(err.value)
    assert f"{onnx_path} was exported from another model than {other}" in message
    assert f"fingerprint {fingerprint(model_dir)} vs {fingerprint(other)}" in message
    assert "`albert export`" in message
    assert cli.main(["predict", "--model", str(other), "--onnx", str(onnx_path), "x"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("albert: error:") and str(onnx_path) in lines[0]


def test_a_tokenizer_only_change_is_refused(exported, tmp_path):
    from sentencepiece import sentencepiece_model_pb2

    model_dir, onnx_path = exported
    lowered = _copy(model_dir, tmp_path / "lower")
    config_path = lowered / "tokenizer_config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    config["do_lower_case"] = not config.get("do_lower_case", True)
    config_path.write_text(json.dumps(config))
    with pytest.raises(albert.CheckpointError, match="was exported from another model than"):
        infer.Predictor(lowered, onnx=onnx_path)
    swapped = _copy(model_dir, tmp_path / "swapped")  # another SentencePiece model of the same size: two ids swapped
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((swapped / "spiece.model").read_bytes())
    a, b = proto.pieces[100], proto.pieces[200]
    a.piece, b.piece = b.piece, a.piece
    (swapped / "spiece.model").write_bytes(proto.SerializeToString())
    assert infer.Predictor(swapped).tokenizer.vocab_size == infer.Predictor(model_dir).tokenizer.vocab_size
    with pytest.raises(albert.CheckpointError, match="was exported from another model than"):
        infer.Predictor(swapped, onnx=onnx_path)


def test_a_directory_without_weights_is_checked_on_its_head_and_tokenizer(exported, tmp_path):
    model_dir, onnx_path = exported
    bare = _copy(model_dir, tmp_path / "bare")
    (bare / "model.safetensors").unlink()  # deployed with its ONNX file only
    assert infer.Predictor(bare, onnx=onnx_path).classify(["a text"])
    data = json.loads((bare / "config.json").read_text())
    data["id2label"] = {"0": "pos", "1": "neg", "2": "neutral"}  # the head's labels swapped
    data["label2id"] = {v: int(k) for k, v in data["id2label"].items()}
    (bare / "config.json").write_text(json.dumps(data))
    with pytest.raises(albert.CheckpointError, match="was exported from another model than"):
        infer.Predictor(bare, onnx=onnx_path)


def test_an_export_without_a_fingerprint_loads_with_a_warning(exported, tmp_path, caplog):
    import onnx

    model_dir, onnx_path = exported
    proto = onnx.load(str(onnx_path))
    kept = [p for p in proto.metadata_props if not p.key.startswith("albert_fingerprint")]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    old = tmp_path / "old.onnx"
    onnx.save(proto, str(old))
    with caplog.at_level(logging.WARNING, logger="albert"):
        assert infer.Predictor(model_dir, onnx=old).classify(["a text"])
    assert any("has no fingerprint" in r.getMessage() and str(old) in r.getMessage() for r in caplog.records)


def test_serve_refuses_a_mismatched_onnx_before_serving(exported, tmp_path, capsys, monkeypatch):
    pytest.importorskip("fastapi")
    import uvicorn

    model_dir, onnx_path = exported
    other = _copy(model_dir, tmp_path / "other")
    data = json.loads((other / "config.json").read_text())
    data["id2label"] = {"0": "neutral", "1": "pos", "2": "neg"}  # same shape, another head
    data["label2id"] = {v: int(k) for k, v in data["id2label"].items()}
    (other / "config.json").write_text(json.dumps(data))
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("served a mismatched ONNX file"))
    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: pytest.fail("served a mismatched ONNX file"))
    assert cli.main(["serve", "--model", str(other), "--onnx", str(onnx_path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "was exported from another model than" in err and "Traceback" not in err
