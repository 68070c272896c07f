"""TensorFlow checkpoint layouts: which graph wrote a checkpoint, and which of its variables is which of our parameters.

Three layouts, told apart by their variable names (see ``detect_layout``): Google's ALBERT (also under TF-Hub's
``module/`` prefix), brightmart/albert_zh and Google's BERT. ``map_names`` sorts every variable into one bucket of the
ImportReport (converted, optimizer slot, not used by the chosen class, unknown); ``build_config`` reads the model's
shape from the variables' shapes and checks a config file against them. albert/importers.py builds the model.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from albert.config import AlbertConfig
from albert.errors import CheckpointError, ConfigError

log = logging.getLogger("albert")

# ----------------------------------------------------------------------------------------------------------------
# Name tables: (our parameter or module, the source's variable or scope, kind). {g} and {i} are group / inner-group
# numbers (BERT's layer_N is group N). Kinds: "dense" = scope/kernel (transposed) + scope/bias; "norm" =
# scope/gamma + scope/beta; "tensor" = one variable as is; "transposed" = one variable, transposed.
# ----------------------------------------------------------------------------------------------------------------
_EMBEDDINGS = [
    ("embeddings.word.weight", "bert/embeddings/word_embeddings", "tensor"),
    ("embeddings.position.weight", "bert/embeddings/position_embeddings", "tensor"),
    ("embeddings.token_type.weight", "bert/embeddings/token_type_embeddings", "tensor"),
    ("embeddings.norm", "bert/embeddings/LayerNorm", "norm"),
]
_GOOGLE_LAYER = "bert/encoder/transformer/group_{g}/inner_group_{i}/"
GOOGLE_TABLE = _EMBEDDINGS + [
    ("projection", "bert/encoder/embedding_hidden_mapping_in", "dense"),
    ("groups.{g}.{i}.query", _GOOGLE_LAYER + "attention_1/self/query", "dense"),
    ("groups.{g}.{i}.key", _GOOGLE_LAYER + "attention_1/self/key", "dense"),
    ("groups.{g}.{i}.value", _GOOGLE_LAYER + "attention_1/self/value", "dense"),
    ("groups.{g}.{i}.attention_out", _GOOGLE_LAYER + "attention_1/output/dense", "dense"),
    ("groups.{g}.{i}.attention_norm", _GOOGLE_LAYER + "LayerNorm", "norm"),
    ("groups.{g}.{i}.ffn_in", _GOOGLE_LAYER + "ffn_1/intermediate/dense", "dense"),
    ("groups.{g}.{i}.ffn_out", _GOOGLE_LAYER + "ffn_1/intermediate/output/dense", "dense"),
    ("groups.{g}.{i}.ffn_norm", _GOOGLE_LAYER + "LayerNorm_1", "norm"),
    ("pooler", "bert/pooler/dense", "dense"),
]


def _bert_style_layer(ours: str, scope: str) -> list[tuple[str, str, str]]:
    """BERT's layer scopes, also used by brightmart (with the pre-LN norms under the same names)."""
    return [
        (ours + ".query", scope + "attention/self/query", "dense"),
        (ours + ".key", scope + "attention/self/key", "dense"),
        (ours + ".value", scope + "attention/self/value", "dense"),
        (ours + ".attention_out", scope + "attention/output/dense", "dense"),
        (ours + ".attention_norm", scope + "attention/output/LayerNorm", "norm"),
        (ours + ".ffn_in", scope + "intermediate/dense", "dense"),
        (ours + ".ffn_out", scope + "output/dense", "dense"),
        (ours + ".ffn_norm", scope + "output/LayerNorm", "norm"),
    ]


