"""Fast batched inference, shared by `albert predict`, the Python API, `albert serve` and ONNX.

Batches are length-sorted and token-budgeted, on PyTorch or onnxruntime alike (albert/engines.py), so prediction is
fast without changing any result.

``Predictor`` wraps a fine-tuned directory (and optionally its ONNX export) and its task (albert/tasks): `albert
predict` and the server call ``Predictor.predict``, which hands the items to the task; nothing here knows tasks by
name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np
import torch

from albert import tasks
from albert.engines import (  # noqa: F401 - re-exported: infer.run_rows etc. are public names
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MAX_TOKENS_GPU,
    OUTPUTS,
    TOKEN_OUTPUTS,
    Forward,
    OnnxForward,
    TorchForward,
    as_forward,
    pad_batch,
    plan_batches,
    plan_passes,
    run_rows,
)
from albert.errors import AlbertError, CheckpointError, ConfigError
from albert.hub import HubOptions
from albert.readers import records, stdin_lines  # noqa: F401 - infer.stdin_lines is public
from albert.tasks.base import DECODING
from albert.tasks.fill_mask import MASKED_LM

log = logging.getLogger("albert")


# ----------------------------------------------------------------------------------------------------------------
# A fine-tuned directory, ready to predict
# ----------------------------------------------------------------------------------------------------------------
def fit_length(max_length: int | None, positions: int, model_dir, name: str = "--max-seq-length") -> int:
    """Tokens per text: ``max_length`` if the model has that many positions (an error naming both otherwise, not an
    index error inside torch); None → 128 or the model's positions, whichever is fewer."""
    if max_length is None:
        return min(128, positions)
    if max_length > positions:
        raise AlbertError(
            f"{name} {max_length} exceeds the {positions} positions of {model_dir} "
            f"(max_position_embeddings): pass {positions} or less"
        )
    return max_length


def check_vocabulary(tokenizer, vocab_size: int, model_dir) -> None:
    """A tokenizer must fit the model it feeds: ids past the embedding table would crash deep inside torch (or
    onnxruntime), and a much smaller tokenizer is almost surely another model's (silently wrong predictions)."""
    if tokenizer.vocab_size > vocab_size:
        raise CheckpointError(
            f"{model_dir}: the tokenizer has {tokenizer.vocab_size} entries but the model only {vocab_size} word "
            "embeddings; is it the model's own tokenizer?"
        )
    if vocab_size - tokenizer.vocab_size > 128:  # more than padding the table to a round size explains
        log.warning(
            "%s: the tokenizer has %d entries, the model %d word embeddings; is it the model's own tokenizer?",
            model_dir,
            tokenizer.vocab_size,
            vocab_size,
        )


