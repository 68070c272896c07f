"""Batches: which examples each optimizer step, process and forward pass uses, and how rows become padded arrays.

An epoch's order is a function of (seed, epoch) alone, so a resumed run sees exactly the batches an uninterrupted
one does. A step holds a random sample of the data (the effective batch the user asked for, batch_size × grad_accum
× processes), as any trainer's random batches do. What saves the padding is inside the step: each process takes its
share (every world_size-th example of the length-sorted step, so each gets similar work), sorts it by length and
cuts it into forward passes where that saves more padding than a pass costs, within a token budget. Each pass's
loss (the head's mean over its loss units: examples; labelled tokens for NER; sentences for summarisation) is weighed
by its share of the units of the whole step over all processes (albert/finetune.py's ``forward_backward``), so the
step's gradient is that of one padded batch of its examples (padding changes nothing), whatever the cut into passes
and processes, up to floating-point rounding and to dropout, whose random masks follow the cut, at a fraction of the
padded tokens. Span QA's start/end
softmax runs over every position of the padded window, padding included (as transformers' heads do), so its passes
are padded to the step's longest window (``QAFeatures.pad_to_step``), with QA's padding savings limited to steps of
short windows.

With ``group_by_length`` the steps themselves are also built from lengths, as transformers' group_by_length does:
the shuffled examples are cut into windows of ``WINDOW_STEPS`` steps, each window sorted by length and cut into
steps, and the steps shuffled again (the one with the longest example first, so a budget that does not fit fails at
step 1). Less padding still, but a step's examples are then of one length, and where length goes with the label
(long reviews are more often positive in the demo's data) its gradient leans to one class: off by default.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from albert.errors import AlbertError

WINDOW_STEPS = 50  # steps per sorted window (transformers' megabatch multiplier)
MAX_EXACT = 128  # rows of a step partitioned one by one; larger steps are partitioned in blocks


def row_costs(data) -> list[int]:
    """Padded tokens one example takes in a batch: its length, or options × the longest option (multiple choice)."""
    if getattr(data, "pad_to_step", False):  # every pass is padded to the step's longest row (span QA): budget it so
        widest = max(map(len, data.ids), default=0)
        return [widest] * len(data.ids)
    costs = []
    for ids in data.ids:
        if ids and isinstance(ids[0], list):  # multiple choice: one row per option
            costs.append(len(ids) * max(map(len, ids)))
        else:
            costs.append(len(ids))
    return costs


def epoch_steps(costs: Sequence[int], epoch: int, seed: int, per_step: int, group_by_length: bool) -> list[list[int]]:
    """The epoch's optimizer steps (``len(costs) // per_step`` of them), each a list of ``per_step`` example indices;
    the remainder of the shuffle is left out of this epoch (and comes in another)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(costs), generator=g).tolist()
    n_steps = len(costs) // per_step
    order = order[: n_steps * per_step]
    if not group_by_length:
        return [order[s * per_step : (s + 1) * per_step] for s in range(n_steps)]
    window = WINDOW_STEPS * per_step
    steps = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda r: costs[r])
        steps += [chunk[k : k + per_step] for k in range(0, len(chunk), per_step)]
    shuffled = [steps[i] for i in torch.randperm(len(steps), generator=g).tolist()]
    if shuffled:
        longest = max(range(len(shuffled)), key=lambda s: max(costs[r] for r in shuffled[s]))
        shuffled.insert(0, shuffled.pop(longest))
    return shuffled


def rank_share(step: Sequence[int], costs: Sequence[int], rank: int, world_size: int) -> list[int]:
    """This process's examples of a step: every world_size-th of the length-sorted step (similar work per process)."""
    ordered = sorted(step, key=lambda r: (costs[r], r))
    return ordered[rank::world_size]


