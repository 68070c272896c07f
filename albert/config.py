"""AlbertConfig: the model's hyper-parameters as a typed dataclass, and the released presets as data.

Field names are the keys of ALBERT's ``config.json`` (Google's ``albert_config.json`` and transformers' layout alike),
so a config file reads and writes without a translation table. ``__post_init__`` rejects shapes the forward pass
cannot run, naming the field, what was expected and what was found.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from albert.errors import ConfigError
from albert.readers import json_file

log = logging.getLogger("albert")

# Every parameter-free activation transformers' ACT2FN knows (model.py holds the functions). prelu and xielu have
# learnable parameters inside the activation, which no ALBERT checkpoint layout has a place for.
ACTIVATIONS = (
    "gelu_new",
    "gelu_pytorch_tanh",
    "gelu_python_tanh",
    "gelu_accurate",
    "gelu_fast",
    "gelu",
    "gelu_python",
    "gelu_10",
    "quick_gelu",
    "relu",
    "relu2",
    "relu6",
    "leaky_relu",
    "silu",
    "swish",
    "mish",
    "hardswish",
    "tanh",
    "sigmoid",
    "laplace",
    "sqrtsoftplus",
    "linear",
)
EMBEDDING_LAYOUTS = ("albert", "brightmart")
SENTENCE_POOLING = (None, "cls", "mean", "max", "mean_sqrt_len")
LN_TYPES = ("postln", "preln")


@dataclass
class AlbertConfig:
    vocab_size: int = 30000
    embedding_size: int = 128  # E: the factorised embedding width
    hidden_size: int = 768  # H
    num_hidden_layers: int = 12
    num_hidden_groups: int = 1  # groups of shared weights; layer i uses group int(i / (layers / groups))
    inner_group_num: int = 1  # distinct layers inside one group, run in sequence
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu_new"  # the official TF `gelu` is the tanh approximation, i.e. transformers' gelu_new
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    classifier_dropout_prob: float = 0.1
    pad_token_id: int = 0
    bos_token_id: int = 2
    eos_token_id: int = 3
    tie_word_embeddings: bool = True  # the MLM decoder is the word-embedding table; False gives it its own [V, E]
    # Switches for graphs other than Google's, set by `albert convert` (transformers has neither, so checkpoints that
    # use them load in albert-lite only; with the defaults the config.json is exactly transformers' ALBERT):
    # "brightmart" projects word vectors E→H (no bias) before adding H-wide position/type embeddings and LayerNorm,
    # and its MLM head maps back through that projection (brightmart/albert_zh modeling.py).
    embedding_layout: str = "albert"  # albert | brightmart
    ln_type: str = "postln"  # postln (the paper, Google) | preln (brightmart's LayerNorm-first layers); their key
    # How Predictor.embed and /embed turn token vectors into one sentence vector: None = the pooler where it was
    # trained, else the mean; "cls" | "mean" | "max" | "mean_sqrt_len" as a sentence-transformers Pooling module
    # says (recorded by `albert convert --from bert`, see sbert.py), then L2-normalised if sentence_normalize.
    sentence_pooling: str | None = None
    sentence_normalize: bool = False
    # Task-head fields, as transformers writes them.
    num_labels: int = 2
    id2label: dict[int, str] | None = None
    problem_type: str | None = None  # single_label_classification | multi_label_classification | regression
    architectures: list[str] | None = None
    # Keys we do not use (e.g. Google's net_structure_type, gap_size) are kept so a round trip loses nothing.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "embedding_size",
            "hidden_size",
            "num_hidden_layers",
            "num_hidden_groups",
            "inner_group_num",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
            "num_labels",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"config field '{name}' must be a positive integer, found {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"config field 'hidden_size' ({self.hidden_size}) must be divisible by 'num_attention_heads' "
                f"({self.num_attention_heads})"
            )
        # Any number of groups is accepted, as transformers and the official code accept it: layers share them in
        # order, and groups past the last layer's simply go unused.
        if self.hidden_act not in ACTIVATIONS:
            why = " (an activation with learnable parameters)" if self.hidden_act in ("prelu", "xielu") else ""
            raise ConfigError(
                f"config field 'hidden_act' must be one of {', '.join(ACTIVATIONS)}; found {self.hidden_act!r}{why}"
            )
        if self.sentence_pooling not in SENTENCE_POOLING:
            raise ConfigError(
                f"config field 'sentence_pooling' must be one of {SENTENCE_POOLING}, found {self.sentence_pooling!r}"
            )
        if not self.tie_word_embeddings and self.embedding_layout == "brightmart":
            raise ConfigError("config field 'tie_word_embeddings' must be true with embedding_layout 'brightmart'")
        if self.embedding_layout not in EMBEDDING_LAYOUTS:
            raise ConfigError(
                f"config field 'embedding_layout' must be one of {EMBEDDING_LAYOUTS}, found {self.embedding_layout!r}"
            )
        if self.ln_type not in LN_TYPES:
            raise ConfigError(f"config field 'ln_type' must be one of {LN_TYPES}, found {self.ln_type!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout_prob"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
                raise ConfigError(f"config field '{name}' must be a probability in [0, 1), found {value!r}")
        for name in ("layer_norm_eps", "initializer_range"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")):
                raise ConfigError(f"config field '{name}' must be a positive number, found {value!r}")
        if self.problem_type not in (None, "single_label_classification", "multi_label_classification", "regression"):
            raise ConfigError(f"config field 'problem_type' is not a known problem type: {self.problem_type!r}")
        if self.id2label is not None:
            self.id2label = {int(k): str(v) for k, v in self.id2label.items()}
            if sorted(self.id2label) != list(range(len(self.id2label))):
                raise ConfigError(f"config field 'id2label' must have keys 0..n-1, found {sorted(self.id2label)}")
            self.num_labels = len(self.id2label)

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in self.labels_by_id().items()}

    def labels_by_id(self) -> dict[int, str]:
        return self.id2label if self.id2label is not None else {i: f"LABEL_{i}" for i in range(self.num_labels)}

    # -- presets ---------------------------------------------------------------------------------------------------
    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> AlbertConfig:
        """A released configuration by name (``albert-base-v2``; the ``albert/`` hub prefix is accepted)."""
        key = name.removeprefix("albert/")
        if key not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
        return cls(**{**PRESETS[key], **overrides})

    # -- dict / JSON ----------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> AlbertConfig:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known and k not in _DERIVED_KEYS}
        for key in extra:  # kept for the round trip; but a near-miss of one of our fields is a typo worth a word
            near = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
            if near and key not in _FOREIGN_NEAR_MISSES:
                log.warning("%s: unknown key %r is ignored (did you mean %r?)", source, key, near[0])
        if "num_labels" not in data and data.get("id2label"):
            kwargs["num_labels"] = len(data["id2label"])
        try:
            return cls(**kwargs, extra=extra)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
        except TypeError as err:  # e.g. a string where a number belongs
            raise ConfigError(f"{source}: {err}") from None

    @classmethod
    def from_json_file(cls, path: str | Path) -> AlbertConfig:
        return cls.from_dict(read_json_dict(path), source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """The transformers-compatible ``config.json`` content."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        id2label = self.labels_by_id()
        data["id2label"] = {str(k): v for k, v in id2label.items()}
        data["label2id"] = self.label2id
        data["model_type"] = "albert"
        if data["problem_type"] is None:
            del data["problem_type"]
        if data["architectures"] is None:
            del data["architectures"]
        for name, default in (
            ("embedding_layout", "albert"),
            ("ln_type", "postln"),
            ("sentence_pooling", None),
            ("sentence_normalize", False),
        ):
            if data[name] == default:  # keep the file identical to transformers' for the standard graph
                del data[name]
        return {**self.extra, **data}

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def num_flops_per_token(self, seq_len: int) -> float:
        """Forward FLOPs per token of the encoder (2 per multiply-add): projection, per-layer GEMMs, attention."""
        h, e, f = self.hidden_size, self.embedding_size, self.intermediate_size
        per_layer = 2 * (4 * h * h + 2 * h * f) + 2 * 2 * seq_len * h  # QKV+out, FFN, scores and weighted sum
        return 2 * e * h + self.num_hidden_layers * per_layer


