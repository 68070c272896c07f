"""AlbertConfig: presets match the released models, bad configs fail clearly, JSON round trips."""

from __future__ import annotations

import json

import pytest
import torch

import albert
from albert import AlbertConfig, ConfigError

# Encoder + pooler parameters of the released models (anchors §1.2, counted from transformers' AlbertModel).
RELEASED = {
    "albert-base-v2": 11_683_584,
    "albert-large-v2": 17_683_968,
    "albert-xlarge-v2": 58_724_864,
    "albert-xxlarge-v2": 222_595_584,
    "albert-base-v1": 11_683_584,
    "albert-xxlarge-v1": 222_595_584,
}


@pytest.mark.parametrize("name", list(RELEASED))
def test_preset_parameter_counts_match_the_released_models(name):
    with torch.device("meta"):  # no memory is spent on xxlarge's 222M parameters
        model = albert.AlbertModel(AlbertConfig.from_name(name))
    assert model.num_parameters() == RELEASED[name]


def test_pretraining_model_count_includes_tied_decoder_once():
    with torch.device("meta"):
        model = albert.AlbertForPreTraining(AlbertConfig.from_name("albert-base-v2"))
    assert model.num_parameters() == 11_813_810  # transformers' AlbertForPreTraining, tied decoder counted once


def test_preset_facts():
    base = AlbertConfig.from_name("albert/albert-base-v2")
    assert (base.vocab_size, base.embedding_size, base.max_position_embeddings, base.type_vocab_size) == (
        30000,
        128,
        512,
        2,
    )
    assert base.hidden_act == "gelu_new" and base.hidden_dropout_prob == 0.0
    assert AlbertConfig.from_name("albert-base-v1").hidden_dropout_prob == 0.1
    assert AlbertConfig.from_name("albert-xxlarge-v1").hidden_dropout_prob == 0.0
    assert AlbertConfig.from_name("albert-xlarge-v2").num_attention_heads == 16
    zh = AlbertConfig.from_name("albert-base-zh")
    assert (zh.vocab_size, zh.hidden_act) == (21128, "relu")


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="albert-base-v2"):
        AlbertConfig.from_name("albert-huge")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"hidden_size": 30, "num_attention_heads": 4},
            r"'hidden_size' \(30\) must be divisible by 'num_attention_heads' \(4\)",
        ),
        ({"hidden_act": "swishy"}, r"'hidden_act' must be one of .* found 'swishy'"),
        ({"hidden_act": "prelu"}, r"found 'prelu' \(an activation with learnable parameters\)"),
        ({"tie_word_embeddings": False, "embedding_layout": "brightmart"}, r"'tie_word_embeddings' must be true"),
        ({"hidden_dropout_prob": 1.5}, r"'hidden_dropout_prob' must be a probability"),
        ({"vocab_size": 0}, r"'vocab_size' must be a positive integer, found 0"),
        ({"num_hidden_layers": "12"}, r"'num_hidden_layers' must be a positive integer, found '12'"),
    ],
)
def test_bad_configs_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        AlbertConfig(**overrides)


def test_bad_config_file_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 30, "num_attention_heads": 4}))
    with pytest.raises(ConfigError, match=str(path)):
        AlbertConfig.from_json_file(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        AlbertConfig.from_json_file(path)


def test_json_round_trip_keeps_unknown_keys(tmp_path):
    data = AlbertConfig.from_name("albert-base-v2").to_dict()
    data.update(net_structure_type=0, gap_size=0, id2label={"0": "neg", "1": "pos"})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    cfg = AlbertConfig.from_json_file(path)
    assert cfg.id2label == {0: "neg", 1: "pos"} and cfg.num_labels == 2 and cfg.label2id == {"neg": 0, "pos": 1}
    again = cfg.to_dict()
    assert again["net_structure_type"] == 0 and again["gap_size"] == 0
    assert AlbertConfig.from_dict(again) == cfg


def test_transformers_reads_our_config():
    transformers = pytest.importorskip("transformers")
    ours = AlbertConfig.from_name("albert-large-v2", id2label={0: "a", 1: "b", 2: "c"})
    theirs = transformers.AlbertConfig(**ours.to_dict())
    for key in (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "embedding_size",
        "num_hidden_groups",
        "inner_group_num",
        "hidden_act",
        "classifier_dropout_prob",
    ):
        assert getattr(theirs, key) == getattr(ours, key), key
    assert theirs.num_labels == 3 and theirs.id2label[2] == "c"


def test_activation_table_matches_transformers():
    """Every name the config accepts has a function, and each computes what transformers' ACT2FN computes."""
    transformers = pytest.importorskip("transformers")
    import torch

    from albert.config import ACTIVATIONS
    from albert.model import _ACTIVATIONS

    assert set(_ACTIVATIONS) == set(ACTIVATIONS)
    assert set(ACTIVATIONS) == set(transformers.activations.ACT2CLS) - {"prelu", "xielu"}
    x = torch.linspace(-12, 12, 2001)
    for name in ACTIVATIONS:
        torch.testing.assert_close(_ACTIVATIONS[name](x), transformers.activations.ACT2FN[name](x), msg=name)


def test_layers_share_groups_as_transformers_assigns_them():
    """Groups need not divide layers (transformers and the official code accept that); the float formula decides."""
    import albert

    model = albert.AlbertModel(
        AlbertConfig(
            hidden_size=8,
            num_attention_heads=2,
            embedding_size=4,
            intermediate_size=8,
            num_hidden_layers=18,
            num_hidden_groups=14,
        )
    )
    layers = [model.group_of_layer(i) for i in range(18)]
    assert layers == [int(i / (18 / 14)) for i in range(18)]
    assert layers[9] == 6  # the exact floor of 9·14/18 is 7; transformers' floating point gives 6
