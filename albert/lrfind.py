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
# A curve tells a rate only when the smoothed loss clearly fell before it climbed: by DESCENT of where it started.
# An untrained classifier's smoothed loss wanders by well under 1 % (it predicts the prior on every batch), so 5 %
# is a descent, not noise; a flat curve's climb point is only where training blows up, not a rate to train at.
DESCENT = 0.05
MIN_POINTS = 20  # fewer rates than this cover seven decades too coarsely to place anything
SANE = (1e-6, 1e-2)  # a suggestion outside this is never taken without saying so


@dataclass
class RangeTest:
    rates: list[float]
    losses: list[float]  # smoothed
    raw_losses: list[float]
    suggested: float
    inconclusive: str = ""  # why the curve tells no rate ("" when it does)

    def save(self, out: Path) -> None:
        """lr_find.json (the numbers) and lr_find.png (the curve, the suggestion marked). An inconclusive curve
        suggests nothing: "suggested" is null, the rate its climb point would have given is "rejected"."""
        data = asdict(self)
        if self.inconclusive:
            data["suggested"], data["rejected"] = None, self.suggested
        (out / "lr_find.json").write_text(strict_json(data, indent=2) + "\n")
        plt = plot.pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.rates, self.raw_losses, alpha=0.3, label="loss")
        ax.plot(self.rates, self.losses, label="smoothed loss")
        if self.inconclusive:
            ax.set_title(f"inconclusive: {self.inconclusive}", fontsize=8)
        else:
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
        return RangeTest([], [], [], LOW, "the first step's loss was not finite")
    suggested = suggest(rates, smoothed)
    return RangeTest(rates, smoothed, raw, suggested, verdict(rates, smoothed, suggested))


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


