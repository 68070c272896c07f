"""Distributed set-up from the torchrun environment: one process per device, nccl on CUDA, gloo on CPU.

Without torchrun (no WORLD_SIZE) everything runs in one process and these helpers are no-ops, so the same loop
serves a laptop, one GPU and many.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from albert.errors import ConfigError


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            torch_dist.barrier()

    def gather_objects(self, value) -> list:
        """Every process's ``value`` in rank order, on every process (all must call)."""
        if not self.enabled:
            return [value]
        gathered: list = [None] * self.world_size
        torch_dist.all_gather_object(gathered, value)
        return gathered

    def broadcast(self, value):
        """Rank 0's ``value`` on every process (all must call; the others pass anything)."""
        if not self.enabled:
            return value
        box = [value]
        torch_dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, value: float) -> float:
        """The sum of a number over all processes (all must call)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        torch_dist.all_reduce(tensor)
        return tensor.item()

    def mean(self, value: float) -> float:
        """The mean of a number over all processes (for logging)."""
        return self.sum(value) / self.world_size


def choose_device(name: str = "auto") -> torch.device:
    """``auto`` → cuda when available, else cpu; an explicit device that this machine lacks is a ConfigError here,
    not a CUDA traceback at the first tensor moved."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is a CPU build" if torch.version.cuda is None else "no CUDA device is visible"
            raise ConfigError(f"device '{name}': CUDA is not available ({why}); use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device '{name}': this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device '{name}': MPS is not available on this machine; use --device cpu or auto")
    return device


def setup(device: str = "auto") -> Dist:
    """Read RANK/WORLD_SIZE/LOCAL_RANK (set by torchrun), pick the device, join the process group."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    chosen = choose_device(device)
    if chosen.type == "cuda" and chosen.index is None:  # one GPU per process under torchrun
        torch.cuda.set_device(local_rank)
        chosen = torch.device("cuda", local_rank)
    if world_size > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    return Dist(rank=rank, world_size=world_size, local_rank=local_rank, device=chosen)


def teardown(dist: Dist, run=None) -> None:
    """End this process's part in the process group; every process calls it. ``run`` (a loop's state with ``model``
    and ``ddp``) gives up its DistributedDataParallel wrapper first: the wrapper's reducer holds the process group,
    which would otherwise outlive destroy_process_group and be freed at interpreter exit, where gloo's threads now and
    then abort the process ("terminate called without an active exception": exit code -6 after a run that finished)."""
    if run is not None:
        run.ddp = run.model
    if dist.enabled and torch_dist.is_initialized():
        gc.collect()  # free the wrapper (it may sit in reference cycles) while the group still exists
        torch_dist.barrier()  # every process here (rank 0 may still be writing) before the group goes
        torch_dist.destroy_process_group()
