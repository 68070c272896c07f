"""The scikit-learn-style Python API: ``TextClassifier`` (fit / predict / predict_proba / save) and ``EntityTagger``.

Both train through albert/finetune.py's loop (``fit`` writes its run in a temporary folder and keeps the best model)
and predict through the same length-sorted, token-budgeted batches as `albert predict` (albert/engines.py).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from albert import hub, infer
from albert.finetune import MAX_LENGTH_KEY, FinetuneConfig, fit_examples, save_classifier
from albert.heads import AlbertForSequenceClassification, AlbertForTokenClassification
from albert.tasks import classification as task
from albert.tasks.classification import classification_logits
from albert.tasks.ner import tag_texts
from albert.tokenizer import AlbertTokenizer


class TextClassifier:
    """fit / predict / predict_proba / save around AlbertForSequenceClassification and its tokenizer."""

    def __init__(
        self,
        model: AlbertForSequenceClassification,
        tokenizer: AlbertTokenizer,
        init: str | None = None,
        labels: list[str] | None = None,
        task_kind: str | None = None,
        max_length: int = 128,
    ):
        self.model, self.tokenizer, self.init, self.max_length = model, tokenizer, init, max_length
        self.user_labels = labels is not None  # fit() keeps their order
        self.labels = labels or [model.config.labels_by_id()[i] for i in range(model.config.num_labels)]
        self.task = task_kind or {"regression": "regression", "multi_label_classification": "multi_label"}.get(
            model.config.problem_type or "", "classification"
        )

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        labels: list[str] | None = None,
        task: str = "classification",
        max_length: int | None = None,
        **hub_options: Any,
    ) -> TextClassifier:
        """A fine-tuned directory or hub id (ready to predict), or a pretrained one plus ``labels`` (ready to fit).
        ``max_length``: tokens per text (default: what ``save`` recorded, else 128). ``hub_options``: revision,
        cache_dir, token, local_files_only."""
        path = hub.local_or_hub(path, "all", hub.options_from(hub_options))
        tok = AlbertTokenizer.from_pretrained(path)
        extra = {"id2label": dict(enumerate(labels))} if labels else {}
        model = AlbertForSequenceClassification.from_pretrained(path, **extra)
        saved = model.config.extra.get(MAX_LENGTH_KEY)
        max_length = infer.fit_length(max_length or saved, model.config.max_position_embeddings, path, "max_length")
        return cls(model, tok, init=str(path), labels=labels, task_kind=task if labels else None, max_length=max_length)

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[Any],
        eval: tuple[Sequence[str], Sequence[Any]] | None = None,
        progress: bool = True,
        **config: Any,
    ) -> dict[str, Any]:
        """Fine-tune in place (FinetuneConfig fields as keywords, e.g. epochs=3, learning_rate=3e-5); ``progress``:
        a bar over the training steps (and the range test's, with learning_rate="auto") on stderr."""

        def examples(xs, ys, name):
            return [
                task.Example(
                    str(x),
                    None,
                    [str(v) for v in y]
                    if self.task == "multi_label"
                    # a NaN target would surface as a "not finite" loss at step 1, blaming the learning rate
                    else (task.regression_target(y, f"{name}[{n}]") if self.task == "regression" else str(y)),
                    n + 1,
                )
                for n, (x, y) in enumerate(zip(xs, ys, strict=True))
            ]

        if isinstance(texts, str):
            raise TypeError("fit() takes a list of texts (one string is one text: wrap it in a list)")
        # a keyword overrides the default length (a FinetuneConfig field); the bar is fit()'s own argument
        settings = {"max_seq_length": self.max_length, **config, "progress": progress}
        self.max_length = settings["max_seq_length"]
        # the user's label list keeps its order (probability columns follow it), unless labels come from the data
        keep = self.labels if self.user_labels and self.task != "regression" else None
        with tempfile.TemporaryDirectory() as tmp:
            self.model.save_pretrained(Path(tmp) / "init")
            self.tokenizer.save_pretrained(Path(tmp) / "init")
            cfg = FinetuneConfig(init=str(Path(tmp) / "init"), out=str(Path(tmp) / "out"), task=self.task, **settings)
            result = fit_examples(
                cfg, examples(texts, labels, "labels"), examples(*eval, "eval labels") if eval else None, keep
            )
            trained = TextClassifier.from_pretrained(Path(tmp) / "out", max_length=self.max_length)
        self.model, self.labels = trained.model, trained.labels
        return result

    def predict_proba(
        self, texts: Sequence[str] | str, batch_size: int = 64, pairs: Sequence[str] | None = None
    ) -> np.ndarray:
        """One row of probabilities (columns in ``self.labels`` order) per text (or text pair, with ``pairs``); a
        single string is one text."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if pairs is not None:
            pairs = [pairs] if isinstance(pairs, str) else [str(p) for p in pairs]
        if not texts:
            width = 1 if self.task == "regression" else len(self.labels)
            return np.zeros((0,) if self.task == "regression" else (0, width), dtype=np.float32)
        scores = classification_logits(
            self.model, self.tokenizer, [str(t) for t in texts], pairs, self.max_length, max_batch=batch_size
        )
        if self.task == "regression":
            return scores[:, 0]
        if self.task == "multi_label":
            return 1 / (1 + np.exp(-scores))
        exp = np.exp(scores - scores.max(-1, keepdims=True))
        return exp / exp.sum(-1, keepdims=True)

    def predict(self, texts: Sequence[str] | str, batch_size: int = 64) -> list[Any]:
        """One prediction per text (a single string is one text: a list of one)."""
        probs = self.predict_proba(texts, batch_size)
        if self.task == "regression":
            return [float(p) for p in probs]
        if self.task == "multi_label":
            return [[self.labels[i] for i in np.flatnonzero(row > 0.5)] for row in probs]
        return [self.labels[i] for i in probs.argmax(-1)]

    def save(self, path: str | Path) -> None:
        """Model + tokenizer; ``max_length`` is kept in config.json (as max_seq_length), which from_pretrained reads
        back."""
        self.model.config.extra[MAX_LENGTH_KEY] = self.max_length
        save_classifier(self.model, self.tokenizer, Path(path))


class EntityTagger:
    """predict() for a fine-tuned AlbertForTokenClassification: entity spans with character offsets into the text.

    Text with CJK characters is tagged character by character (as Chinese NER data is); other text word by word."""

    def __init__(self, model: AlbertForTokenClassification, tokenizer: AlbertTokenizer, max_length: int = 128):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.labels = [model.config.labels_by_id()[i] for i in range(model.config.num_labels)]

    @classmethod
    def from_pretrained(cls, path: str | Path, max_length: int | None = None, **hub_options: Any) -> EntityTagger:
        """A fine-tuned directory or hub id (``hub_options``: revision, cache_dir, token, local_files_only);
        ``max_length``: tokens per text (default: 128 or the model's positions)."""
        path = hub.local_or_hub(path, "all", hub.options_from(hub_options))
        model = AlbertForTokenClassification.from_pretrained(path)
        max_length = infer.fit_length(max_length, model.config.max_position_embeddings, path, "max_length")
        return cls(model, AlbertTokenizer.from_pretrained(path), max_length)

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[list[dict]]:
        """Entity spans with character offsets into each text (tasks.ner.tag_texts)."""
        return tag_texts(self.model, self.tokenizer, self.labels, texts, self.max_length, max_batch=batch_size)
