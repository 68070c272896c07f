"""Task heads on the ALBERT encoder, with the names, parameters and losses of transformers' classes.

Sequence classification (single-label, multi-label, regression) and multiple choice read the pooled [CLS] vector;
token classification and span QA read every position and build the encoder without a pooler, as transformers does,
so checkpoints move between the two libraries unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from albert.config import AlbertConfig
from albert.model import AlbertModel, AlbertPreTrainedModel


@dataclass
class ClassifierOutput:
    logits: torch.Tensor  # (B, num_labels) | (B, T, num_labels) | (B, num_choices)
    loss: torch.Tensor | None = None


@dataclass
class QuestionAnsweringOutput:
    start_logits: torch.Tensor  # (B, T)
    end_logits: torch.Tensor  # (B, T)
    loss: torch.Tensor | None = None


def _problem_type(config: AlbertConfig, labels: torch.Tensor) -> str:
    """transformers' rule: one label → regression; integer labels → single-label; float labels → multi-label."""
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    return config.problem_type


def span_loss(start_logits, end_logits, start_positions, end_positions) -> torch.Tensor:
    """Mean of the start and end cross-entropies. Answers cut off by truncation are labelled past the end and count
    for nothing (transformers' rule)."""
    T = start_logits.size(1)
    start, end = start_positions.view(-1).clamp(0, T), end_positions.view(-1).clamp(0, T)
    return (F.cross_entropy(start_logits, start, ignore_index=T) + F.cross_entropy(end_logits, end, ignore_index=T)) / 2


class AlbertForSequenceClassification(AlbertPreTrainedModel):
    hf_class_name = "AlbertForSequenceClassification"
    optional_prefixes = ("classifier.", "albert.pooler.")

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights(self.classifier)

    def forward(
        self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None
    ) -> ClassifierOutput:
        pooled = self.albert(input_ids, attention_mask, token_type_ids, position_ids, pooled_only=True).pooler_output
        logits = self.classifier(self.dropout(pooled))  # (B, num_labels)
        loss = None
        if labels is not None:
            kind = _problem_type(self.config, labels)
            if kind == "regression":  # one score per row: (B,) against (B,) whatever shape the labels came in
                target = labels.to(logits.dtype)
                one = logits.shape[-1] == 1
                loss = F.mse_loss(logits.reshape(-1), target.reshape(-1)) if one else F.mse_loss(logits, target)
            elif kind == "single_label_classification":
                loss = F.cross_entropy(logits, labels.view(-1))
            else:
                loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        return ClassifierOutput(logits=logits, loss=loss)


class AlbertForTokenClassification(AlbertPreTrainedModel):
    hf_class_name = "AlbertForTokenClassification"
    optional_prefixes = ("classifier.",)

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights(self.classifier)

    def forward(
        self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None
    ) -> ClassifierOutput:
        h = self.albert(input_ids, attention_mask, token_type_ids, position_ids).last_hidden_state
        logits = self.classifier(self.dropout(h))  # (B, T, num_labels)
        loss = None if labels is None else F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return ClassifierOutput(logits=logits, loss=loss)


class AlbertForQuestionAnswering(AlbertPreTrainedModel):
    """Start/end logits from one Linear(H, 2) (transformers' layout; the SQuAD 2.0 answerability head is separate)."""

    hf_class_name = "AlbertForQuestionAnswering"
    optional_prefixes = ("qa_outputs.",)

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.init_weights(self.qa_outputs)

    def forward(
        self,
        input_ids,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        start_positions=None,
        end_positions=None,
    ) -> QuestionAnsweringOutput:
        h = self.albert(input_ids, attention_mask, token_type_ids, position_ids).last_hidden_state
        start_logits, end_logits = self.qa_outputs(h).unbind(-1)  # (B, T) each
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = span_loss(start_logits, end_logits, start_positions, end_positions)
        return QuestionAnsweringOutput(
            start_logits=start_logits.contiguous(), end_logits=end_logits.contiguous(), loss=loss
        )


class AlbertForMultipleChoice(AlbertPreTrainedModel):
    """Each (B, C, T) choice is encoded separately; Linear(H, 1) on its pooled vector; softmax over the C choices."""

    hf_class_name = "AlbertForMultipleChoice"
    optional_prefixes = ("classifier.", "albert.pooler.")

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.init_weights(self.classifier)

    def forward(
        self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None
    ) -> ClassifierOutput:
        B, C, T = input_ids.shape

        def flat(t):
            return None if t is None else t.reshape(B * C, T)

        pooled = self.albert(
            flat(input_ids), flat(attention_mask), flat(token_type_ids), flat(position_ids), pooled_only=True
        ).pooler_output
        logits = self.classifier(self.dropout(pooled)).view(B, C)
        loss = None if labels is None else F.cross_entropy(logits, labels.view(-1))
        return ClassifierOutput(logits=logits, loss=loss)