def verdict(rates: list[float], smoothed: list[float], suggested: float) -> str:
    """Why the curve cannot tell a rate, or "" when it can: too few points, no clear descent before the climb
    that placed the suggestion, or a suggestion outside SANE."""
    if len(rates) < MIN_POINTS:
        return f"{len(rates)} points (at least {MIN_POINTS} are needed: raise --find-lr-steps)"
    skip = min(max(3, len(rates) // 10), len(rates) - 1)
    climb = next((k for k in range(skip, len(rates)) if rates[k] >= 10 * suggested * (1 - 1e-9)), len(rates))
    start, lowest = smoothed[skip], min(smoothed[skip : climb + 1])
    if lowest > (1 - DESCENT) * start:
        fell = (start - lowest) / start
        return f"the loss fell {max(fell, 0):.0%} before it climbed ({DESCENT:.0%} is a clear descent)"
    if not SANE[0] <= suggested <= SANE[1]:
        return f"its suggestion {suggested:.2g} is outside [{SANE[0]:g}, {SANE[1]:g}]"
    return ""


SHORT_RUN_STEPS, SHORT_RUN_RATE = 64, 1e-3  # a small model's run of fewer steps than this defaults to this rate


def rate_for_size(config, steps: int | None = None) -> float:
    """The default peak rate by the model's width and the run's length in optimizer steps: for released sizes
    (H > 512) 3e-5, the middle of the paper's Table 14 (1e-5 to 5e-5); for small models 3e-4, or SHORT_RUN_RATE for
    a run of fewer than SHORT_RUN_STEPS steps. Chosen on four real sets over five seeds (docs/finetuning.md's rate
    tables) by the fewest runs whose model ends at one label, ties to the lower rate: in runs of a few hundred steps
    neither 3e-4 nor 1e-3 left a seed there, and in longer runs from a pretrained encoder 1e-3 did where 3e-4 did
    not; in the shortest runs 3e-4 left most seeds from random weights at one label, and 1e-3 fewer. Between H=256
    and 512 it is an extrapolation."""
    if config.hidden_size > 512:
        return 3e-5
    if steps is not None and steps < SHORT_RUN_STEPS:
        return SHORT_RUN_RATE
    return 3e-4


def default_for(config, steps: int | None) -> str:
    """What rate_for_size read, as the log says it (the run's length counts for small models only)."""
    length = f" and a run of {steps} steps" if steps is not None and config.hidden_size <= 512 else ""
    return f"hidden size {config.hidden_size}{length}"


@dataclass
class Rate:
    """Fine-tuning's peak rate and where it came from: "given", "default" (by hidden size), "range test" (its
    suggestion) or "default, range test inconclusive" (then ``inconclusive`` says why)."""

    value: float
    source: str
    inconclusive: str = ""


def choose_rate(cfg, model, run_step, out: Path, dist, steps: int | None = None) -> Rate:
    """Fine-tuning's peak rate (cfg: a FinetuneConfig; steps: the run's optimizer steps): the rate given; else, for
    auto and --find-lr, the range test's suggestion (its curve saved in out) when the curve tells one, the default
    for the model's width and the run's length when it cannot; else that default."""
    if isinstance(cfg.learning_rate, float) and not cfg.find_lr:
        return Rate(cfg.learning_rate, "given")
    default = rate_for_size(model.config, steps)
    if cfg.learning_rate is None and not cfg.find_lr:
        if dist.is_main:
            log.warning("learning rate %g (the default for %s)", default, default_for(model.config, steps))
        return Rate(default, "default")
    optimizer = build_optimizer(model, "adamw", 1.0, cfg.weight_decay)
    test = range_test(model, optimizer, run_step, cfg.find_lr_steps, progress=cfg.progress and dist.is_main)
    if dist.is_main:
        test.save(out)
    if test.inconclusive:
        if dist.is_main:
            log.warning(
                "learning-rate range test inconclusive: %s (curve: %s); using the default for %s, %g",
                test.inconclusive,
                out / "lr_find.png",
                default_for(model.config, steps),
                default,
            )
        return Rate(default, "default, range test inconclusive", test.inconclusive)
    if dist.is_main:
        log.warning(
            "learning-rate range test: suggested rate %.2g (curve: %s; %d steps)",
            test.suggested,
            out / "lr_find.png",
            len(test.rates),
        )
    return Rate(test.suggested, "range test")


def one_label_advice(losses: list[float], rate: float, source: str, prior: float | None = None) -> str:
    """What to change after a run whose kept model predicts one label, read from its training losses: a loss that
    rose well above where it started, or fell and then climbed back, is a rate too high (the model learned and then
    lost it: lower it); a loss that fell to ``prior`` (the entropy of the training labels: the loss of predicting
    each label's share and nothing else) and stopped there learned the label shares only, as short runs from random
    weights often do (docs/finetuning.md): train longer; a loss that stayed where it started is a rate too low
    or a run too short (raise it); a loss that fell and stayed down fits the training data without generalising (more
    data or epochs, not a rate)."""
    if len(losses) < 10:
        return f"Only {len(losses)} steps ran: train longer (--epochs)"
    window = max(2, len(losses) // 10)
    means = [sum(losses[k : k + window]) / window for k in range(len(losses) - window + 1)]
    start, end, peak, low = means[0], means[-1], max(means), min(means)
    lower, higher = f"{rate / 3:.2g}", f"{rate * 3:.2g}"
    if peak > 1.25 * start or (low < 0.8 * start and end > 0.95 * start):
        return (
            f"The training loss went from {start:.3f} up to {peak:.3f} (lowest {low:.3f}, last {end:.3f}): the rate "
            f"{rate:g} ({source}) is too high for this model and data; try --learning-rate {lower}"
        )
    if prior is not None and start > 1.05 * prior and abs(end - prior) <= 0.1 * prior:
        return (
            f"The training loss fell from {start:.3f} to {end:.3f}, the training labels' entropy ({prior:.3f}, what "
            f"predicting each label's share gives): the model learned how often each label occurs and nothing from "
            f"the texts. {len(losses)} steps ran: train longer (more --epochs or data), or try --learning-rate "
            f"{higher} (in docs/finetuning.md's short runs more steps helped more often than a higher rate)"
        )
    if end > 0.9 * start:
        return (
            f"The training loss stayed near {start:.3f} (last {end:.3f}): the rate {rate:g} ({source}) moved the "
            f"model too little; try --learning-rate {higher} or more --epochs"
        )
    return (
        f"The training loss fell from {start:.3f} to {end:.3f} while dev predictions stayed one label: the model "
        "fits the training texts without generalising; more training data or --epochs, not a rate, is what to try"
    )
