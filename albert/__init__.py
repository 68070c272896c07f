"""albert-lite: a PyTorch toolkit for ALBERT (Lan et al., ICLR 2020). Public names only; see the README."""

from albert.config import PRESETS, AlbertConfig
from albert.errors import AlbertError, CheckpointError, ConfigError
from albert.finetune import EntityTagger, FinetuneConfig, TextClassifier
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
from albert.spm import SentencePieceTokenizer
from albert.tokenizer import AlbertTokenizer, TokenizerError, WordPieceTokenizer

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
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
    "EntityTagger",
    "FinetuneConfig",
    "ClassifierOutput",
    "ConfigError",
    "LoadReport",
    "MaskedLMOutput",
    "PreTrainingOutput",
    "QuestionAnsweringOutput",
    "SentencePieceTokenizer",
    "TextClassifier",
    "TokenizerError",
    "WordPieceTokenizer",
]
