"""Learning-rate range test (Smith, "Cyclical Learning Rates", 2017; fastai's lr_find): train for a few hundred steps
while the rate rises exponentially from 1e-7 to 1, record the smoothed loss, stop once it has blown up, and suggest
a tenth of the rate where the loss starts to climb (see ``suggest``: past that rate training stops working, and
the rate to train at sits an order of magnitude below it). The model's weights and the random state are put back
afterwards, so the training run that follows starts exactly where it would have without the test.

Used by ``albert finetune --find-lr`` (the curve and the suggestion only) and ``--learning-rate auto`` (then trains
at the suggestion).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from albert import plot
from albert.optim import build_optimizer
from albert.outputs import strict_json

log = logging.getLogger("albert")

LOW, HIGH = 1e-7, 1.0
SMOOTHING = 0.98  # exponential moving average of the loss, with bias correction (as fastai)
DIVERGED = 4.0  # stop once the smoothed loss is this many times its minimum
RISE = 0.02  # a climb of the smoothed loss this far above its minimum so far marks where training stops working


@dataclass
class RangeTest:
    rates: list[float]
    losses: list[float]  # smoothed
    raw_losses: list[float]
    suggested: float

    def save(self, out: Path) -> None:
        """lr_find.json (the numbers) and lr_find.png (the curve, the suggestion marked)."""
        (out / "lr_find.json").write_text(strict_json(asdict(self), indent=2) + "\n")
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


def range_test(
    model: torch.nn.Module, optimizer, run_step: Callable[[int], float], steps: int, progress: bool = False
) -> RangeTest:
    """``run_step(k)``: the forward and backward passes of step k, returning its loss (agreed by all processes);
    this function sets the rate, clips, steps the optimizer and restores the model and random state at the end.
    ``progress``: a bar on stderr (the test takes a minute on a CPU; a silent minute looks like a hang)."""
    from tqdm import tqdm

    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    rates, smoothed, raw = [], [], []
    average = 0.0
    bar = tqdm(total=steps, disable=not progress, desc="learning-rate range test")
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
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{rate:.1e}", refresh=False)
        if k > 10 and smoothed[-1] > DIVERGED * min(smoothed):
            break
    bar.close()
    model.load_state_dict(initial)
    torch.set_rng_state(rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng)
    if not rates:
        return RangeTest([], [], [], LOW)
    return RangeTest(rates, smoothed, raw, suggest(rates, smoothed))


def suggest(rates: list[float], smoothed: list[float]) -> float:
    """A tenth of the rate where training stops working: the first rate at which the smoothed loss has climbed
    RISE above the lowest it reached before (past the first tenth of the curve, where the average has seen only a
    handful of batches). On a curve with a valley that is just past its bottom (fastai's "minimum / 10"); on a
    curve that stays flat until it blows up (a small model from random weights learns little in a few hundred
    steps at any rate) it is where the blow-up starts, while the minimum of a flat curve is noise. A curve that
    never climbs: a tenth of the rate at its lowest point."""
    skip = min(max(3, len(rates) // 10), len(rates) - 1)
    lowest = smoothed[skip]
    for k in range(skip, len(rates)):
        lowest = min(lowest, smoothed[k])
        if smoothed[k] > (1 + RISE) * lowest:
            return rates[k] / 10
    best = min(range(skip, len(rates)), key=smoothed.__getitem__)
    return rates[best] / 10


def rate_for_size(config) -> float:
    """The default peak rate by the model's width. 1e-3 for H ≤ 256 is measured (make demo: the pretrained 4-layer
    H=256 model reaches 0.843 test accuracy at 1e-3, 0.665 at 1e-4); 3e-5 for released sizes is the
    middle of the paper's Table 14 (1e-5 to 5e-5); 3e-4 between them is an interpolation, not a measurement."""
    if config.hidden_size <= 256:
        return 1e-3
    if config.hidden_size <= 512:
        return 3e-4
    return 3e-5


def choose_rate(cfg, model, run_step, out: Path, dist) -> float:
    """Fine-tuning's peak rate (cfg: a FinetuneConfig): the rate given; else, for auto and --find-lr, the range
    test's suggestion (its curve saved in out); else the rate for the model's width."""
    if isinstance(cfg.learning_rate, float) and not cfg.find_lr:
        return cfg.learning_rate
    if cfg.learning_rate is None and not cfg.find_lr:
        rate = rate_for_size(model.config)
        if dist.is_main:
            log.warning("learning rate %g (the default for hidden size %d)", rate, model.config.hidden_size)
        return rate
    optimizer = build_optimizer(model, "adamw", 1.0, cfg.weight_decay)
    test = range_test(model, optimizer, run_step, cfg.find_lr_steps, progress=cfg.progress and dist.is_main)
    if dist.is_main:
        test.save(out)
        log.warning(
            "learning-rate range test: suggested rate %.2g (curve: %s; %d steps)",
            test.suggested,
            out / "lr_find.png",
            len(test.rates),
        )
    return test.suggested
