"""Learning-rate range test (Smith, "Cyclical Learning Rates", 2017; fastai's lr_find): train for a few hundred steps
while the rate rises exponentially from 1e-7 to 1, record the smoothed loss, stop once it has blown up, and suggest
the rate at the lowest smoothed loss divided by 10 (the rate at the minimum is already too high to train at: the
loss is about to turn). The model's weights and the random state are put back afterwards, so the training run that
follows starts exactly where it would have without the test.

Used by ``albert finetune --find-lr`` (the curve and the suggestion only) and ``--learning-rate auto`` (then trains
at the suggestion).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from albert import plot

LOW, HIGH = 1e-7, 1.0
SMOOTHING = 0.98  # exponential moving average of the loss, with bias correction (as fastai)
DIVERGED = 4.0  # stop once the smoothed loss is this many times its minimum


@dataclass
class RangeTest:
    rates: list[float]
    losses: list[float]  # smoothed
    raw_losses: list[float]
    suggested: float

    def save(self, out: Path) -> None:
        """lr_find.json (the numbers) and lr_find.png (the curve, the suggestion marked)."""
        (out / "lr_find.json").write_text(json.dumps(asdict(self), indent=2) + "\n")
        plt = plot.pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.rates, self.raw_losses, alpha=0.3, label="loss")
        ax.plot(self.rates, self.losses, label="smoothed loss")
        ax.axvline(self.suggested, color="tab:red", linestyle="--", label=f"suggested {self.suggested:.2g}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "lr_find.png", dpi=100)
        plt.close(fig)


def range_test(model: torch.nn.Module, optimizer, run_step: Callable[[int], float], steps: int) -> RangeTest:
    """``run_step(k)``: the forward and backward passes of step k, returning its loss (agreed by all processes);
    this function sets the rate, clips, steps the optimizer and restores the model and random state at the end."""
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    rates, smoothed, raw = [], [], []
    average = 0.0
    for k in range(steps):
        rate = LOW * (HIGH / LOW) ** (k / max(steps - 1, 1))
        for group in optimizer.param_groups:
            group["lr"] = rate
        loss = run_step(k)
        if not math.isfinite(loss):
            optimizer.zero_grad(set_to_none=True)
            break
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        rates.append(rate)
        raw.append(loss)
        smoothed.append(average / (1 - SMOOTHING ** (k + 1)))
        if k > 10 and smoothed[-1] > DIVERGED * min(smoothed):
            break
    model.load_state_dict(initial)
    torch.set_rng_state(rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng)
    if not rates:
        return RangeTest([], [], [], LOW)
    return RangeTest(rates, smoothed, raw, suggest(rates, smoothed))


def suggest(rates: list[float], smoothed: list[float]) -> float:
    """A tenth of the rate at the lowest smoothed loss, looking past the first tenth of the curve (there the
    average has seen a handful of batches, and a lucky first one would otherwise win)."""
    skip = min(max(3, len(rates) // 10), len(rates) - 1)
    best = min(range(skip, len(rates)), key=smoothed.__getitem__)
    return rates[best] / 10
