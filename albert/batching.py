"""Training batches from length groups: which examples each optimizer step, process and forward pass uses.

An epoch's order is a function of (seed, epoch) alone, so a resumed run sees exactly the batches an uninterrupted
one does. With length grouping (the default) the shuffled examples are cut into windows of ``WINDOW_STEPS`` steps,
each window is sorted by length and cut into steps, and the steps are shuffled again: every step holds examples of
similar length (little padding) while the epoch stays random. The step with the longest example goes first, so a
budget that does not fit in memory fails at step 1, not hours in (transformers' group_by_length does the same).

A step's examples (the effective batch the user asked for, batch_size × grad_accum × processes) are shared over the
processes (every world_size-th example of the length-sorted step, so each gets similar lengths) and cut into
forward passes by a token budget (rows × longest row), and each pass's loss is weighted by its share of the step's
examples: the gradient is the per-example mean over the effective batch however the passes fall.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

WINDOW_STEPS = 50  # steps per sorted window (transformers' megabatch multiplier)


def row_costs(data) -> list[int]:
    """Padded tokens one example takes in a batch: its length, or options × the longest option (multiple choice)."""
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


def forward_passes(rows: Sequence[int], costs: Sequence[int], max_tokens: int, max_rows: int) -> list[list[int]]:
    """``rows`` cut into forward passes in their order, each within ``max_tokens`` padded tokens (rows × the
    longest) and ``max_rows`` rows; a single row longer than the budget still gets its own pass."""
    passes: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for r in rows:
        widest = max(longest, costs[r])
        if current and ((len(current) + 1) * widest > max_tokens or len(current) >= max_rows):
            passes.append(current)
            current, widest = [], costs[r]
        current.append(r)
        longest = widest
    if current:
        passes.append(current)
    return passes


def step_passes(
    step: Sequence[int],
    costs: Sequence[int],
    rank: int,
    world_size: int,
    max_tokens: int,
    max_rows: int,
    group_by_length: bool,
) -> list[list[int]]:
    """This process's forward passes for one optimizer step. Without length grouping the passes are the shuffled
    order cut into ``max_rows`` rows each (plain random batches)."""
    if not group_by_length:
        mine = list(step)[rank::world_size]
        return [mine[k : k + max_rows] for k in range(0, len(mine), max_rows)]
    return forward_passes(rank_share(step, costs, rank, world_size), costs, max_tokens, max_rows)
