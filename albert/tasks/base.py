"""The task interface: what fine-tuning (and, in time, evaluation, prediction and serving) needs of a task family.

A task is one object with a name; `albert finetune --task NAME` looks it up in ``REGISTRY`` (albert/tasks/__init__.py)
and calls only these methods, so adding a task is one new module with one subclass, registered there:

- ``read(path, cfg)``: the examples of a file, with errors that name the file and line;
- ``labels(train, dev, cfg, given)``: the label list the head predicts (checked against the dev set);
- ``encode(tokenizer, examples, labels, cfg)``: features with ``len()``, ``batch(rows)`` (tensors incl. labels) and
  ``truncated`` (how many examples were cut);
- ``evaluate(model, features, labels, cfg, device)``: metrics, among them ``metric``, which picks the best checkpoint;
- ``head``: the model class name (in albert/heads.py or albert/model.py), ``problem_type`` for transformers' config.

``cfg`` is a FinetuneConfig (fields such as max_seq_length, batch_size, text_column are read from it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Task:
    name: str = ""
    head: str = ""  # the model class
    problem_type: str | None = None  # transformers' config.problem_type, where the head has one
    metric: str = ""  # the dev metric that picks the best checkpoint (larger is better)

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
