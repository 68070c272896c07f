"""Name tables between our parameter names and other layouts, and pure state-dict → state-dict functions.

Each table is a list of ``(ours, theirs)`` patterns; ``{g}`` (group), ``{i}`` (layer inside a group) and ``{p}``
(``weight``/``bias``) are placeholders. The same table renames in both directions, so saving and loading cannot
drift apart. Readers of files live in checkpoint.py; here everything is dict in, dict out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache

import torch

_LAYER = "encoder.albert_layer_groups.{g}.albert_layers.{i}"

# Encoder names (inside AlbertModel). In a model with a head both sides carry the prefix "albert.".
HF_ENCODER_TABLE: list[tuple[str, str]] = [
    ("embeddings.word.weight", "embeddings.word_embeddings.weight"),
    ("embeddings.word_projection.weight", "embeddings.word_embeddings_2.weight"),  # ours only: brightmart layout
    ("embeddings.position.weight", "embeddings.position_embeddings.weight"),
    ("embeddings.token_type.weight", "embeddings.token_type_embeddings.weight"),
    ("embeddings.norm.{p}", "embeddings.LayerNorm.{p}"),
    ("projection.{p}", "encoder.embedding_hidden_mapping_in.{p}"),
    ("groups.{g}.{i}.query.{p}", _LAYER + ".attention.query.{p}"),
    ("groups.{g}.{i}.key.{p}", _LAYER + ".attention.key.{p}"),
    ("groups.{g}.{i}.value.{p}", _LAYER + ".attention.value.{p}"),
    ("groups.{g}.{i}.attention_out.{p}", _LAYER + ".attention.dense.{p}"),
    ("groups.{g}.{i}.attention_norm.{p}", _LAYER + ".attention.LayerNorm.{p}"),
    ("groups.{g}.{i}.ffn_in.{p}", _LAYER + ".ffn.{p}"),
    ("groups.{g}.{i}.ffn_out.{p}", _LAYER + ".ffn_output.{p}"),
    ("groups.{g}.{i}.ffn_norm.{p}", _LAYER + ".full_layer_layer_norm.{p}"),
    ("pooler.{p}", "pooler.{p}"),
]

# Head names (top level of a model with a head).
HF_HEAD_TABLE: list[tuple[str, str]] = [
    ("mlm.dense.{p}", "predictions.dense.{p}"),
    ("mlm.norm.{p}", "predictions.LayerNorm.{p}"),
    ("mlm.bias", "predictions.bias"),
    ("mlm.decoder", "predictions.decoder.weight"),  # only untied (tie_word_embeddings=False) models have it
    ("sop.{p}", "sop_classifier.classifier.{p}"),
    ("classifier.{p}", "classifier.{p}"),
    ("qa_outputs.{p}", "qa_outputs.{p}"),
    ("summary_scorer.{p}", "summary_scorer.{p}"),  # ours only: extractive summarisation
    ("answer_dense.{p}", "answer_dense.{p}"),  # ours only: the SQuAD 2.0 answerability classifier
    ("answer_out.{p}", "answer_out.{p}"),
]

# transformers keeps the MLM decoder as a Linear tied to predictions.bias and (unless tie_word_embeddings=False) to the
# word embeddings; we compute it from those directly, so in a tied model these keys carry nothing of their own.
HF_TIED_KEYS = ("predictions.decoder.bias",)
TIED_IF_ABSENT = ("mlm.decoder",)  # a checkpoint's decoder weight repeats the word embeddings when the model ties them

_PLACEHOLDERS = {"g": r"(?P<g>\d+)", "i": r"(?P<i>\d+)", "p": r"(?P<p>weight|bias)"}


@cache
def _compile(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w)\}", pattern)  # literal, name, literal, name, ...
    regex = "".join(re.escape(part) if n % 2 == 0 else _PLACEHOLDERS[part] for n, part in enumerate(parts))
    return re.compile(regex + r"\Z")


def _rename(key: str, table: list[tuple[str, str]], reverse: bool) -> str | None:
    for ours, theirs in table:
        source, target = (theirs, ours) if reverse else (ours, theirs)
        match = _compile(source).match(key)
        if match:
            return target.format(**match.groupdict())
    return None


def hf_key_to_ours(key: str) -> str | None:
    """The name of a transformers parameter in our model, or None if we have no such parameter."""
    if key.startswith("albert."):
        renamed = _rename(key.removeprefix("albert."), HF_ENCODER_TABLE, reverse=True)
        return None if renamed is None else "albert." + renamed
    return _rename(key, HF_HEAD_TABLE, reverse=True)


def our_key_to_hf(key: str) -> str:
    if key.startswith("albert."):
        renamed = _rename(key.removeprefix("albert."), HF_ENCODER_TABLE, reverse=False)
        renamed = None if renamed is None else "albert." + renamed
    else:
        renamed = _rename(key, HF_HEAD_TABLE, reverse=False)
    if renamed is None:
        raise KeyError(f"parameter {key!r} has no entry in the transformers name table")
    return renamed


def hf_names_to_ours(keys: Iterable[str], with_prefix: bool) -> dict[str, str | None]:
    """Map each transformers key to our parameter name (None: we have no such parameter).

    ``with_prefix`` says whether the target model nests its encoder under ``albert.`` (models with a head) or is
    a bare AlbertModel. Either kind of source is accepted: transformers writes a bare AlbertModel without prefix.
    The tied MLM decoder keys are left out: they repeat the word embeddings and ``predictions.bias``.
    """
    names: dict[str, str | None] = {}
    for key in keys:
        if key in HF_TIED_KEYS:
            continue
        full = key if key.startswith("albert.") or _rename(key, HF_HEAD_TABLE, True) else "albert." + key
        ours = hf_key_to_ours(full)
        if ours is not None and not with_prefix:
            ours = ours.removeprefix("albert.") if ours.startswith("albert.") else None
        names[key] = ours
    return names


def our_name_in_hf(key: str, with_prefix: bool) -> str:
    """transformers' name for one of our parameters, in the same convention (prefixed or bare)."""
    return our_key_to_hf(key) if with_prefix else our_key_to_hf("albert." + key).removeprefix("albert.")


def ours_to_hf(state: Mapping[str, torch.Tensor], with_prefix: bool) -> dict[str, torch.Tensor]:
    """Rename our state dict to transformers' names (a bare AlbertModel is written without the prefix)."""
    return {our_name_in_hf(key, with_prefix): tensor for key, tensor in state.items()}