BRIGHTMART_TABLE = (
    _EMBEDDINGS
    + [("embeddings.word_projection.weight", "bert/embeddings/word_embeddings_2", "transposed")]
    + _bert_style_layer("groups.0.0", "bert/encoder/layer_shared/")
    + _bert_style_layer("groups.{g}.0", "bert/encoder/layer_{g}/")  # brightmart with sharing switched off
    + [("pooler", "bert/pooler/dense", "dense")]
)
BERT_TF_TABLE = (
    _EMBEDDINGS
    + _bert_style_layer("groups.{g}.0", "bert/encoder/layer_{g}/")
    + [("pooler", "bert/pooler/dense", "dense")]
)
HEAD_TABLE = [
    ("mlm.dense", "cls/predictions/transform/dense", "dense"),
    ("mlm.norm", "cls/predictions/transform/LayerNorm", "norm"),
    ("mlm.bias", "cls/predictions/output_bias", "tensor"),
    ("sop.weight", "cls/seq_relationship/output_weights", "tensor"),  # [2, H] is already (out, in)
    ("sop.bias", "cls/seq_relationship/output_bias", "tensor"),
    ("classifier.weight", "output_weights", "tensor"),  # run_classifier / race: [num_labels, H]
    ("classifier.bias", "output_bias", "tensor"),
    ("qa_outputs.weight", "cls/squad/output_weights", "tensor"),  # SQuAD 1.1: [2, H], start then end
    ("qa_outputs.bias", "cls/squad/output_bias", "tensor"),
]
TABLES = {"google": GOOGLE_TABLE, "brightmart": BRIGHTMART_TABLE, "bert": BERT_TF_TABLE}

# Optimizer state and bookkeeping written next to the weights (Adam/LAMB slots, step counters, loss scaling).
_OPTIMIZER = re.compile(
    r"(/|^)(adam_[mv]|Adam(_1)?|Momentum|lamb_[mv]|LAMB(_1)?)$|^global_step$|^(beta[12]_power|good_steps|"
    r"current_loss_scale)|AdamWeightDecayOptimizer|/ExponentialMovingAverage$"
)
_PART = {
    "dense": (("kernel", "weight", True), ("bias", "bias", False)),
    "norm": (("gamma", "weight", False), ("beta", "bias", False)),
}


def _expand(table: list[tuple[str, str, str]]) -> list[tuple[re.Pattern[str], str, bool]]:
    """Table → (regex over source names, our name template, transpose?) for single variables."""
    rows = []
    for ours, theirs, kind in table:
        parts = _PART.get(kind) or (("", "", kind == "transposed"),)
        for their_leaf, our_leaf, transpose in parts:
            source = theirs + ("/" + their_leaf if their_leaf else "")
            target = ours + ("." + our_leaf if our_leaf else "")
            regex = re.escape(source).replace(r"\{g\}", r"(?P<g>\d+)").replace(r"\{i\}", r"(?P<i>\d+)")
            rows.append((re.compile(regex + r"\Z"), target, transpose))
    return rows


# ----------------------------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class ImportReport:
    source: str
    layout: str
    prefix: str = ""
    model_class: str = ""
    converted: dict[str, str] = field(default_factory=dict)  # source name → our parameter
    optimizer: list[str] = field(default_factory=list)  # skipped: optimizer slots and step counters
    unused: list[str] = field(default_factory=list)  # known variables the chosen model class has no place for
    unknown: list[str] = field(default_factory=list)  # variables no table knows: listed, never dropped silently
    initialised: list[str] = field(default_factory=list)  # our parameters the source had no value for
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"source: {self.source}",
            f"layout: {self.layout}" + (f" (prefix '{self.prefix}')" if self.prefix else ""),
            f"model: {self.model_class}",
            f"converted: {len(self.converted)} variables",
            f"skipped optimizer state: {len(self.optimizer)} variables",
        ]
        if self.unused:
            lines.append(f"not used by {self.model_class}: " + ", ".join(self.unused))
        if self.unknown:
            lines.append(f"UNKNOWN (not converted): {len(self.unknown)} variables: " + ", ".join(self.unknown))
        if self.initialised:
            lines.append("newly initialised: " + ", ".join(self.initialised))
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Layout detection and name mapping
# ----------------------------------------------------------------------------------------------------------------
def detect_layout(names: list[str]) -> tuple[str, str]:
    """(layout, prefix): which graph wrote these variable names, and the scope prefix (TF-Hub's ``module/``)."""
    weights = [n for n in names if not _OPTIMIZER.search(n)]
    prefix = "module/" if any(n.startswith("module/bert/") for n in weights) else ""
    body = {n.removeprefix(prefix) for n in weights}
    if "bert/embeddings/word_embeddings_2" in body:
        return "brightmart", prefix
    if any(n.startswith("bert/encoder/transformer/group_") for n in body):
        return "google", prefix
    if any(n.startswith("bert/encoder/layer_") for n in body):
        return "bert", prefix
    sample = ", ".join(sorted(weights)[:6])
    raise CheckpointError(
        "no ALBERT or BERT variables found (expected bert/embeddings/… and bert/encoder/…); "
        f"the checkpoint has: {sample}"
    )


