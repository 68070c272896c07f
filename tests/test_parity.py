"""Parity with transformers: the same weights give the same outputs and losses (fp32, atol 1e-5), both ways.

transformers → our from_pretrained, and our save_pretrained → transformers' from_pretrained, for every head and for
the structural switches in conftest.STRUCTURES. Weights are randomised (biases and LayerNorms included) so that a
wrong mapping cannot hide behind a zero or one initialisation.
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_batch

import albert

transformers = pytest.importorskip("transformers")

PAIRS = {
    "AlbertModel": ("last_hidden_state", "pooler_output"),
    "AlbertForPreTraining": ("prediction_logits", "sop_logits"),
    "AlbertForMaskedLM": ("logits",),
    "AlbertForSequenceClassification": ("logits",),
    "AlbertForTokenClassification": ("logits",),
    "AlbertForQuestionAnswering": ("start_logits", "end_logits"),
    "AlbertForMultipleChoice": ("logits",),
}


def _randomise(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def _inputs(name: str, cfg) -> dict[str, torch.Tensor]:
    batch = make_batch(cfg)
    if name == "AlbertForMultipleChoice":
        other = make_batch(cfg, seed=1)
        return {k: torch.stack([v, other[k]], dim=1) for k, v in batch.items()}
    return batch


def _labels(name: str, cfg, batch) -> list[dict[str, torch.Tensor]]:
    B, T = batch["input_ids"].shape[0], batch["input_ids"].shape[-1]
    g = torch.Generator().manual_seed(3)
    if name == "AlbertForPreTraining":
        labels = torch.full((B, T), -100)
        labels[:, 2:5] = torch.randint(0, cfg.vocab_size, (B, 3), generator=g)
        return [{"labels": labels, "sentence_order_label": torch.tensor([0, 1, 1])}]
    if name == "AlbertForMaskedLM":
        labels = torch.full((B, T), -100)
        labels[:, 1:3] = torch.randint(0, cfg.vocab_size, (B, 2), generator=g)
        return [{"labels": labels}]
    if name == "AlbertForSequenceClassification":
        return [{"labels": torch.tensor([0, 2, 1])}]
    if name == "AlbertForTokenClassification":
        labels = torch.randint(0, cfg.num_labels, (B, T), generator=g)
        labels[batch["attention_mask"] == 0] = -100
        return [{"labels": labels}]
    if name == "AlbertForQuestionAnswering":  # the last answer lies past the input: ignored by both
        return [{"start_positions": torch.tensor([1, 3, 40]), "end_positions": torch.tensor([2, 5, 41])}]
    if name == "AlbertForMultipleChoice":
        return [{"labels": torch.tensor([1, 0, 1])}]
    return []


def _config(name, structure):
    # transformers sizes its SOP and span heads by num_labels (2 by default); both have two outputs by definition,
    # which is what we build.
    if name in ("AlbertForPreTraining", "AlbertForQuestionAnswering"):
        return albert.AlbertConfig.from_dict({**structure.to_dict(), "num_labels": 2, "id2label": None})
    return structure


def _compare(ours, theirs, name, cfg):
    ours.eval(), theirs.eval()
    batch = _inputs(name, cfg)
    with torch.no_grad():
        a, b = ours(**batch), theirs(**batch)
        for field in PAIRS[name]:
            torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=0, atol=1e-5, msg=field)
        for labels in _labels(name, cfg, batch):
            a, b = ours(**batch, **labels), theirs(**batch, **labels)
            torch.testing.assert_close(a.loss, b.loss, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", list(PAIRS))
def test_transformers_checkpoint_loads_with_identical_outputs(name, structure, tmp_path):
    structure = _config(name, structure)
    torch.manual_seed(0)
    theirs = getattr(transformers, name)(transformers.AlbertConfig(**structure.to_dict()))
    _randomise(theirs, seed=1)
    theirs.save_pretrained(tmp_path)
    ours = getattr(albert, name).from_pretrained(tmp_path)
    assert ours.load_report.initialised == [] and ours.load_report.unused == []
    _compare(ours, theirs, name, structure)


@pytest.mark.parametrize("name", list(PAIRS))
def test_our_checkpoint_loads_in_transformers_with_identical_outputs(name, structure, tmp_path):
    structure = _config(name, structure)
    torch.manual_seed(0)
    ours = getattr(albert, name)(structure)
    _randomise(ours, seed=2)
    ours.save_pretrained(tmp_path)
    theirs = getattr(transformers, name).from_pretrained(tmp_path)
    _compare(ours, theirs, name, structure)


@pytest.mark.parametrize("problem", ["regression", "multi_label_classification"])
def test_sequence_classification_losses_match(problem, tmp_path):
    from conftest import tiny_config

    num_labels = 1 if problem == "regression" else 3
    cfg = tiny_config(num_labels=num_labels)
    theirs = transformers.AlbertForSequenceClassification(transformers.AlbertConfig(**cfg.to_dict()))
    _randomise(theirs, seed=4)
    theirs.save_pretrained(tmp_path)
    ours = albert.AlbertForSequenceClassification.from_pretrained(tmp_path).eval()
    theirs.eval()
    batch = make_batch(cfg)
    labels = (
        torch.tensor([0.5, -1.0, 2.0]) if problem == "regression" else torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 0]])
    )
    with torch.no_grad():
        a, b = ours(**batch, labels=labels), theirs(**batch, labels=labels)
    assert ours.config.problem_type == theirs.config.problem_type == problem
    torch.testing.assert_close(a.loss, b.loss, rtol=0, atol=1e-5)


def test_pretraining_in_train_mode_drops_out_before_sop_as_transformers_does(tmp_path):
    """Only the dropout before the SOP classifier is on (classifier_dropout_prob 0.5, the rest 0): with the same
    seed both draw the same mask, so the SOP logits agree in train mode too, and they differ from eval mode."""
    from conftest import tiny_config

    cfg = albert.AlbertConfig.from_dict(
        {
            **tiny_config(
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.5
            ).to_dict(),
            "num_labels": 2,
            "id2label": None,
        }
    )
    theirs = transformers.AlbertForPreTraining(transformers.AlbertConfig(**cfg.to_dict()))
    _randomise(theirs, seed=5)
    theirs.save_pretrained(tmp_path)
    ours = albert.AlbertForPreTraining.from_pretrained(tmp_path)
    batch = make_batch(cfg)
    outputs = {}
    with torch.no_grad():
        for mode in ("train", "eval"):
            for name, model in (("ours", ours), ("theirs", theirs)):
                getattr(model, mode)()
                torch.manual_seed(11)
                outputs[name, mode] = model(**batch)
    for mode in ("train", "eval"):
        for field in PAIRS["AlbertForPreTraining"]:
            a, b = getattr(outputs["ours", mode], field), getattr(outputs["theirs", mode], field)
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5, msg=f"{field} in {mode} mode")
    train_sop, eval_sop = outputs["ours", "train"].sop_logits, outputs["ours", "eval"].sop_logits
    assert (train_sop - eval_sop).abs().max() > 1e-3  # the dropout is really on in training
    torch.testing.assert_close(outputs["ours", "train"].prediction_logits, outputs["ours", "eval"].prediction_logits)
