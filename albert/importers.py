"""Turn checkpoints from other toolkits into albert-lite models (and so into transformers-layout directories).

(Which TensorFlow variable is which parameter, and the model's shape from the variables: albert/tflayouts.py.)

Sources:
- TensorFlow checkpoints (read by tfcheckpoint.py, no TensorFlow needed) in three graph layouts, detected from the
  variable names: Google's ALBERT (``bert/encoder/transformer/group_G/inner_group_I/…``, also under TF-Hub's
  ``module/`` prefix), brightmart/albert_zh (``bert/embeddings/word_embeddings_2``, ``bert/encoder/layer_shared``)
  and Google's BERT (``bert/encoder/layer_N``: an ALBERT with E = H and one group per layer).
- transformers ``BertModel`` directories (any BERT head we have a counterpart for), imported the same way.

Every source variable ends up in exactly one bucket of the ImportReport: converted, an optimizer slot (skipped),
known but not used by the chosen model class, or unknown. Nothing is dropped silently and nothing unknown crashes.

Semantics follow what the source computed: TensorFlow's ``gelu`` is the tanh approximation, so a TF config that says
``gelu`` becomes ``gelu_new``; HF BERT's ``gelu`` is the exact erf GELU and stays ``gelu``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from albert import hub, modelcard, sbert, tasks
from albert.checkpoint import write_text
from albert.config import AlbertConfig, read_json_dict
from albert.errors import CheckpointError, ConfigError
from albert.hub import HubOptions
from albert.outputs import check_directory, claim_directory, finish_directory
from albert.tflayouts import ImportReport, build_config, detect_layout, map_names

log = logging.getLogger("albert")

# ----------------------------------------------------------------------------------------------------------------
# Choosing the model class and filling it
# ----------------------------------------------------------------------------------------------------------------
HEADS = ("auto", "model", "pretraining", "masked_lm", "classification", "multiple_choice", "qa")


def model_class_for(head: str, ours: set[str]):
    from albert import heads as H
    from albert import model as M

    classes: dict[str, Callable] = {
        "model": M.AlbertModel,
        "pretraining": M.AlbertForPreTraining,
        "masked_lm": M.AlbertForMaskedLM,
        "classification": H.AlbertForSequenceClassification,
        "multiple_choice": H.AlbertForMultipleChoice,
        "qa": H.AlbertForQuestionAnswering,
    }
    if head == "auto":
        if "qa_outputs.weight" in ours:
            head = "qa"
        elif "classifier.weight" in ours:
            head = "classification"
        elif "sop.weight" in ours:
            head = "pretraining"
        elif "mlm.dense.weight" in ours:
            head = "masked_lm"
        else:
            head = "model"
    if head not in classes:
        raise ConfigError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    return classes[head]


def build_model(
    tensors: dict[str, torch.Tensor],
    config: AlbertConfig,
    head: str,
    report: ImportReport,
    identity_projection: bool = False,
):
    """Instantiate the class for ``head`` and load ``tensors`` (our names, 'albert.'-prefixed encoder)."""
    cls = model_class_for(head, set(tensors))
    if cls.__name__ == "AlbertForMultipleChoice" and config.num_labels != 1:
        raise ConfigError(
            f"a multiple-choice head scores each choice with one output; the classifier has {config.num_labels}"
        )
    model = cls(config)
    own = model.state_dict()
    bare = cls.__name__ == "AlbertModel"
    if identity_projection and model_has(own, "projection.weight", bare):
        # BERT (and Google's graph when E == H) has no projection: ours becomes the identity.
        H = config.hidden_size
        tensors = {**tensors, "albert.projection.weight": torch.eye(H), "albert.projection.bias": torch.zeros(H)}
        report.notes.append("no embedding projection in the source (E = H): the projection is set to the identity")
    source_name = {ours: src for src, ours in report.converted.items()}
    state = {}
    for name, tensor in tensors.items():
        target = name.removeprefix("albert.") if bare else name
        if target not in own:
            if name in source_name:
                report.unused.append(source_name[name])
                del report.converted[source_name[name]]
            continue
        if tuple(tensor.shape) != tuple(own[target].shape):
            raise CheckpointError(
                f"{report.source}: '{name}' has shape {tuple(tensor.shape)}, the model built from the config expects "
                f"{tuple(own[target].shape)}"
            )
        state[target] = tensor
    missing = [k for k in own if k not in state]
    required = [k for k in missing if not k.startswith(model.optional_prefixes)]
    if required:
        raise CheckpointError(
            f"{report.source}: no value for {', '.join(required[:5])}" + (" …" if len(required) > 5 else "")
        )
    model.load_state_dict(state, strict=False)
    report.initialised = missing
    report.model_class = cls.__name__
    model.eval()
    return model


def model_has(own: dict[str, Any], name: str, bare: bool) -> bool:
    return (name if bare else "albert." + name) in own


# ----------------------------------------------------------------------------------------------------------------
# TensorFlow
# ----------------------------------------------------------------------------------------------------------------
def _find_next_to(prefix: Path, names: tuple[str, ...]) -> Path | None:
    for directory in (prefix.parent, prefix.parent.parent / "assets", prefix.parent / "assets"):
        for name in names:
            hits = sorted(directory.glob(name)) if directory.is_dir() else []
            if hits:
                return hits[0]
    return None


def import_tf(path: str | Path, config_path: str | Path | None = None, head: str = "auto"):
    """A TensorFlow checkpoint → (model, report). The config is ``config_path`` or the ``albert_config*.json`` /
    ``bert_config.json`` found next to the checkpoint (or in a TF-Hub module's ``assets/``)."""
    from albert.tfcheckpoint import TFCheckpoint

    ckpt = TFCheckpoint(path)
    names = ckpt.names()
    layout, prefix = detect_layout(names)
    report = ImportReport(source=str(ckpt.prefix), layout=layout, prefix=prefix)
    mapped, report.optimizer, report.unknown = map_names(names, layout, prefix)
    tensors: dict[str, torch.Tensor] = {}
    for name, (ours, transpose) in mapped.items():
        array = ckpt.read(name)
        if array.dtype != np.float32:
            array = array.astype(np.float32)
        tensor = torch.from_numpy(np.ascontiguousarray(array.T if transpose else array))
        tensors[ours] = tensor
        report.converted[name] = ours
    # torch-style shapes (out, in) for the config derivation
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if config_path is None:
        config_path = _find_next_to(ckpt.prefix, ("albert_config*.json", "bert_config*.json", "config.json"))
        if config_path is not None:
            report.notes.append(f"config read from {config_path}")
    config_data = read_json_dict(config_path) if config_path is not None else None
    config, notes = build_config(shapes, layout, config_data, str(config_path or ckpt.prefix), tensorflow=True)
    report.notes += notes
    layers, groups = config.num_hidden_layers, config.num_hidden_groups
    tf_groups = [int(i / layers * groups) for i in range(layers)]  # modeling.py's float formula
    ours = [int(i / (layers / groups)) for i in range(layers)]  # transformers' (and ours)
    if layout == "google" and tf_groups != ours:
        report.notes.append(
            f"WARNING: for {layers} layers in {groups} groups TensorFlow's modeling.py runs groups {tf_groups} but "
            f"transformers and albert-lite run {ours} (float rounding): outputs will differ from TensorFlow's"
        )
    identity = "albert.projection.weight" not in tensors and layout in ("google", "bert")
    if identity and config.embedding_size != config.hidden_size:
        raise CheckpointError(f"{ckpt.prefix}: no embedding_hidden_mapping_in, but E ≠ H in the config")
    model = build_model(tensors, config, head, report, identity_projection=identity)
    return model, report


def find_tokenizer_file(path: str | Path) -> Path | None:
    """The tokenizer shipped next to a checkpoint: a SentencePiece ``*.model`` or a WordPiece ``vocab*.txt``."""
    from albert.tfcheckpoint import resolve_prefix

    try:
        prefix = resolve_prefix(path)
    except CheckpointError:
        prefix = Path(path) / "x"
    return _find_next_to(prefix, ("*.model", "spiece.model", "vocab*.txt"))


# ----------------------------------------------------------------------------------------------------------------
# transformers BERT directories
# ----------------------------------------------------------------------------------------------------------------
_HF_BERT_LAYER = "encoder.layer.{g}."
HF_BERT_TABLE = [  # (ours, transformers BERT name); {p} is weight/bias
    ("albert.embeddings.word.weight", "embeddings.word_embeddings.weight"),
    ("albert.embeddings.position.weight", "embeddings.position_embeddings.weight"),
    ("albert.embeddings.token_type.weight", "embeddings.token_type_embeddings.weight"),
    ("albert.embeddings.norm.{p}", "embeddings.LayerNorm.{p}"),
    ("albert.groups.{g}.0.query.{p}", _HF_BERT_LAYER + "attention.self.query.{p}"),
    ("albert.groups.{g}.0.key.{p}", _HF_BERT_LAYER + "attention.self.key.{p}"),
    ("albert.groups.{g}.0.value.{p}", _HF_BERT_LAYER + "attention.self.value.{p}"),
    ("albert.groups.{g}.0.attention_out.{p}", _HF_BERT_LAYER + "attention.output.dense.{p}"),
    ("albert.groups.{g}.0.attention_norm.{p}", _HF_BERT_LAYER + "attention.output.LayerNorm.{p}"),
    ("albert.groups.{g}.0.ffn_in.{p}", _HF_BERT_LAYER + "intermediate.dense.{p}"),
    ("albert.groups.{g}.0.ffn_out.{p}", _HF_BERT_LAYER + "output.dense.{p}"),
    ("albert.groups.{g}.0.ffn_norm.{p}", _HF_BERT_LAYER + "output.LayerNorm.{p}"),
    ("albert.pooler.{p}", "pooler.dense.{p}"),
    ("mlm.dense.{p}", "cls.predictions.transform.dense.{p}"),
    ("mlm.norm.{p}", "cls.predictions.transform.LayerNorm.{p}"),
    ("mlm.bias", "cls.predictions.bias"),
    ("classifier.{p}", "classifier.{p}"),
    ("qa_outputs.{p}", "qa_outputs.{p}"),
]
_HF_BERT_TIED = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
_HF_BERT_CONFIG_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
    "pad_token_id",
    "id2label",
    "problem_type",
    "classifier_dropout",
)


