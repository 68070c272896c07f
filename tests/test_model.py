"""Properties of the forward pass that hold for any weights."""

from __future__ import annotations

import pytest
import torch
from conftest import STRUCTURES, make_batch, tiny_config

import albert
from albert.heads import (
    AlbertForMultipleChoice,
    AlbertForQuestionAnswering,
    AlbertForSequenceClassification,
    AlbertForTokenClassification,
)


def _loss(model, batch, cfg):
    B, T = batch["input_ids"].shape
    if isinstance(model, AlbertForMultipleChoice):
        other = make_batch(cfg, batch=B, length=T, seed=1)
        expand = {k: torch.stack([v, other[k]], dim=1) for k, v in batch.items()}
        return model(**expand, labels=torch.zeros(B, dtype=torch.long)).loss
    if isinstance(model, AlbertForQuestionAnswering):
        return model(**batch, start_positions=torch.ones(B, dtype=torch.long), end_positions=torch.full((B,), 2)).loss
    if isinstance(model, AlbertForTokenClassification):
        return model(**batch, labels=torch.ones(B, T, dtype=torch.long)).loss
    if isinstance(model, AlbertForSequenceClassification):
        return model(**batch, labels=torch.ones(B, dtype=torch.long)).loss
    if isinstance(model, albert.AlbertForPreTraining):
        labels = batch["input_ids"].clone()
        return model(**batch, labels=labels, sentence_order_label=torch.zeros(B, dtype=torch.long)).loss
    if isinstance(model, albert.AlbertForMaskedLM):
        return model(**batch, labels=batch["input_ids"]).loss
    out = model(**batch)
    return out.last_hidden_state.pow(2).mean() + out.pooler_output.pow(2).mean()


CLASSES = [
    albert.AlbertModel,
    albert.AlbertForPreTraining,
    albert.AlbertForMaskedLM,
    AlbertForSequenceClassification,
    AlbertForTokenClassification,
    AlbertForQuestionAnswering,
    AlbertForMultipleChoice,
]


# Graph switches transformers does not have (so they are not in the parity STRUCTURES): brightmart/albert_zh's
# factorised embedding and pre-LN layers, read from converted checkpoints.
OWN_SWITCHES = {"brightmart-preln": {"embedding_layout": "brightmart", "ln_type": "preln"}}
ALL_STRUCTURES = {**STRUCTURES, **OWN_SWITCHES}
# Layers that do not divide into the groups: the last layer belongs to the last group, not to the first
UNEVEN = {"3layers-2groups": {"num_hidden_layers": 3, "num_hidden_groups": 2}}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", ["2groups-2inner-relu", "E=H", "brightmart-preln"])
def test_every_parameter_gets_a_gradient(cls, name):
    cfg = tiny_config(**ALL_STRUCTURES[name])
    torch.manual_seed(0)
    model = cls(cfg)
    _loss(model, make_batch(cfg), cfg).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        if isinstance(model, AlbertForMultipleChoice) and pname == "classifier.bias":
            continue  # one bias added to every choice cancels in the softmax: its gradient is exactly zero
        assert p.grad.abs().sum() > 0, f"{pname} got an all-zero gradient"