def forward_passes(
    rows: Sequence[int], costs: Sequence[int], max_tokens: int, overhead: float, max_rows: int | None = None
) -> list[list[int]]:
    """``rows`` sorted by length and cut where cutting pays: the partition into contiguous runs that minimises
    Σ (rows × longest row + ``overhead``), each run within ``max_tokens`` padded tokens (a single row longer than the
    budget still gets its own pass) and ``max_rows`` rows. ``overhead`` is what one more forward pass costs, in
    tokens: cutting a run in two must save at least that much padding. Exact dynamic programming over the sorted
    rows (over blocks of rows when there are more than MAX_EXACT, to bound the work). Training cuts each step with
    it; prediction (albert/engines.py) cuts each call's rows."""
    order = sorted(rows, key=lambda r: (costs[r], r))
    block = -(-len(order) // MAX_EXACT) if order else 1  # rows per unit of the partition
    units = [order[k : k + block] for k in range(0, len(order), block)]
    n = len(units)
    best, cut = [0.0] + [float("inf")] * n, [0] * (n + 1)
    for j in range(1, n + 1):
        width = costs[units[j - 1][-1]]  # ascending order: the run's last row is its longest
        size = 0
        for i in range(j - 1, -1, -1):
            size += len(units[i])
            if (size * width > max_tokens or (max_rows is not None and size > max_rows)) and i < j - 1:
                break
            cost = best[i] + size * width + overhead
            if cost < best[j]:
                best[j], cut[j] = cost, i
    passes, j = [], n
    while j > 0:
        passes.append([r for unit in units[cut[j] : j] for r in unit])
        j = cut[j]
    return passes[::-1]


def step_passes(
    step: Sequence[int], costs: Sequence[int], rank: int, world_size: int, max_tokens: int, overhead: float
) -> list[list[int]]:
    """This process's forward passes for one optimizer step: its share of the step, cut by ``forward_passes``."""
    return forward_passes(rank_share(step, costs, rank, world_size), costs, max_tokens, overhead)


class BatchingError(AlbertError):
    """A training set that cannot be cut into the steps asked for."""


class StepPlan:
    """Which examples each optimizer step uses and how this process cuts its share into forward passes
    (albert/batching.py); a function of the seed and the step, so a resumed run repeats the same batches."""

    def __init__(self, cfg, data, world_size: int):
        self.costs = row_costs(data)
        self.world_size, self.seed, self.group = world_size, cfg.seed, cfg.group_by_length
        self.per_step = min(cfg.batch_size * cfg.grad_accum * world_size, len(data))  # a tiny set: one step of all
        if self.per_step < world_size:
            raise BatchingError(f"{len(data)} training examples cannot be shared by {world_size} processes")
        self.steps_per_epoch = len(data) // self.per_step
        self.max_tokens = cfg.max_tokens or cfg.batch_size * cfg.max_seq_length  # never more than a padded batch
        # one more forward pass must save this much padding: little on a CPU (cost ~ tokens), half a batch on a GPU
        # (a pass of few rows leaves it idle)
        self.overhead = self.max_tokens / (2 if str(cfg.device).startswith("cuda") else 16)
        self._epoch: tuple[int, list[list[int]]] | None = None

    def passes(self, step: int, rank: int) -> tuple[list[int], list[list[int]]]:
        """(the step's examples over all processes, this process's forward passes)."""
        epoch, index = divmod(step, self.steps_per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, epoch_steps(self.costs, epoch, self.seed, self.per_step, self.group))
        rows = self._epoch[1][index]
        mine = step_passes(rows, self.costs, rank, self.world_size, self.max_tokens, self.overhead)
        return rows, mine


# ----------------------------------------------------------------------------------------------------------------
# Collation, written once: every batch in albert-lite (fine-tuning for each task, pretraining, prediction on PyTorch
# or onnxruntime) is built by pad_rows; encoder_inputs adds the attention mask and segment ids an encoder reads.
# ----------------------------------------------------------------------------------------------------------------
def pad_rows(rows: Sequence[Sequence[float]], value: float = 0, dtype=np.int64, width: int | None = None) -> np.ndarray:
    """(len(rows), width) array, each row at its start and ``value`` after it; width defaults to the longest row."""
    width = max((len(r) for r in rows), default=0) if width is None else width
    out = np.full((len(rows), width), value, dtype=dtype)
    for b, row in enumerate(rows):
        out[b, : len(row)] = row
    return out


def encoder_inputs(
    ids: Sequence[Sequence[int]], types: Sequence[Sequence[int]] | None, pad_id: int, width: int | None = None
) -> dict[str, np.ndarray]:
    """input_ids, attention_mask (1 on real tokens) and token_type_ids (0 where ``types`` is None) as int64, padded
    to the longest row (or to ``width``)."""
    input_ids = pad_rows(ids, pad_id, width=width)
    width = input_ids.shape[1]
    segments = pad_rows(types, width=width) if types is not None else np.zeros_like(input_ids)
    return {
        "input_ids": input_ids,
        "attention_mask": pad_rows([[1] * len(r) for r in ids], width=width),
        "token_type_ids": segments,
    }


def as_tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(array) for name, array in arrays.items()}
