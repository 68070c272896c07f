"""LAMB as the official ALBERT code has it, parameter groups, and the warmup + polynomial-decay schedule.

LAMB (google-research/albert lamb_optimizer.py): no bias correction; update = m / (sqrt(v) + eps) + wd * w;
trust ratio ||w|| / ||update|| (1 if either norm is 0); LayerNorm and bias parameters get neither weight decay nor
the trust ratio. Defaults are the official ones: β1 0.9, β2 0.999, ε 1e-6, weight decay 0.01.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def is_excluded(name: str) -> bool:
    """The official exclusion (names containing LayerNorm, layer_norm or bias), with our module names."""
    return name.endswith("bias") or ".norm." in name or name.endswith("_norm.weight") or "LayerNorm" in name


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, plain = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (plain if is_excluded(name) else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay, "adapt": True},
        {"params": plain, "weight_decay": 0.0, "adapt": False},
    ]


class Lamb(torch.optim.Optimizer):
    """Layer-wise adaptive moments (You et al., 2019), in the form ALBERT was pretrained with."""

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.01,
        adapt: bool = True,
    ):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, adapt=adapt))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                m, v = state["m"], state["v"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                update = m / (v.sqrt() + group["eps"])
                if group["weight_decay"]:
                    update.add_(p, alpha=group["weight_decay"])
                ratio = 1.0
                if group["adapt"]:
                    w_norm, u_norm = p.norm(), update.norm()
                    ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
                p.add_(update * ratio, alpha=-group["lr"])
        return loss


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float = 0.01) -> torch.optim.Optimizer:
    groups = parameter_groups(model, weight_decay)
    if name == "lamb":
        return Lamb(groups, lr=lr, weight_decay=weight_decay)
    # AdamW with the official groups, decoupled decay and ε 1e-6; unlike the official AdamWeightDecayOptimizer, torch's
    # AdamW corrects the moments' bias (the official one has no bias correction)
    if name == "adamw":
        for group in groups:
            group.pop("adapt")
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-6)
    raise ValueError(f"unknown optimizer {name!r} (lamb or adamw)")


def warmup_poly_decay(step: int, warmup_steps: int, total_steps: int, power: float = 1.0) -> float:
    """Learning-rate factor: linear warmup to 1, then polynomial decay to 0 at total_steps (optimization.py)."""
    if warmup_steps and step < warmup_steps:
        return step / warmup_steps
    progress = min(step, total_steps) / max(1, total_steps)
    return (1.0 - progress) ** power


def build_schedule(optimizer, warmup_steps: int, total_steps: int, power: float = 1.0):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_poly_decay(step, warmup_steps, total_steps, power)
    )