class Predictor:
    """A model directory (config.json, weights, tokenizer) and an engine: PyTorch, or ``onnx=`` an export of it.

    The directory's task (albert/tasks) decides what one item is and what its prediction is: ``predict(items)``
    serves every task; ``classify``, ``tag``, ``answer`` and ``embed`` are the same calls under the names of the
    Python API, each checking that the model is of that kind."""

    def __init__(
        self,
        model_dir: str | Path,
        onnx: str | Path | None = None,
        max_length: int | None = None,
        max_tokens: int | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        threads: int | None = None,
        device: str = "cpu",
        hub_options: HubOptions | None = None,
        length_flag: str = "--max-seq-length",  # how the caller's user names max_length, for the error message
        model_flag: str | None = None,  # how the caller's user names model_dir (--model), for the error message
        task: str | None = None,  # another task the model can do than its own ("embedding" for a masked LM)
        top_k: int = 5,  # fill-mask: candidates per mask
        targets: Sequence[str] | None = None,  # fill-mask: score only these tokens
    ):
        from albert import checkpoint, hub
        from albert.config import AlbertConfig, read_json_dict
        from albert.fields import THREADS
        from albert.tokenizer import AlbertTokenizer

        if threads is not None and not THREADS.allows(threads):  # before any work: torch crashes on a huge count
            raise AlbertError(f"threads {threads}: this machine has {THREADS.high:g} CPUs; use 1 to {THREADS.high:g}")

        self.model_dir = hub.local_or_hub(model_dir, "all", hub_options, flag=model_flag)
        data = checkpoint.read_config_dict(self.model_dir)
        self.config = AlbertConfig.from_dict(data, source=str(self.model_dir / "config.json"))
        self.architecture = (self.config.architectures or ["AlbertModel"])[0]
        trained = self.model_dir / "finetune_config.json"  # the settings `albert finetune` trained it with
        self.trained = read_json_dict(trained) if trained.is_file() else {}
        decoding = self.model_dir / DECODING  # what fine-tuning tuned on dev for prediction (QA: the null threshold)
        self.decoding = read_json_dict(decoding) if decoding.is_file() else {}
        try:
            self.family = tasks.get(tasks.for_model(data, self.trained.get("task")))
            if task is not None and task != self.family.name:
                asked = tasks.get(task)
                if not asked.accepts(data) or self.trained.get("task"):
                    raise ConfigError(f"a {self.architecture} does {self.family.name}, not {task}")
                self.family = asked
        except ConfigError as err:
            raise AlbertError(f"{self.model_dir}: {err}") from None
        if top_k < 1:
            raise AlbertError(f"top_k {top_k}: at least 1 candidate per mask")
        self.options = {"top_k": top_k, "targets": list(targets) if targets else None}
        self.length_flag = length_flag  # how errors about a text's length name the setting
        self.task = self.family.name
        self.tokenizer = AlbertTokenizer.from_pretrained(self.model_dir)
        check_vocabulary(self.tokenizer, self.config.vocab_size, self.model_dir)
        # the length it was fine-tuned with, or the one a TextClassifier saved in config.json, as evaluate takes it
        max_length = max_length or self.trained.get("max_seq_length") or data.get("max_seq_length")
        self.max_length = fit_length(max_length, self.config.max_position_embeddings, self.model_dir, length_flag)
        if max_tokens is None:
            max_tokens = (
                DEFAULT_MAX_TOKENS_GPU if str(device).startswith("cuda") and onnx is None else DEFAULT_MAX_TOKENS
            )
        self.batching = {"max_tokens": max_tokens, "max_batch": max_batch}
        self.labels = [self.config.labels_by_id()[i] for i in range(self.config.num_labels)]
        self.forward = self._onnx(onnx, threads) if onnx is not None else self._torch(threads, device)

    def _torch(self, threads: int | None, device: str) -> TorchForward:
        from albert import heads, model

        if threads:
            torch.set_num_threads(threads)
        name = self.family.model_class(self.architecture)
        loaded = (getattr(heads, name, None) or getattr(model, name)).from_pretrained(self.model_dir)
        if any(n.endswith("pooler.weight") for n in loaded.load_report.initialised):
            loaded.pooler = None  # an MLM directory has no trained pooler: embed by mean pooling instead
        return TorchForward(loaded.to(device), device)

    def _onnx(self, onnx: str | Path, threads: int | None) -> OnnxForward:
        from albert import checkpoint

        if not self.family.exportable:
            raise AlbertError(f"a {self.task} model predicts with PyTorch only (no ONNX export); drop --onnx")
        forward = OnnxForward(onnx, threads)
        if forward.kind and forward.kind != self.family.model_class(self.architecture):
            hint = f" (export it with --task {self.task})" if self.architecture in MASKED_LM else ""
            raise CheckpointError(
                f"{onnx} was exported from a {forward.kind}, the directory holds a {self.architecture} and this "
                f"prediction needs a {self.family.model_class(self.architecture)}{hint}"
            )
        shape = ("vocab_size", "hidden_size", "num_hidden_layers", "num_labels", "max_position_embeddings")
        exported = forward.exported_config
        differ = [
            f"{k} {exported[k]} vs {getattr(self.config, k)}"
            for k in shape
            if k in exported and exported[k] != getattr(self.config, k)
        ]
        if differ:
            raise CheckpointError(
                f"{onnx} was exported from another model than {self.model_dir} ({'; '.join(differ)}): pass the "
                "directory it was exported from"
            )
        # Same shape is not same model: the export records its directory's fingerprint (weights, head, tokenizer;
        # albert/checkpoint.py) and any other directory is refused. A directory without weight files (deployed with
        # its ONNX file only) is checked on its head and tokenizer.
        if forward.fingerprint is None:
            log.warning(
                "%s has no fingerprint (exported by an older albert-lite): it cannot be checked to come from %s; "
                "export it again with `albert export` to have it checked",
                onnx,
                self.model_dir,
            )
            return forward
        has_weights = any((self.model_dir / n).is_file() for n in checkpoint.WEIGHT_FILES + checkpoint.INDEX_FILES)
        recorded = forward.fingerprint if has_weights else forward.fingerprint_without_weights
        own = checkpoint.fingerprint(self.model_dir, weights=has_weights)
        if recorded != own:
            raise CheckpointError(
                f"{onnx} was exported from another model than {self.model_dir} (fingerprint {recorded} vs {own}): "
                f"export {self.model_dir} again with `albert export`"
            )
        return forward

    @property
    def routes(self) -> list[str]:
        return [self.family.route]

    def predict(self, items: Sequence[Any]) -> list[Any]:
        """One prediction per item (a text, or a dict of the task's fields: question and context for QA)."""
        return self.family.predict(self, list(items))

    def classify(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> list[dict[str, Any]]:
        self._require("predict")
        return self.family.predict(self, list(texts), list(pairs) if pairs is not None else None)

    def tag(self, texts: Sequence[str]) -> list[list[dict]]:
        self._require("ner")
        return self.predict(texts)

    def answer(self, questions: Sequence[str], contexts: Sequence[str]) -> list[dict[str, Any]]:
        self._require("qa")
        return self.predict([{"question": q, "context": c} for q, c in zip(questions, contexts, strict=True)])

    def fill_mask(
        self, texts: Sequence[str], top_k: int | None = None, targets: Sequence[str] | None = None
    ) -> list[list[dict[str, Any]]]:
        """transformers' ``pipeline("fill-mask")(texts, top_k=, targets=)`` for each text: its fills (a list per mask
        when it has several); ``top_k`` and ``targets`` default to the predictor's."""
        self._require("fill-mask")
        top_k = self.options["top_k"] if top_k is None else top_k
        targets = self.options["targets"] if targets is None else list(targets)
        return self.family.fill(self, list(texts), top_k, targets)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self._require("embed")
        return self.family.vectors(self, list(texts))

    def _require(self, route: str) -> None:
        if route not in self.routes:
            raise AlbertError(f"a {self.architecture} cannot serve '{route}' (it serves: {', '.join(self.routes)})")


class RowProgress:
    """A forward that moves a progress bar as each model call finishes, so `albert predict --input` shows progress
    within a chunk of thousands of rows. Where a record is one model row (a text) the bar counts rows as the model
    runs them; elsewhere (QA windows, a summary's sentences) it counts records written (``wrote``)."""

    def __init__(self, inner, bar, rows_are_records: bool):
        self.inner, self.bar, self.rows_are_records = inner, bar, rows_are_records
        self.rows = self.written = 0

    def __call__(self, inputs):
        outputs = self.inner(inputs)
        self.rows += len(inputs["input_ids"])
        self._show()
        return outputs

    def wrote(self) -> None:
        self.written += 1
        self._show()

    def _show(self) -> None:
        done = max(self.rows, self.written) if self.rows_are_records else self.written
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)

    def __getattr__(self, name):  # .model, .kind, .token_outputs, ... of the engine
        return getattr(self.inner, name)