def import_hf_bert(directory: str | Path, head: str = "auto"):
    """A transformers BERT directory → (ALBERT model with E = H, one group per layer, identity projection; report)."""
    from albert import checkpoint
    from albert.convert import _compile

    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a transformers checkpoint directory")
    data = checkpoint.read_config_dict(directory)
    if data.get("model_type") not in (None, "bert"):
        raise ConfigError(f"{directory / 'config.json'}: model_type is {data.get('model_type')!r}, expected 'bert'")
    if data.get("position_embedding_type", "absolute") != "absolute":
        raise ConfigError(
            f"{directory / 'config.json'}: position_embedding_type={data['position_embedding_type']!r}; only "
            "absolute position embeddings exist in ALBERT"
        )
    state = checkpoint.read_weights(directory)
    report = ImportReport(source=str(directory), layout="transformers-bert")
    tensors: dict[str, torch.Tensor] = {}
    rows = [(ours, _compile(theirs)) for ours, theirs in HF_BERT_TABLE]
    for key, tensor in state.items():
        body = key.removeprefix("bert.")
        if key in _HF_BERT_TIED:
            continue
        for ours, regex in rows:
            match = regex.match(body)
            if match:
                name = ours.format(**match.groupdict())
                tensors[name] = tensor.float()
                report.converted[key] = name
                break
        else:
            if key.endswith("position_ids") or key.endswith("token_type_ids"):
                continue  # buffers, not weights
            report.unknown.append(key + (" (BERT next-sentence head)" if "seq_relationship" in key else ""))
    decoder = state.get("cls.predictions.decoder.weight")
    if decoder is not None and not torch.equal(decoder.float(), tensors["albert.embeddings.word.weight"]):
        raise CheckpointError(f"{directory}: the MLM decoder is not tied to the word embeddings; ALBERT ties them")
    config_data = {k: data[k] for k in _HF_BERT_CONFIG_KEYS if k in data and data[k] is not None}
    if "classifier_dropout" in config_data:
        config_data["classifier_dropout_prob"] = config_data.pop("classifier_dropout")
    config_data.update(embedding_size=data["hidden_size"], num_hidden_groups=data["num_hidden_layers"])
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    config, notes = build_config(shapes, "bert", config_data, str(directory / "config.json"), tensorflow=False)
    report.notes += notes
    model = build_model(tensors, config, head, report, identity_projection=True)
    return model, report