def map_names(names: list[str], layout: str, prefix: str) -> tuple[dict[str, tuple[str, bool]], list[str], list[str]]:
    """source name → (our name without the 'albert.' prefix for encoder parts, transpose?); optimizer; unknown."""
    encoder_rows, head_rows = _expand(TABLES[layout]), _expand(HEAD_TABLE)
    mapped: dict[str, tuple[str, bool]] = {}
    optimizer, unknown = [], []
    for name in names:
        if _OPTIMIZER.search(name):
            optimizer.append(name)
            continue
        body = name.removeprefix(prefix)
        hit = None
        for rows, is_head in ((encoder_rows, False), (head_rows, True)):
            for regex, target, transpose in rows:
                match = regex.match(body) or (regex.match(name) if is_head else None)  # heads sit outside module/
                if match:
                    ours = target.format(**match.groupdict())
                    hit = (ours if is_head else "albert." + ours, transpose)
                    break
            if hit:
                break
        if layout == "bert" and hit and hit[0].startswith("sop."):
            hit = None  # BERT's next-sentence head: NSP is not sentence order; reported, not converted
            unknown.append(name + " (BERT next-sentence head)")
            continue
        if hit:
            mapped[name] = hit
        else:
            unknown.append(name)
    return mapped, optimizer, unknown


# ----------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------
def _shapes_to_config(shapes: dict[str, tuple[int, ...]], layout: str) -> dict[str, int]:
    """The config fields the weights themselves fix (our names → value)."""
    get = shapes.get
    word = get("albert.embeddings.word.weight")
    if word is None:
        raise CheckpointError("the checkpoint has no word embeddings (bert/embeddings/word_embeddings)")
    out = {"vocab_size": word[0], "embedding_size": word[1]}
    if get("albert.embeddings.position.weight"):
        out["max_position_embeddings"] = get("albert.embeddings.position.weight")[0]
    if get("albert.embeddings.token_type.weight"):
        out["type_vocab_size"] = get("albert.embeddings.token_type.weight")[0]
    query = get("albert.groups.0.0.query.weight")
    if query is None:
        raise CheckpointError("the checkpoint has no attention weights for the first layer")
    out["hidden_size"] = query[0]
    if get("albert.groups.0.0.ffn_in.weight"):
        out["intermediate_size"] = get("albert.groups.0.0.ffn_in.weight")[0]
    groups = {int(m.group(1)) for n in shapes if (m := re.match(r"albert\.groups\.(\d+)\.(\d+)\.", n))}
    inner = {int(m.group(2)) for n in shapes if (m := re.match(r"albert\.groups\.(\d+)\.(\d+)\.", n))}
    out["num_hidden_groups"], out["inner_group_num"] = max(groups) + 1, max(inner) + 1
    if layout == "bert" or (layout == "brightmart" and out["num_hidden_groups"] > 1):
        out["num_hidden_layers"] = out["num_hidden_groups"]  # nothing shared: one group per layer
    if get("classifier.weight"):
        out["num_labels"] = get("classifier.weight")[0]
    return out


def build_config(
    shapes: dict[str, tuple[int, ...]],
    layout: str,
    config_data: dict[str, Any] | None,
    source: str,
    tensorflow: bool,
) -> tuple[AlbertConfig, list[str]]:
    """Merge the source's config file with what the weights fix; disagreements are errors naming both values."""
    data = dict(config_data or {})
    notes = []
    derived = _shapes_to_config(shapes, layout)
    for key, value in derived.items():
        if key == "num_labels":  # a classifier head fixes the label count; label names only if they agree
            if len(data.get("id2label") or {}) not in (0, value):
                data.pop("id2label")
        elif key in data and data[key] != value:
            raise ConfigError(f"{source}: config says {key}={data[key]}, but the checkpoint's weights have {value}")
        data[key] = value
    if layout == "bert":
        data["num_hidden_groups"] = data["num_hidden_layers"]
    if layout == "brightmart":
        data["embedding_layout"] = "brightmart"
        data.setdefault("ln_type", "postln")
    for key in ("num_hidden_layers", "num_attention_heads"):
        if key not in data:
            raise ConfigError(
                f"{source}: {key} is not stored in the weights; pass the model's config file (--config "
                "albert_config.json)"
            )
    if tensorflow and data.get("hidden_act") == "gelu":
        data["hidden_act"] = "gelu_new"
        notes.append("hidden_act 'gelu' → 'gelu_new': TensorFlow's modeling.py gelu is the tanh approximation")
    return AlbertConfig.from_dict(data, source=source), notes
