"""LAMB against its formula, parameter groups, and the learning-rate schedule."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config

import albert
from albert.optim import Lamb, build_optimizer, parameter_groups, warmup_poly_decay


def test_one_lamb_step_equals_the_formula():
    torch.manual_seed(0)
    w, b = torch.randn(4, 3, requires_grad=True), torch.randn(3, requires_grad=True)
    g_w, g_b = torch.randn(4, 3), torch.randn(3)
    w0, b0 = w.detach().clone(), b.detach().clone()
    opt = Lamb(
        [{"params": [w], "weight_decay": 0.01, "adapt": True}, {"params": [b], "weight_decay": 0.0, "adapt": False}],
        lr=0.1,
    )
    w.grad, b.grad = g_w.clone(), g_b.clone()
    opt.step()
    # By hand (lamb_optimizer.py): no bias correction, decay added before the trust ratio.
    m, v = 0.1 * g_w, 0.001 * g_w**2
    update = m / (v.sqrt() + 1e-6) + 0.01 * w0
    expected_w = w0 - 0.1 * (w0.norm() / update.norm()) * update
    m_b, v_b = 0.1 * g_b, 0.001 * g_b**2
    expected_b = b0 - 0.1 * m_b / (v_b.sqrt() + 1e-6)
    torch.testing.assert_close(w.detach(), expected_w, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(b.detach(), expected_b, rtol=1e-6, atol=1e-7)


def test_lamb_without_trust_ratio_and_decay_is_adam_without_bias_correction():
    torch.manual_seed(1)
    p = torch.randn(5, 5, requires_grad=True)
    ref = p.detach().clone()
    opt = Lamb([p], lr=0.01, weight_decay=0.0, adapt=False)
    m, v = torch.zeros_like(ref), torch.zeros_like(ref)
    for _ in range(5):
        g = torch.randn(5, 5)
        p.grad = g.clone()
        opt.step()
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g**2
        ref -= 0.01 * m / (v.sqrt() + 1e-6)
    torch.testing.assert_close(p.detach(), ref, rtol=1e-6, atol=1e-7)


def test_zero_norms_give_trust_ratio_one():
    p = torch.zeros(3, requires_grad=True)
    p.grad = torch.ones(3)
    Lamb([p], lr=0.1, weight_decay=0.0).step()  # ||w|| = 0: ratio 1, the step of Adam without bias correction
    expected = -0.1 * 0.1 / (0.001**0.5 + 1e-6)
    torch.testing.assert_close(p.detach(), torch.full((3,), expected), rtol=1e-6, atol=1e-7)


def test_layernorm_and_bias_are_excluded_from_decay_and_adaptation():
    model = albert.AlbertForPreTraining(tiny_config(num_hidden_groups=2, inner_group_num=2))
    decay, plain = parameter_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    plain_names = sorted(names[id(p)] for p in plain["params"])
    assert all(n.endswith("bias") or "norm" in n for n in plain_names)
    assert all(not (names[id(p)].endswith("bias") or "norm" in names[id(p)]) for p in decay["params"])
    assert "mlm.bias" in plain_names and "albert.embeddings.norm.weight" in plain_names
    assert (
        "albert.groups.1.1.ffn_norm.weight" in plain_names and "albert.groups.1.1.attention_norm.weight" in plain_names
    )
    assert len(decay["params"]) + len(plain["params"]) == len(list(model.parameters()))
    assert plain["weight_decay"] == 0.0 and plain["adapt"] is False and decay["adapt"] is True


def test_adamw_option_and_unknown_optimizer():
    model = albert.AlbertModel(tiny_config())
    opt = build_optimizer(model, "adamw", 1e-3)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[1]["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        build_optimizer(model, "sgd", 1e-3)


def test_schedule_warmup_then_polynomial_decay():
    assert warmup_poly_decay(0, 10, 100) == 0.0
    assert warmup_poly_decay(5, 10, 100) == 0.5
    assert warmup_poly_decay(10, 10, 100) == pytest.approx(0.9)  # decay counts from step 0, as the official code
    assert warmup_poly_decay(55, 10, 100, power=2.0) == pytest.approx(0.45**2)
    assert warmup_poly_decay(100, 10, 100) == 0.0 and warmup_poly_decay(150, 10, 100) == 0.0