# ----------------------------------------------------------------------------------------------------------------
# What `albert convert` and `albert inspect` run
# ----------------------------------------------------------------------------------------------------------------
SOURCES = ("auto", "tf", "bert")


def source_kind(path: str | Path) -> str:
    from albert.tfcheckpoint import is_tf_checkpoint

    if is_tf_checkpoint(path):
        return "tf"
    config = Path(path) / "config.json"
    if config.is_file() and read_json_dict(config).get("model_type") == "bert":
        return "bert"
    raise CheckpointError(
        f"{path}: neither a TensorFlow checkpoint (PREFIX.index + PREFIX.data-…) nor a transformers BERT directory"
    )


def load_tokenizer_file(path: str | Path):
    """A tokenizer from one file: SentencePiece ``*.model`` or a WordPiece vocabulary (any name)."""
    from albert.tokenizer import AlbertTokenizer, WordPieceTokenizer

    path = Path(path)
    if path.is_dir() or path.suffix == ".model":
        return AlbertTokenizer.from_pretrained(path)
    return WordPieceTokenizer(path)


def convert(
    source: str | Path,
    out: str | Path,
    kind: str = "auto",
    config: str | Path | None = None,
    tokenizer: str | Path | None = None,
    head: str = "auto",
    hub_options: HubOptions | None = None,
    overwrite: bool = False,
    origin: str | None = None,
) -> ImportReport:
    """Convert ``source`` into a transformers-layout directory ``out`` (config.json, model.safetensors, tokenizer,
    a README.md model card that names the source: albert/modelcard.py). ``source`` may be a release archive (.tar.gz,
    .zip, …) or a hub id of a transformers BERT repository. ``out`` must be missing or empty unless ``overwrite``
    (albert/outputs.py). ``origin``: how the card names the source (default: ``source``'s name, or its hub id)."""
    from albert import archives
    from albert.tfcheckpoint import is_tf_checkpoint

    inputs = [source, config, tokenizer]
    check_directory(out, "--out", overwrite, inputs)  # before reading a 500 MB checkpoint
    if archives.is_archive(source):
        with archives.opened(source, near=out) as (root, inner):
            shown = f"{Path(source).name}:{inner.relative_to(root)}"
            report = convert(inner, out, kind, config, tokenizer, head, hub_options, overwrite, origin or shown)
            # name files as they are in the archive, not by the temporary directory that is about to vanish
            report.source = f"{source}:{inner.relative_to(root)}"
            report.notes = [n.replace(f"{root}/", f"{source}:") for n in report.notes]
            report.notes.insert(0, f"{source}: converted {inner.relative_to(root)}")
        return report
    base_model, origin = modelcard.base_model_of(str(source)), origin or modelcard.shown_name(str(source))
    if kind == "bert" or (kind == "auto" and not is_tf_checkpoint(source)):
        source = hub.local_or_hub(source, "all", hub_options)
    kind = source_kind(source) if kind == "auto" else kind
    if kind == "tf":
        model, report = import_tf(source, config, head)
    elif kind == "bert":
        if config is not None:
            raise ConfigError("--config is for TensorFlow checkpoints; a BERT directory has its own config.json")
        model, report = import_hf_bert(source, head)
        pooling, normalize, notes = sbert.settings(source)
        model.config.sentence_pooling, model.config.sentence_normalize = pooling, normalize
        report.notes += notes
        if pooling is not None:
            report.notes.append(
                f"sentence-transformers pooling recorded: {pooling}" + (", L2-normalised" if normalize else "")
            )
    else:
        raise ConfigError(f"unknown source kind {kind!r}; choose one of {', '.join(SOURCES)}")
    tokenizer_path = tokenizer
    if tokenizer_path is None:
        tokenizer_path = Path(source) if kind == "bert" and (Path(source) / "vocab.txt").is_file() else None
        tokenizer_path = tokenizer_path or (find_tokenizer_file(source) if kind == "tf" else None)
        if tokenizer_path is not None:
            report.notes.append(f"tokenizer read from {tokenizer_path}")
    if tokenizer_path is not None:
        tok = load_tokenizer_file(tokenizer_path)
        if tok.vocab_size > model.config.vocab_size:
            raise ConfigError(
                f"{tokenizer_path}: the tokenizer has {tok.vocab_size} entries but the model only "
                f"{model.config.vocab_size} word embeddings; is it the model's own tokenizer?"
            )
        if tok.vocab_size < model.config.vocab_size:
            report.notes.append(f"tokenizer has {tok.vocab_size} entries, the model {model.config.vocab_size} rows")
    else:
        tok = None
        report.notes.append("no tokenizer found next to the checkpoint: pass --tokenizer to include one")
    work = claim_directory(out, "--out", overwrite, inputs)  # a staging directory when replacing one
    if tok is not None:
        tok.save_pretrained(work)
    model.save_pretrained(work)
    tag = tasks.pipeline_tag({"architectures": [model.hf_class_name], "problem_type": model.config.problem_type})
    card = modelcard.converted(report, model, tok, Path(out).name, origin, tag, base_model)
    write_text(work / modelcard.FILENAME, card)
    finish_directory(out, work)
    return report


