"""Checkpoint directories: what loads, what is reported, what fails and how, and that writes are atomic."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_batch, tiny_config
from safetensors.torch import load_file, save_file

import albert
from albert import CheckpointError
from albert.checkpoint import read_weights

transformers = pytest.importorskip("transformers")


def _hf(cls_name: str, cfg, tmp_path, seed=0):
    torch.manual_seed(seed)
    model = getattr(transformers, cls_name)(transformers.AlbertConfig(**cfg.to_dict())).eval()
    model.save_pretrained(tmp_path)
    return model


def test_masked_lm_checkpoint_into_a_classifier_reports_new_and_unused_keys(tmp_path):
    cfg = tiny_config()
    mlm = _hf("AlbertForMaskedLM", cfg, tmp_path)  # the layout of the hub checkpoints: no pooler, no SOP
    clf = albert.AlbertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    report = clf.load_report
    assert sorted(report.initialised) == [
        "albert.pooler.bias",
        "albert.pooler.weight",
        "classifier.bias",
        "classifier.weight",
    ]
    assert sorted(report.unused) == [
        "predictions.LayerNorm.bias",
        "predictions.LayerNorm.weight",
        "predictions.bias",
        "predictions.dense.bias",
        "predictions.dense.weight",
    ]
    assert clf.config.num_labels == 5 and clf.classifier.out_features == 5
    batch = make_batch(cfg)
    with torch.no_grad():
        torch.testing.assert_close(
            clf.albert(**batch).last_hidden_state, mlm.albert(**batch).last_hidden_state, atol=1e-5, rtol=0
        )


def test_bare_encoder_checkpoint_loads_into_a_head_and_back(tmp_path):
    cfg = tiny_config()
    encoder = _hf("AlbertModel", cfg, tmp_path / "enc")  # transformers writes it without the "albert." prefix
    qa = albert.AlbertForQuestionAnswering.from_pretrained(tmp_path / "enc")
    assert qa.load_report.initialised == ["qa_outputs.weight", "qa_outputs.bias"]
    assert qa.load_report.unused == ["pooler.bias", "pooler.weight"]  # QA has no pooler, as in transformers
    qa.save_pretrained(tmp_path / "qa")
    back = albert.AlbertModel.from_pretrained(tmp_path / "qa")
    assert back.load_report.unused == ["qa_outputs.bias", "qa_outputs.weight"]
    assert back.load_report.initialised == ["pooler.weight", "pooler.bias"]
    batch = make_batch(cfg)
    with torch.no_grad():
        torch.testing.assert_close(
            back(**batch).last_hidden_state, encoder(**batch).last_hidden_state, atol=1e-5, rtol=0
        )


def test_round_trip_is_exact_and_keeps_labels(tmp_path):
    cfg = tiny_config(id2label={0: "neg", 1: "neutral", 2: "pos"})
    model = albert.AlbertForSequenceClassification(cfg)
    model.save_pretrained(tmp_path)
    again = albert.AlbertForSequenceClassification.from_pretrained(tmp_path)
    assert again.config.id2label == {0: "neg", 1: "neutral", 2: "pos"}
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architectures"] == ["AlbertForSequenceClassification"] and saved["label2id"]["pos"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]  # no temp files left


def test_pytorch_bin_with_tied_decoder_keys(tmp_path):
    """Older transformers saved pytorch_model.bin with predictions.decoder.* copies of the tied weights."""
    cfg = tiny_config(num_labels=2)
    theirs = _hf("AlbertForPreTraining", cfg, tmp_path)
    (tmp_path / "model.safetensors").unlink()
    state = theirs.state_dict()
    assert "predictions.decoder.weight" in state
    torch.save(state, tmp_path / "pytorch_model.bin")
    ours = albert.AlbertForPreTraining.from_pretrained(tmp_path).eval()
    assert ours.load_report.unused == [] and ours.load_report.initialised == []
    batch = make_batch(cfg)
    with torch.no_grad():
        torch.testing.assert_close(
            ours(**batch).prediction_logits, theirs(**batch).prediction_logits, atol=1e-5, rtol=0
        )


def test_sharded_checkpoint(tmp_path):
    cfg = tiny_config()
    model = albert.AlbertForTokenClassification(cfg)
    model.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    (tmp_path / "model.safetensors").unlink()
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for shard, names in shards.items():
        save_file({k: state[k] for k in names}, tmp_path / shard)
    weight_map = {k: shard for shard, names in shards.items() for k in names}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    again = albert.AlbertForTokenClassification.from_pretrained(tmp_path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name


# -- failure modes ---------------------------------------------------------------------------------------------------
def test_missing_required_key_is_named(tmp_path):
    albert.AlbertForSequenceClassification(tiny_config()).save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    del state["albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"1 required parameter\(s\) missing .*albert_layers\.0\.ffn\.weight"):
        albert.AlbertForSequenceClassification.from_pretrained(tmp_path)


def test_wrong_shape_names_key_expected_and_found(tmp_path):
    albert.AlbertModel(tiny_config()).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["intermediate_size"] = 40
    (tmp_path / "config.json").write_text(json.dumps(config))
    key = r"'encoder\.albert_layer_groups\.0\.albert_layers\.0\.ffn\.weight'"
    expected = key + r" has shape \(37, 32\), the model expects \(40, 32\)"
    with pytest.raises(CheckpointError, match=expected):
        albert.AlbertModel.from_pretrained(tmp_path)


def test_truncated_weights_file(tmp_path):
    albert.AlbertModel(tiny_config()).save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors: cannot read weights, the file is truncated or corrupt"
    ):
        albert.AlbertModel.from_pretrained(tmp_path)


def test_missing_files_and_bad_config(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere: no such directory"):
        albert.AlbertModel.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="no config.json"):
        albert.AlbertModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(tiny_config().to_json_string())
    with pytest.raises(CheckpointError, match="no weights found"):
        albert.AlbertModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"hidden_size": 30, "num_attention_heads": 4}')
    with pytest.raises(albert.ConfigError, match=r"config\.json: config field 'hidden_size' \(30\)"):
        albert.AlbertModel.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="no weights found"):
        read_weights(tmp_path)


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    model = albert.AlbertModel(tiny_config())
    model.save_pretrained(tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr("safetensors.torch.save_file", crash)
    with torch.no_grad():
        model.projection.weight.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