# ----------------------------------------------------------------------------------------------------------------
# Streaming files larger than memory
# ----------------------------------------------------------------------------------------------------------------
PREDICTION = "prediction"  # where `albert predict` puts a record's prediction, beside the record's own fields


def iter_records(
    path: str | Path, columns: dict[str, str] | Sequence[str] = ("text",), item: type = str
) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
    """(line number, the record as given, {field: value}) from .txt (one text per line, blank ones too: the record is
    {field: line}), .jsonl, .csv or .tsv, streamed so files larger than memory pass through. ``columns`` maps each
    field to the column it is read from (the one the model was trained with; a record without that column may give
    the field under its own name). A record without a field, with a value of another type than ``item`` (a task's
    TypedDict) says, or with a column named PREDICTION (where the prediction will go: it would be replaced) is an
    error naming its line."""
    path = Path(path)
    columns = dict(columns) if isinstance(columns, dict) else {c: c for c in columns}
    if not path.is_file():
        raise AlbertError(f"{path}: no such input file")
    plain = path.suffix.lower() not in (".csv", ".tsv", ".jsonl")
    if plain and len(columns) != 1:
        raise AlbertError(f"{path}: a plain text file has one text per line; use .jsonl or .csv for {tuple(columns)}")
    hints = get_type_hints(item) if item is not str else dict.fromkeys(columns, str)
    for number, record in records(path, blank_lines=True):
        if plain:  # one text per line, whatever the column is called
            field = next(iter(columns))
            yield number, {field: record["text"]}, {field: record["text"]}
            continue
        if PREDICTION in record:
            raise AlbertError(
                f"{path}:{number}: has a field {PREDICTION!r}, where albert predict writes each record's prediction; "
                "rename that field"
            )
        values = {}
        for field, column in columns.items():
            name = column if column in record else field if field in record else None
            if name is None:
                wanted = repr(column) + (f" (or {field!r})" if field != column else "")
                raise AlbertError(f"{path}:{number}: no field {wanted} (fields: {', '.join(record)})")
            value, kind = record[name], hints.get(field, str)
            fits = (
                isinstance(value, str)
                if kind is str
                else isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
            if not fits:
                shown = "a string" if kind is str else "a list of strings"
                raise AlbertError(f"{path}:{number}: field {name!r} must be {shown}, found {type(value).__name__}")
            values[field] = value
        yield number, record, values


def predict_stream(
    predictor: Predictor, records: Iterator[tuple[dict[str, Any], Any]], chunk: int = 4096
) -> Iterator[dict[str, Any]]:
    """Predict an unbounded stream of (record, item) pairs in chunks (memory holds one chunk), in input order: each
    record as given with its item's prediction under PREDICTION (what `albert predict` writes; the prediction is the
    object ``Predictor.predict`` returns and `albert serve` answers)."""
    buffer: list[tuple[dict[str, Any], Any]] = []

    def flush():
        results = predictor.predict([item for _, item in buffer])
        return ({**record, PREDICTION: result} for (record, _), result in zip(buffer, results, strict=True))

    for pair in records:
        buffer.append(pair)
        if len(buffer) >= chunk:
            yield from flush()
            buffer = []
    if buffer:
        yield from flush()