def describe(path: str | Path) -> dict[str, Any]:
    """What a checkpoint holds: format, detected layout, and every variable's name, dtype and shape."""
    from albert import archives, checkpoint
    from albert.tfcheckpoint import TFCheckpoint, is_tf_checkpoint

    path = Path(path)
    if archives.is_archive(path):
        with archives.opened(path) as (root, inner):
            info = describe(inner)
            info["path"] = f"{path}:{Path(info['path']).relative_to(root)}"
        return info
    if is_tf_checkpoint(path):
        ckpt = TFCheckpoint(path)
        names = ckpt.names()
        try:
            layout, prefix = detect_layout(names)
            mapped, optimizer, _ = map_names(names, layout, prefix)
        except CheckpointError:
            layout, prefix, mapped, optimizer = "unknown", "", {}, []
        variables = [
            {
                "name": n,
                "dtype": ckpt.entries[n].dtype,
                "shape": list(ckpt.entries[n].shape),
                "role": "weight" if n in mapped else "optimizer" if n in optimizer else "unknown",
            }
            for n in names
        ]
        # Someone may share only the .index (and config): the listing needs nothing else, so say what is absent
        # rather than refusing.
        shards = [ckpt.shard_path(i) for i in range(ckpt.num_shards)]
        return {
            "path": str(ckpt.prefix),
            "format": f"tensorflow ({ckpt.num_shards} shard(s))",
            "layout": layout,
            "prefix": prefix,
            "variables": variables,
            "missing_data_files": [p.name for p in shards if not p.is_file()],
        }
    if path.is_file() and path.suffix in (".safetensors", ".bin"):
        state, config = checkpoint.read_weight_file(path), {}
    else:
        state, config = checkpoint.read_weights(path), checkpoint.read_config_dict(path)
    kind = config.get("model_type", "unknown")
    arch = ",".join(config.get("architectures") or [])
    variables = [
        {"name": k, "dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape), "role": "weight"}
        for k, v in sorted(state.items())
    ]
    return {
        "path": str(path),
        "format": "transformers" if config else path.suffix.lstrip("."),
        "layout": f"{kind} {arch}".strip(),
        "prefix": "",
        "variables": variables,
    }
