"""`albert convert`: TensorFlow checkpoints of every layout and transformers BERT directories become ALBERT models
that compute what the source computed.

References: TensorFlow's own outputs for each fixture (reference.npz, computed by scripts/make_tf_fixtures.py with
the layout's graph) and transformers' ALBERT / BERT loaded with the same arrays through their own state dicts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT

import albert
from albert import cli, importers
from albert.errors import CheckpointError, ConfigError
from albert.heads import AlbertForQuestionAnswering, AlbertForSequenceClassification
from albert.tfcheckpoint import TFCheckpoint

FIXTURES = ROOT / "tests" / "fixtures" / "tf"
TF1 = ROOT / "tests" / "fixtures" / "tf1"  # written by TensorFlow 1.15; *_snappy have snappy-compressed index blocks
INPUTS = {  # the inputs scripts/make_tf_fixtures.py fed TensorFlow
    "input_ids": torch.tensor([[2, 17, 9, 33, 41, 3, 25, 8, 3], [2, 5, 60, 12, 3, 44, 3, 0, 0]]),
    "attention_mask": torch.tensor([[1] * 9, [1] * 7 + [0] * 2]),
    "token_type_ids": torch.tensor([[0] * 6 + [1] * 3, [0] * 5 + [1] * 2 + [0] * 2]),
}
REAL = INPUTS["attention_mask"].bool()
ATOL = 1e-5


def _close(ours: torch.Tensor, reference, where=None) -> None:
    ours, reference = ours.detach().numpy(), np.asarray(reference)
    if where is not None:
        ours, reference = ours[where.numpy()], reference[where.numpy()]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=ATOL)


def _convert(name: str, tmp_path, *extra: str, root=FIXTURES):
    out = tmp_path / name
    assert cli.main(["convert", str(root / name), "--out", str(out), *extra]) == 0
    return out


# ----------------------------------------------------------------------------------------------------------------
# Against TensorFlow's own outputs
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "root, name, cls",
    [
        (FIXTURES, "google_pretrain", albert.AlbertForPreTraining),
        (FIXTURES, "hub_classifier", AlbertForSequenceClassification),
        (FIXTURES, "google_zh_squad", AlbertForQuestionAnswering),
        (FIXTURES, "brightmart_tiny", albert.AlbertForPreTraining),
        (FIXTURES, "brightmart_preln", albert.AlbertForPreTraining),
        (FIXTURES, "bert_tf", albert.AlbertForMaskedLM),
        (TF1, "google_pretrain", albert.AlbertForPreTraining),
        (TF1, "hub_classifier", AlbertForSequenceClassification),
        (TF1, "google_zh_squad", AlbertForQuestionAnswering),
        (TF1, "brightmart_tiny", albert.AlbertForPreTraining),
        (TF1, "google_zh_squad_snappy", AlbertForQuestionAnswering),
        (TF1, "brightmart_tiny_snappy", albert.AlbertForPreTraining),
    ],
    ids=lambda v: getattr(v, "name", None) if isinstance(v, Path) else None,
)
def test_converted_model_computes_what_tensorflow_computed(root, name, cls, tmp_path):
    out = _convert(name, tmp_path, root=root)
    model = cls.from_pretrained(out).eval()
    assert model.load_report.unused == []
    ref = np.load(root / name / "reference.npz")
    with torch.no_grad():
        encoder = model.albert(**INPUTS)
        result = model(**INPUTS)
    _close(encoder.last_hidden_state, ref["sequence_output"], REAL)
    if encoder.pooler_output is not None:
        _close(encoder.pooler_output, ref["pooled_output"])
    if "mlm_logits" in ref:
        logits = getattr(result, "prediction_logits", None)
        _close(result.logits if logits is None else logits, ref["mlm_logits"], REAL)
    if "sop_logits" in ref and hasattr(result, "sop_logits"):
        _close(result.sop_logits, ref["sop_logits"])
    if "classifier_logits" in ref:
        _close(result.logits, ref["classifier_logits"])
    if "start_logits" in ref:
        _close(result.start_logits, ref["start_logits"], REAL)
        _close(result.end_logits, ref["end_logits"], REAL)


# ----------------------------------------------------------------------------------------------------------------
# Against transformers' ALBERT loaded with the same arrays through its own state dict
# ----------------------------------------------------------------------------------------------------------------
_HF4_REWRITES = [  # transformers 4.x load_tf_weights_in_albert, in its order (reference/albert-anchors.md §2.5)
    ("module/", ""),
    ("ffn_1", "ffn"),
    ("bert/", "albert/"),
    ("attention_1", "attention"),
    ("transform/", ""),
    ("LayerNorm_1", "full_layer_layer_norm"),
    ("LayerNorm", "attention/LayerNorm"),
    ("transformer/", ""),
    ("intermediate/dense/", ""),
    ("ffn/intermediate/output/dense/", "ffn_output/"),
    ("/output/", "/"),
    ("/self/", "/"),
    ("pooler/dense", "pooler"),
    ("cls/predictions", "predictions"),
    ("predictions/attention", "predictions"),
    ("embeddings/attention", "embeddings"),
    ("inner_group_", "albert_layers/"),
    ("group_", "albert_layer_groups/"),
]


def _transformers_state(ckpt: TFCheckpoint) -> dict[str, torch.Tensor]:
    """Rename TF variables the way transformers 4.x did (plus cls/squad → qa_outputs, which it never handled)."""
    state = {}
    for tf_name in ckpt.names():
        if any(s in tf_name for s in ("adam_m", "adam_v", "global_step", "answer_class")):
            continue
        name = tf_name
        for old, new in _HF4_REWRITES:
            name = name.replace(old, new)
        if "/" not in name and name in ("output_bias", "output_weights"):
            name = "classifier/" + name
        name = name.replace("seq_relationship/output_", "sop_classifier/classifier/").replace("cls/", "")
        name = name.replace("squad/output_", "qa_outputs/")
        parts = name.split("/")
        leaf = {"kernel": "weight", "gamma": "weight", "beta": "bias", "output_bias": "bias"}.get(parts[-1], parts[-1])
        leaf = {"output_weights": "weight", "weights": "weight"}.get(leaf, leaf)
        if parts[-1].endswith("_embeddings"):
            parts.append("weight")
        else:
            parts[-1] = leaf
        array = ckpt.read(tf_name)
        state[".".join(parts)] = torch.from_numpy(array.T.copy() if tf_name.endswith("kernel") else array)
    return state


@pytest.mark.parametrize(
    "name, hf_class, ours",
    [
        ("google_pretrain", "AlbertForPreTraining", albert.AlbertForPreTraining),
        ("hub_classifier", "AlbertForSequenceClassification", AlbertForSequenceClassification),
        ("google_zh_squad", "AlbertForQuestionAnswering", AlbertForQuestionAnswering),
    ],
)
def test_converted_model_equals_transformers_with_the_same_arrays(name, hf_class, ours, tmp_path):
    import transformers

    out = _convert(name, tmp_path)
    model = ours.from_pretrained(out).eval()
    hf_config = transformers.AlbertConfig(**model.config.to_dict())
    reference = getattr(transformers, hf_class)(hf_config).eval()
    state = _transformers_state(TFCheckpoint(FIXTURES / name))
    if hf_class == "AlbertForQuestionAnswering":
        state = {k: v for k, v in state.items() if not k.startswith("albert.pooler")}  # no pooler in this class
    missing, unexpected = reference.load_state_dict(state, strict=False)
    assert unexpected == [] and set(missing) <= {"predictions.decoder.weight", "predictions.decoder.bias"}
    # ... and transformers reads our output directory as its own.
    loaded = getattr(transformers, hf_class).from_pretrained(out).eval()
    with torch.no_grad():
        ref_out, ours_out, loaded_out = reference(**INPUTS), model(**INPUTS), loaded(**INPUTS)
    for ref_name, our_name in [
        ("prediction_logits", "prediction_logits"),
        ("sop_logits", "sop_logits"),
        ("logits", "logits"),
        ("start_logits", "start_logits"),
        ("end_logits", "end_logits"),
    ]:
        if getattr(ref_out, ref_name, None) is not None:
            per_token = tuple(getattr(ref_out, ref_name).shape[:2]) == tuple(REAL.shape)
            where = REAL if per_token else None
            _close(getattr(ours_out, our_name), getattr(ref_out, ref_name).numpy(), where)
            _close(getattr(loaded_out, ref_name), getattr(ref_out, ref_name).numpy(), where)


# ----------------------------------------------------------------------------------------------------------------
# What the conversion reports and how it fails
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["google_pretrain", "hub_classifier", "google_zh_squad", "bert_tf"])
def test_every_variable_is_accounted_for(name):
    model, report = importers.import_tf(FIXTURES / name)
    names = set(TFCheckpoint(FIXTURES / name).names())
    buckets = [
        set(report.converted),
        set(report.optimizer),
        set(report.unused),
        {u.split(" (")[0] for u in report.unknown},
    ]
    assert set().union(*buckets) == names
    assert sum(map(len, buckets)) == len(names)  # and each in exactly one bucket
    if name == "google_pretrain":
        assert len(report.optimizer) == 2 * 80 + 1 and "global_step" in report.optimizer
        assert report.layout == "google" and report.prefix == ""
    if name == "hub_classifier":
        assert report.prefix == "module/" and model.config.num_labels == 3
    if name == "google_zh_squad":
        assert report.unknown == ["answer_class/dense/bias", "answer_class/dense/kernel"]
        assert report.unused == ["bert/pooler/dense/bias", "bert/pooler/dense/kernel"]
    if name == "bert_tf":
        assert all("next-sentence" in u for u in report.unknown) and len(report.unknown) == 2


def test_tf_gelu_becomes_the_tanh_gelu_and_relu_stays(tmp_path):
    english = json.loads((_convert("google_pretrain", tmp_path) / "config.json").read_text())
    chinese = json.loads((_convert("google_zh_squad", tmp_path) / "config.json").read_text())
    assert english["hidden_act"] == "gelu_new" and chinese["hidden_act"] == "relu"
    assert english["num_hidden_groups"] == 2 and english["inner_group_num"] == 2
    assert english["embedding_size"] == 16 and english["hidden_size"] == 32


def test_brightmart_switches_are_written_and_tokenizer_is_copied(tmp_path):
    out = _convert("brightmart_preln", tmp_path, "--tokenizer", str(FIXTURES / "google_zh_squad" / "vocab.txt"))
    config = json.loads((out / "config.json").read_text())
    assert config["embedding_layout"] == "brightmart" and config["ln_type"] == "preln"
    tok = albert.AlbertTokenizer.from_pretrained(out)
    assert tok.convert_tokens_to_ids(["[CLS]", "一"]) == [2, 5]


def test_config_that_contradicts_the_weights_is_refused(tmp_path):
    wrong = tmp_path / "wrong.json"
    config = json.loads((FIXTURES / "google_pretrain" / "albert_config.json").read_text())
    wrong.write_text(json.dumps({**config, "hidden_size": 64}))
    with pytest.raises(ConfigError, match="config says hidden_size=64, but the checkpoint's weights have 32"):
        importers.import_tf(FIXTURES / "google_pretrain", config_path=wrong)


def test_tf_hub_module_directory_brings_its_own_config_and_tokenizer(tmp_path):
    src, hub = FIXTURES / "google_zh_squad", tmp_path / "hub"
    (hub / "variables").mkdir(parents=True)
    (hub / "assets").mkdir()
    for f in src.glob("model.ckpt.*"):
        shutil.copy(f, hub / "variables" / f.name.replace("model.ckpt", "variables"))
    shutil.copy(src / "albert_config.json", hub / "assets")
    shutil.copy(src / "vocab.txt", hub / "assets")
    report = importers.convert(hub, tmp_path / "out")
    assert any("assets/albert_config.json" in n for n in report.notes)
    assert (tmp_path / "out" / "vocab.txt").read_text() == (src / "vocab.txt").read_text()


def test_missing_config_asks_for_one(tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for f in (FIXTURES / "hub_classifier").glob("model.ckpt.*"):
        shutil.copy(f, ckpt)
    assert cli.main(["convert", str(ckpt / "model.ckpt"), "--out", str(tmp_path / "o")]) == 2
    assert "num_hidden_layers is not stored in the weights; pass the model's config file" in capsys.readouterr().err


def test_head_choice_and_its_errors(tmp_path):
    model, _ = importers.import_tf(FIXTURES / "google_pretrain", head="model")
    assert type(model).__name__ == "AlbertModel"
    model, report = importers.import_tf(FIXTURES / "google_pretrain", head="masked_lm")
    assert "cls/seq_relationship/output_weights" in report.unused
    with pytest.raises(ConfigError, match="multiple-choice head scores each choice with one output"):
        importers.import_tf(FIXTURES / "hub_classifier", head="multiple_choice")


def test_tokenizer_bigger_than_the_model_is_refused(tmp_path, brown_tokenizer):
    with pytest.raises(ConfigError, match="the tokenizer has 8000 entries but the model only 64 word embeddings"):
        importers.convert(FIXTURES / "google_pretrain", tmp_path / "o", tokenizer=brown_tokenizer.model_file)


def test_not_a_model_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["convert", str(FIXTURES / "dtypes"), "--out", str(tmp_path / "o")]) == 2
    assert "no ALBERT or BERT variables found" in capsys.readouterr().err
    assert cli.main(["convert", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "neither a TensorFlow checkpoint" in capsys.readouterr().err


def test_inspect_lists_variables_and_layout(capsys, tmp_path):
    assert cli.main(["inspect", str(FIXTURES / "google_pretrain")]) == 0
    text = capsys.readouterr().out
    assert "layout: google" in text and "161 optimizer, 80 weight" in text
    assert "bert/encoder/transformer/group_1/inner_group_1/attention_1/self/query/kernel" in text
    assert "adam_m" not in text  # optimizer slots only with --all
    assert cli.main(["inspect", "--json", str(FIXTURES / "dtypes")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {v["name"]: v["dtype"] for v in info["variables"]}["bf16"] == "bfloat16"
    out = _convert("hub_classifier", tmp_path)
    assert cli.main(["inspect", str(out)]) == 0
    assert "albert AlbertForSequenceClassification" in capsys.readouterr().out


def test_inspect_needs_only_the_index(capsys, tmp_path):
    """Shared without its data files (say just .index + config), a TF 1.x snappy checkpoint still lists fully."""
    src = tmp_path / "shared"
    src.mkdir()
    for f in ("model.ckpt.index", "albert_config.json"):
        shutil.copy(TF1 / "brightmart_tiny_snappy" / f, src / f)
    assert cli.main(["inspect", str(src)]) == 0
    text = capsys.readouterr().out
    assert "layout: brightmart" in text and "bert/embeddings/word_embeddings_2" in text
    assert "missing data files (1): model.ckpt.data-00000-of-00001" in text
    assert cli.main(["inspect", "--json", str(TF1 / "google_pretrain")]) == 0
    assert json.loads(capsys.readouterr().out)["missing_data_files"] == []
    assert cli.main(["convert", str(src), "--out", str(tmp_path / "o")]) == 2
    assert "model.ckpt.data-00000-of-00001: checkpoint data shard is missing" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# BERT from transformers
# ----------------------------------------------------------------------------------------------------------------
def _tiny_bert(cls_name: str, directory, **kw):
    import transformers

    config = transformers.BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        **kw,
    )
    torch.manual_seed(0)
    model = getattr(transformers, cls_name)(config).eval()
    with torch.no_grad():  # move LayerNorms and biases off their init so a swapped name would show
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(directory)
    return model


def _bert_batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 99, (3, 11), generator=g)
    mask = torch.ones(3, 11, dtype=torch.long)
    mask[1, 8:] = 0
    mask[2, 5:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": (torch.arange(11) > 5).long().expand(3, -1)}


@pytest.mark.parametrize(
    "bert_class, field, ours",
    [
        ("BertModel", "last_hidden_state", albert.AlbertModel),
        ("BertForMaskedLM", "logits", albert.AlbertForMaskedLM),
        ("BertForSequenceClassification", "logits", AlbertForSequenceClassification),
    ],
)
def test_bert_becomes_an_unshared_albert_with_identical_outputs(bert_class, field, ours, tmp_path):
    import transformers

    bert = _tiny_bert(bert_class, tmp_path / "bert", **({"num_labels": 4} if "Sequence" in bert_class else {}))
    assert cli.main(["convert", "--from", "bert", str(tmp_path / "bert"), "--out", str(tmp_path / "albert")]) == 0
    model = ours.from_pretrained(tmp_path / "albert").eval()
    config = model.config
    assert (config.num_hidden_groups, config.embedding_size, config.hidden_act) == (3, 32, "gelu")
    encoder = model if isinstance(model, albert.AlbertModel) else model.albert
    torch.testing.assert_close(encoder.projection.weight, torch.eye(32), rtol=0, atol=0)
    batch = _bert_batch()
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        expected, got = getattr(bert(**batch), field), getattr(model(**batch), field)
        if field != "logits" or "Masked" in bert_class:
            expected, got = expected[real], got[real]
        torch.testing.assert_close(got, expected, rtol=0, atol=ATOL)
        if bert_class == "BertModel":  # transformers' own ALBERT reads the result and agrees with BERT too
            hf_albert = transformers.AlbertModel.from_pretrained(tmp_path / "albert").eval()
            torch.testing.assert_close(hf_albert(**batch).pooler_output, bert(**batch).pooler_output, rtol=0, atol=ATOL)
            torch.testing.assert_close(model(**batch).pooler_output, bert(**batch).pooler_output, rtol=0, atol=ATOL)


def test_bert_next_sentence_head_is_reported_not_converted(tmp_path):
    _tiny_bert("BertForPreTraining", tmp_path / "bert")
    model, report = importers.import_hf_bert(tmp_path / "bert")
    assert type(model).__name__ == "AlbertForMaskedLM"
    assert any("seq_relationship" in u and "next-sentence" in u for u in report.unknown)


def test_bert_with_an_untied_decoder_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    bert = tmp_path / "bert"
    _tiny_bert("BertForMaskedLM", bert)
    state = load_file(bert / "model.safetensors")
    state["cls.predictions.decoder.weight"] = torch.randn(99, 32)  # a decoder of its own: ALBERT cannot hold it
    save_file(state, bert / "model.safetensors")
    with pytest.raises(CheckpointError, match="the MLM decoder is not tied to the word embeddings"):
        importers.import_hf_bert(bert)


def test_bert_with_relative_positions_is_refused(tmp_path):
    bert = tmp_path / "bert"
    _tiny_bert("BertModel", bert)
    config = json.loads((bert / "config.json").read_text())
    (bert / "config.json").write_text(json.dumps({**config, "position_embedding_type": "relative_key"}))
    with pytest.raises(ConfigError, match="only absolute position embeddings"):
        importers.import_hf_bert(bert)
    with pytest.raises(CheckpointError, match="not a transformers checkpoint directory"):
        importers.import_hf_bert(tmp_path / "none")
