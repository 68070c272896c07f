"""albert-lite: a PyTorch toolkit for ALBERT (Lan et al., ICLR 2020). Public names only; see the README.

Names are imported on first use (PEP 562), so ``import albert`` and ``albert --help`` do not pay for torch; the
first model or tokenizer touched imports what it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from albert.errors import AlbertError, CheckpointError, ConfigError

__version__ = "0.1.0"

_HOME = {
    "PRESETS": "albert.config",
    "AlbertConfig": "albert.config",
    "EntityTagger": "albert.estimators",
    "FinetuneConfig": "albert.finetune",
    "TextClassifier": "albert.estimators",
    "AlbertForExtractiveSummarization": "albert.heads",
    "AlbertForMultipleChoice": "albert.heads",
    "AlbertForQuestionAnswering": "albert.heads",
    "AlbertForQuestionAnsweringWithAnswerability": "albert.heads",
    "AlbertForSequenceClassification": "albert.heads",
    "AlbertForTokenClassification": "albert.heads",
    "ClassifierOutput": "albert.heads",
    "QuestionAnsweringOutput": "albert.heads",
    "AlbertForMaskedLM": "albert.model",
    "AlbertForPreTraining": "albert.model",
    "AlbertModel": "albert.model",
    "AlbertOutput": "albert.model",
    "AlbertPreTrainedModel": "albert.model",
    "LoadReport": "albert.model",
    "MaskedLMOutput": "albert.model",
    "PreTrainingOutput": "albert.model",
    "SentencePieceTokenizer": "albert.tokenizer",
    "AlbertTokenizer": "albert.tokenizer",
    "TokenizerError": "albert.tokenizer",
    "WordPieceTokenizer": "albert.tokenizer",
}

__all__ = [
    "AlbertConfig",
    "AlbertError",
    "AlbertForExtractiveSummarization",
    "AlbertForMaskedLM",
    "AlbertForMultipleChoice",
    "AlbertForPreTraining",
    "AlbertForQuestionAnswering",
    "AlbertForQuestionAnsweringWithAnswerability",
    "AlbertForSequenceClassification",
    "AlbertForTokenClassification",
    "AlbertModel",
    "AlbertOutput",
    "AlbertPreTrainedModel",
    "AlbertTokenizer",
    "CheckpointError",
    "ClassifierOutput",
    "ConfigError",
    "EntityTagger",
    "FinetuneConfig",
    "LoadReport",
    "MaskedLMOutput",
    "PRESETS",
    "PreTrainingOutput",
    "QuestionAnsweringOutput",
    "SentencePieceTokenizer",
    "TextClassifier",
    "TokenizerError",
    "WordPieceTokenizer",
]


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
        globals()[name] = value  # once
        return value
    raise AttributeError(f"module 'albert' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])


if TYPE_CHECKING:  # for type checkers and editors: the eager imports
    from albert.config import PRESETS, AlbertConfig
    from albert.estimators import EntityTagger, TextClassifier
    from albert.finetune import FinetuneConfig
    from albert.heads import (
        AlbertForExtractiveSummarization,
        AlbertForMultipleChoice,
        AlbertForQuestionAnswering,
        AlbertForQuestionAnsweringWithAnswerability,
        AlbertForSequenceClassification,
        AlbertForTokenClassification,
        ClassifierOutput,
        QuestionAnsweringOutput,
    )
    from albert.model import (
        AlbertForMaskedLM,
        AlbertForPreTraining,
        AlbertModel,
        AlbertOutput,
        AlbertPreTrainedModel,
        LoadReport,
        MaskedLMOutput,
        PreTrainingOutput,
    )
    from albert.tokenizer import AlbertTokenizer, SentencePieceTokenizer, TokenizerError, WordPieceTokenizer