def read_json_dict(path: str | Path) -> dict[str, Any]:
    """A config file's JSON object, or a ConfigError naming the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    return json_file(path, ConfigError)


# Keys transformers writes that are derived from fields (or describe the file), not configuration of their own.
# Keys other libraries write (transformers' BertConfig, bert-base-chinese's pooler_*) that look like near-misses of
# ours but are not typos.
_FOREIGN_NEAR_MISSES = {"classifier_dropout", "pooler_num_attention_heads"}
_DERIVED_KEYS = {"label2id", "model_type", "transformers_version", "dtype", "torch_dtype"}


def _preset(h: int, layers: int, heads: int, ffn: int, dropout: float = 0.0, **kw: Any) -> dict[str, Any]:
    base = dict(
        hidden_size=h,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    return {**base, **kw}


# The released configurations (google-research/albert tarballs; transformers hub configs). English models use the
# tanh GELU the TF code computed, whatever transformers' v1 configs say; v1 had dropout 0.1 except xxlarge, v2 none.
# Chinese models (Google's *_zh) use the 21,128-entry WordPiece vocab and ReLU (google-research/albert#154).
PRESETS: dict[str, dict[str, Any]] = {
    "albert-base-v1": _preset(768, 12, 12, 3072, dropout=0.1),
    "albert-large-v1": _preset(1024, 24, 16, 4096, dropout=0.1),
    "albert-xlarge-v1": _preset(2048, 24, 16, 8192, dropout=0.1),
    "albert-xxlarge-v1": _preset(4096, 12, 64, 16384),
    "albert-base-v2": _preset(768, 12, 12, 3072),
    "albert-large-v2": _preset(1024, 24, 16, 4096),
    "albert-xlarge-v2": _preset(2048, 24, 16, 8192),
    "albert-xxlarge-v2": _preset(4096, 12, 64, 16384),
    "albert-base-zh": _preset(768, 12, 12, 3072, vocab_size=21128, hidden_act="relu"),
    "albert-large-zh": _preset(1024, 24, 16, 4096, vocab_size=21128, hidden_act="relu"),
    "albert-xlarge-zh": _preset(2048, 24, 16, 8192, vocab_size=21128, hidden_act="relu"),
    "albert-xxlarge-zh": _preset(4096, 12, 64, 16384, vocab_size=21128, hidden_act="relu"),
    # brightmart's albert_tiny shape (4 layers, H=312): a small model for CPUs, tests and demos.
    "albert-tiny": _preset(312, 4, 12, 1248),
    "albert-tiny-zh": _preset(312, 4, 12, 1248, vocab_size=21128),
}
