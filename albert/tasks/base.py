"""The task interface: what fine-tuning, evaluation, prediction and serving need of a task family.

A task is one object with a name; `albert finetune --task NAME` looks it up in ``REGISTRY`` (albert/tasks/__init__.py)
and calls only these methods, so adding a task is one new module with one subclass, registered there.

Training and evaluation (`albert finetune`, `albert evaluate`):

- ``read(path, cfg)``: the examples of a file, with errors that name the file and line;
- ``labels(train, dev, cfg, given)``: the label list the head predicts (checked against the dev set);
- ``encode(tokenizer, examples, labels, cfg)``: features with ``len()``, ``batch(rows)`` (tensors incl. labels) and
  ``truncated`` (how many examples were cut);
- ``evaluate(model, features, labels, cfg, device)``: metrics, among them ``selection_metric(metrics)`` (``metric``
  unless the task says), which picks the best checkpoint; ``decoding(metrics)``: settings tuned on the dev set that
  prediction must use to give what evaluate measured (QA: the SQuAD 2.0 null threshold), saved beside the model as
  ``decoding.json`` and read back by albert/infer.py as ``predictor.decoding``;
- ``head``: the model class name (in albert/heads.py or albert/model.py), ``problem_type`` for transformers' config.
- ``pipeline_tag``: the Hugging Face Hub's task tag of its models (their model card's, albert/modelcard.py).

- ``figure(model, data, labels, cfg, device, path)``: an optional picture of the evaluation (a confusion matrix).

Prediction and serving (`albert predict`, ``Predictor.predict``, `albert serve`):

- ``item``: what one prediction is asked for: ``str`` (a text) or a TypedDict of fields (a question and a context);
  ``fields()`` names them, the input columns of `albert predict` and the fields of a serving request's items;
- ``predict(predictor, items)``: one ``result`` per item; ``predictor`` (albert/infer.py) holds the engine, tokenizer,
  labels, sequence length and the settings the model was trained with;
- ``route``, ``summary``, ``response``: `albert serve` answers ``POST /<route>`` with ``{response: [results]}``;
- ``architectures``: the model classes (config.json) whose directories this task predicts with.

``cfg`` is a FinetuneConfig (fields such as max_seq_length, batch_size, text_column are read from it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_type_hints

DECODING = "decoding.json"  # beside a fine-tuned model: what Task.decoding returned for its best checkpoint


class Task:
    name: str = ""
    head: str = ""  # the model class
    problem_type: str | None = None  # transformers' config.problem_type, where the head has one
    metric: str = ""  # the dev metric that picks the best checkpoint (larger is better)
    trainable: bool = True  # `albert finetune --task NAME` trains it
    pipeline_tag: str = ""  # the Hub's task tag for its models (model cards' metadata and model-index)

    architectures: tuple[str, ...] = ()  # model classes (config.json "architectures") this task predicts with
    item: type = str  # one thing to predict for: a text, or a TypedDict of named fields
    result: type = dict  # one prediction (a TypedDict where it is a record: the OpenAPI schema shows it)
    route: str = "predict"  # `albert serve` answers POST /<route>
    summary: str = ""  # the route's one line on the OpenAPI page
    response: str = "predictions"  # the serving response's field, a list with one result per item
    named_labels: bool = False  # the model predicts named labels (shown by GET /health)
    exportable: bool = True  # `albert export` can write the model to ONNX

    def fields(self) -> tuple[str, ...]:
        """The input fields of one item: ("text",) for a text, else the TypedDict's keys."""
        return ("text",) if self.item is str else tuple(get_type_hints(self.item))

    def input_columns(self, trained: dict[str, Any]) -> dict[str, str]:
        """For each field of an item, the column `albert predict` reads it from: the one the model was fine-tuned with
        (``trained``: its finetune_config.json; empty for a model fine-tuned elsewhere)."""
        if self.item is str:
            return {"text": trained.get("text_column") or "text"}
        return {field: field for field in self.fields()}

    def untrained_settings(self, config: dict[str, Any]) -> dict[str, Any]:
        """FinetuneConfig fields for evaluating a model fine-tuned elsewhere (no finetune_config.json) as ``predict``
        runs it; ``config`` is its config.json."""
        return {}

    def item_of(self, values: dict[str, Any]) -> Any:
        """What ``predict`` takes for one record, from the values of ``input_columns``' fields."""
        return values["text"] if self.item is str else values

    def accepts(self, config: dict) -> bool:
        """Whether a directory with this config.json was fine-tuned for this task (its class is in architectures)."""
        return (config.get("architectures") or [""])[0] in self.architectures

    def model_class(self, architecture: str) -> str:
        """The class prediction loads for a directory of ``architecture`` (the same class, unless a task says)."""
        return architecture

    def selection_metric(self, scores: dict[str, float]) -> str:
        """The metric of ``scores`` that picks the best checkpoint and decides early stopping (larger is better)."""
        return self.metric

    def decoding(self, scores: dict[str, float]) -> dict[str, Any] | None:
        """Settings tuned on the dev set with ``scores`` that prediction must apply (saved as DECODING); None: none."""
        return None

    def predict(self, predictor, items: list) -> list:
        raise NotImplementedError(f"the {self.name} task does not predict")

    def figure(self, model, data, labels: list[str], cfg: Any, device, path: Path) -> Path | None:
        """Draw the evaluation to ``path`` (PNG) and return it, where the task has a picture; None otherwise."""
        return None

    def read(self, path: str | Path, cfg: Any) -> list:
        raise NotImplementedError

    def labels(self, train: list, dev: list | None, cfg: Any, given: list[str] | None = None) -> list[str]:
        raise NotImplementedError

    def encode(self, tokenizer, examples: list, labels: list[str], cfg: Any):
        raise NotImplementedError

    def evaluate(self, model, data, labels: list[str], cfg: Any, device) -> dict[str, float]:
        raise NotImplementedError

    def head_class(self, cfg: Any) -> type:
        from albert import heads, model

        return getattr(heads, self.head, None) or getattr(model, self.head)