class AlbertForExtractiveSummarization(AlbertPreTrainedModel):
    """BertSum-style sentence scoring: a [CLS] before each sentence; Linear(H, 1) on each one's hidden state.

    Not a transformers class: transformers can read the encoder of a saved directory, not this head."""

    hf_class_name = "AlbertForExtractiveSummarization"
    optional_prefixes = ("summary_scorer.",)

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.summary_scorer = nn.Linear(config.hidden_size, 1)
        self.init_weights(self.summary_scorer)

    def forward(
        self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, cls_positions=None, labels=None
    ) -> ClassifierOutput:
        """cls_positions (B, S): where each sentence's [CLS] is; labels (B, S): 1/0 per sentence, -100 for padding."""
        h = self.albert(input_ids, attention_mask, token_type_ids, position_ids).last_hidden_state
        h = torch.gather(h, 1, cls_positions.unsqueeze(-1).expand(-1, -1, h.size(-1)))  # (B, S, H)
        logits = self.summary_scorer(self.dropout(h)).squeeze(-1)  # (B, S)
        loss = None
        if labels is not None:
            real = labels != -100
            loss = F.binary_cross_entropy_with_logits(logits[real], labels[real].to(logits.dtype))
        return ClassifierOutput(logits=logits, loss=loss)


@dataclass
class AnswerabilityOutput:
    start_logits: torch.Tensor  # (B, T)
    end_logits: torch.Tensor  # (B, T)
    answerability_logits: torch.Tensor  # (B,): > 0 means "no answer in this input"
    loss: torch.Tensor | None = None


def answer_positions(attention_mask, token_type_ids, input_ids) -> torch.Tensor:
    """(B, T) True where an answer may start: [CLS] and the context of ``[CLS] question [SEP] context [SEP]`` (type 1,
    real, not the final [SEP]); the complement of the official p_mask. Without token types, every real token."""
    allowed = torch.ones_like(input_ids, dtype=torch.bool)
    if attention_mask is not None:
        allowed &= attention_mask.bool()
    if token_type_ids is not None:
        positions = torch.arange(input_ids.size(1), device=input_ids.device)
        length = allowed.sum(-1, keepdim=True) if attention_mask is not None else input_ids.size(1)
        allowed &= (token_type_ids == 1) & (positions != length - 1)
        allowed[:, 0] = True
    return allowed


class AlbertForQuestionAnsweringWithAnswerability(AlbertPreTrainedModel):
    """Span QA plus the answerability classifier of the official SQuAD 2.0 model (squad_utils.create_v2_model): the
    start distribution over allowed positions ([CLS] and context; p_mask hides the question, separators and padding)
    weights the hidden states, that and the [CLS] state → Dense(H, tanh) → dropout → Dense(1, no bias) = cls_logits;
    loss = (start + end cross-entropy) / 2 + 0.5 · sigmoid cross-entropy of cls_logits, as there. The span head is
    BERT's independent start/end layer (transformers' ``qa_outputs``), not the official model's end-given-start beam
    search, so the encoder and span head of a saved directory load into transformers' AlbertForQuestionAnswering."""

    hf_class_name = "AlbertForQuestionAnsweringWithAnswerability"
    optional_prefixes = ("qa_outputs.", "answer_dense.", "answer_out.")

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.answer_dense = nn.Linear(2 * config.hidden_size, config.hidden_size)
        self.answer_out = nn.Linear(config.hidden_size, 1, bias=False)  # dense_1 has use_bias=False there
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.init_weights(self.qa_outputs, self.answer_dense, self.answer_out)

    def forward(
        self,
        input_ids,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        start_positions=None,
        end_positions=None,
        is_impossible=None,
    ) -> AnswerabilityOutput:
        h = self.albert(input_ids, attention_mask, token_type_ids, position_ids).last_hidden_state  # (B, T, H)
        start_logits, end_logits = self.qa_outputs(h).unbind(-1)
        # the official start_logits_masked: only [CLS] and context tokens may start an answer
        start_logits = start_logits.masked_fill(~answer_positions(attention_mask, token_type_ids, input_ids), -1e30)
        weighted = torch.einsum("bt,bth->bh", start_logits.softmax(-1), h)
        feature = torch.tanh(self.answer_dense(torch.cat([weighted, h[:, 0]], dim=-1)))
        answerability = self.answer_out(self.dropout(feature)).squeeze(-1)
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = span_loss(start_logits, end_logits, start_positions, end_positions)
            if is_impossible is not None:
                bce = F.binary_cross_entropy_with_logits(answerability, is_impossible.to(answerability.dtype))
                loss = loss + 0.5 * bce  # "so that the scale is comparable to start_loss and end_loss"
        return AnswerabilityOutput(start_logits.contiguous(), end_logits.contiguous(), answerability, loss)