@pytest.mark.parametrize("name", [*ALL_STRUCTURES, *UNEVEN])
@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "gradient-checkpointing"])
def test_pooled_only_gives_the_full_pass_pooled_vector_and_gradients(name, checkpointing):
    """Classification and multiple choice read only the pooled [CLS] vector, so their last layer computes that row
    alone (pooled_only): the pooled vector and every parameter's gradient must be the full pass's, padding included.
    (Without dropout: with it, the two passes draw masks for different numbers of rows, so no two runs compare.)"""
    cfg = tiny_config(**{**ALL_STRUCTURES, **UNEVEN}[name], hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = albert.AlbertModel(cfg).train()  # train mode, so that gradient checkpointing really runs
    model.gradient_checkpointing = checkpointing
    batch = make_batch(cfg)
    pooled, grads = {}, {}
    for only in (False, True):
        model.zero_grad()
        out = model(**batch, pooled_only=only)
        assert out.last_hidden_state.shape[1] == (1 if only else batch["input_ids"].shape[1])
        out.pooler_output.pow(2).sum().backward()
        pooled[only] = out.pooler_output.detach()
        grads[only] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    torch.testing.assert_close(pooled[True], pooled[False], rtol=1e-5, atol=1e-6)
    assert grads[True].keys() == grads[False].keys() == {n for n, _ in model.named_parameters()}
    for n, g in grads[False].items():
        torch.testing.assert_close(grads[True][n], g, rtol=1e-4, atol=1e-6, msg=lambda m, n=n: f"{n}: {m}")


@pytest.mark.parametrize("name", ["E<H", "2groups-2inner-relu"])
def test_pooled_only_draws_the_full_pass_dropout(name):
    """With dropout the two passes draw different masks, so they compare as distributions: over 300 draws the [CLS]
    row's output must have the full pass's mean and spread under pooled_only. One layer (of two inner layers, for the
    second structure) and no dropout before it, so that all the spread comes from the dropout of the layer that
    computes the row alone: one that skipped it, or applied it twice, is far outside the tolerance."""
    cfg = tiny_config(**ALL_STRUCTURES[name], num_hidden_layers=1, hidden_dropout_prob=0.3)
    torch.manual_seed(0)
    model = albert.AlbertModel(cfg).train()
    model.embeddings.dropout.p = 0.0
    with torch.no_grad():  # weights far from init, so the layer's branches (where dropout acts) weigh on its output
        for p in model.parameters():
            p.normal_(0, 0.2)
    batch = make_batch(cfg)
    draws = {}
    with torch.no_grad():
        for only in (False, True):
            torch.manual_seed(1)
            draws[only] = torch.stack([model(**batch, pooled_only=only).last_hidden_state[:, 0] for _ in range(300)])
    full, alone = draws[False], draws[True]
    assert full.std(0).mean() > 0.03  # dropout is on: the draws differ
    error = full.std(0) / 300**0.5  # standard error of each element's mean
    assert ((alone.mean(0) - full.mean(0)).abs() < 6 * 2**0.5 * error + 1e-6).all()  # 6 sigma of a difference
    ratio = alone.std(0).mean() / full.std(0).mean()
    assert 0.95 < ratio < 1.05, ratio


def test_parameter_count_does_not_grow_with_depth():
    counts = {n: albert.AlbertModel(tiny_config(num_hidden_layers=n)).num_parameters() for n in (1, 4, 12)}
    assert len(set(counts.values())) == 1, counts
    # With as many groups as layers nothing is shared, and each layer adds its own weights.
    unshared = albert.AlbertModel(tiny_config(num_hidden_layers=4, num_hidden_groups=4)).num_parameters()
    layer = sum(p.numel() for p in albert.AlbertModel(tiny_config()).groups[0].parameters())
    assert unshared == counts[4] + 3 * layer


def test_group_rule_matches_the_reference_formula():
    for layers, groups in [(12, 1), (12, 2), (12, 3), (12, 4), (12, 12), (24, 6), (6, 3)]:
        model = albert.AlbertModel(tiny_config(num_hidden_layers=layers, num_hidden_groups=groups))
        assert [model.group_of_layer(i) for i in range(layers)] == [int(i / (layers / groups)) for i in range(layers)]


def test_layers_really_share_weights():
    """Running the one shared layer L times by hand reproduces the model: there is no hidden per-layer state."""
    cfg = tiny_config()
    model = albert.AlbertModel(cfg).eval()
    batch = make_batch(cfg)
    with torch.no_grad():
        x = model.projection(model.embeddings(batch["input_ids"], batch["token_type_ids"]))
        bias = albert.model.attention_bias(batch["attention_mask"], x.dtype)
        for _ in range(cfg.num_hidden_layers):
            x = model.groups[0][0](x, bias)
        torch.testing.assert_close(model(**batch).last_hidden_state, x, rtol=0, atol=0)


@pytest.mark.parametrize("cls", [albert.AlbertModel, AlbertForTokenClassification, AlbertForQuestionAnswering])
def test_padding_does_not_change_real_positions(structure, cls):
    torch.manual_seed(0)
    model = cls(structure).eval()
    batch = make_batch(structure, batch=1, length=9)
    padded = {k: torch.cat([v, torch.zeros(1, 7, dtype=v.dtype)], dim=1) for k, v in batch.items()}
    padded["input_ids"][0, 9:] = torch.arange(5, 12)  # whatever sits under the padding must not matter
    with torch.no_grad():
        a, b = model(**batch), model(**padded)
    for name in ("last_hidden_state", "logits", "start_logits", "end_logits"):
        if hasattr(a, name):
            torch.testing.assert_close(getattr(b, name)[:, :9], getattr(a, name), rtol=1e-5, atol=1e-5)
    if getattr(a, "pooler_output", None) is not None:
        torch.testing.assert_close(b.pooler_output, a.pooler_output, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("switches", [{"embedding_layout": "brightmart"}, {"ln_type": "preln"}], ids=str)
def test_padding_does_not_change_real_positions_with_albert_zh_switches(switches):
    cfg = tiny_config(**switches)
    torch.manual_seed(0)
    model = albert.AlbertForPreTraining(cfg).eval()
    batch = make_batch(cfg, batch=1, length=9)
    padded = {k: torch.cat([v, torch.zeros(1, 7, dtype=v.dtype)], dim=1) for k, v in batch.items()}
    with torch.no_grad():
        a, b = model(**batch), model(**padded)
    torch.testing.assert_close(b.prediction_logits[:, :9], a.prediction_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b.sop_logits, a.sop_logits, rtol=1e-5, atol=1e-5)


def test_albert_zh_switches_change_the_graph_and_survive_save_and_load(tmp_path):
    """brightmart's layout has no encoder projection and H-wide position embeddings; pre-LN changes the output;
    both switches are written to config.json (and only when not the default, so standard configs stay
    transformers' own)."""
    cfg = tiny_config(embedding_layout="brightmart", ln_type="preln")
    model = albert.AlbertForPreTraining(cfg).eval()
    with torch.no_grad():  # weights far from init, so that layers change the residual stream noticeably
        for p in model.parameters():
            p.normal_(0, 0.3)
    assert model.albert.projection is None
    assert model.albert.embeddings.position.weight.shape == (cfg.max_position_embeddings, cfg.hidden_size)
    assert model.mlm.dense.weight.shape == (cfg.hidden_size, cfg.hidden_size)
    model.save_pretrained(tmp_path)
    again = albert.AlbertForPreTraining.from_pretrained(tmp_path).eval()
    assert (again.config.embedding_layout, again.config.ln_type) == ("brightmart", "preln")
    batch = make_batch(cfg)
    with torch.no_grad():
        torch.testing.assert_close(again(**batch).prediction_logits, model(**batch).prediction_logits)
        post = albert.AlbertForPreTraining(tiny_config(embedding_layout="brightmart")).eval()
        post.load_state_dict(model.state_dict())
        pre_h, post_h = model.albert(**batch).last_hidden_state, post.albert(**batch).last_hidden_state
        assert (pre_h - post_h).abs().max() > 0.1
    assert "ln_type" not in tiny_config().to_dict() and "embedding_layout" not in tiny_config().to_dict()


def test_eval_is_deterministic_and_train_uses_dropout():
    cfg = tiny_config(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    model = AlbertForSequenceClassification(cfg)
    batch = make_batch(cfg)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, model(**batch).logits, rtol=0, atol=0)
        model.train()
        assert not torch.equal(model(**batch).logits, model(**batch).logits)


def test_masked_positions_give_the_full_logits_at_those_positions():
    cfg = tiny_config()
    model = albert.AlbertForPreTraining(cfg).eval()
    batch = make_batch(cfg)
    positions = torch.tensor([[1, 4], [2, 3], [0, 5]])
    with torch.no_grad():
        full = model(**batch).prediction_logits
        gathered = model(**batch, masked_positions=positions).prediction_logits
    torch.testing.assert_close(gathered, torch.stack([full[b, positions[b]] for b in range(3)]))


def test_sequence_longer_than_positions_is_a_clear_error():
    cfg = tiny_config(max_position_embeddings=8)
    with pytest.raises(ValueError, match="10 tokens but the model has 8 position embeddings"):
        albert.AlbertModel(cfg)(torch.ones(1, 10, dtype=torch.long))


def test_mlm_decoder_is_tied_to_word_embeddings():
    cfg = tiny_config()
    model = albert.AlbertForMaskedLM(cfg)
    names = [n for n, _ in model.named_parameters()]
    assert not any("decoder" in n for n in names)
    ids = torch.tensor([[7, 8, 9]])
    with torch.no_grad():
        model.albert.embeddings.word.weight[11] += 5.0  # changing the input table changes the output logits of 11
        h = model.albert(ids).last_hidden_state
        expected = (
            model.mlm.norm(model.mlm.act(model.mlm.dense(h))) @ model.albert.embeddings.word.weight.T + model.mlm.bias
        )
    torch.testing.assert_close(model(ids).logits, expected)
