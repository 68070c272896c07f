"""Run checkpoints: ``checkpoints/step-N/`` directories written atomically (weights in transformers' layout plus the
optimizer, schedule, step and every process's random state), ``model/`` beside them with the latest weights and the
tokenizer, the last K kept; on resume the newest intact checkpoint is loaded (a damaged newest one is skipped with a
warning that names it).
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
from pathlib import Path

import torch

from albert.checkpoint import read_weights
from albert.data import copy_tokenizer
from albert.errors import AlbertError, CheckpointError

log = logging.getLogger("albert")


class RunError(AlbertError):
    """A run directory or configuration that cannot be used."""


def latest_checkpoint(out: Path) -> Path | None:
    steps = sorted((out / "checkpoints").glob("step-*")) if (out / "checkpoints").is_dir() else []
    return steps[-1] if steps else None


def rng_state() -> dict[str, torch.Tensor]:
    """This process's random state: the CPU generator and, on a GPU, its own device's."""
    state = {"torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_rng"] = torch.cuda.get_rng_state()
    return state


def save_checkpoint(
    out: Path, model, optimizer, schedule, step: int, data_dir: str, keep_last: int, rng_states: list[dict]
) -> None:
    """checkpoints/step-N (atomic directory rename), then model/ (the latest weights + tokenizer), then pruning.
    ``rng_states`` holds every rank's random state (rank r resumes with its own dropout stream)."""
    final = out / "checkpoints" / f"step-{step:07d}"
    tmp = out / "checkpoints" / f".tmp-step-{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    state = {
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "step": step,
        "rng": rng_states,
    }
    torch.save(state, tmp / "trainer.pt")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    staging = out / ".tmp-model"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(final, staging, ignore=shutil.ignore_patterns("trainer.pt"))
    copy_tokenizer(data_dir, staging)
    old = out / ".old-model"
    if (out / "model").exists():
        os.replace(out / "model", old)
    os.replace(staging, out / "model")
    shutil.rmtree(old, ignore_errors=True)
    for stale in sorted((out / "checkpoints").glob("step-*"))[:-keep_last]:
        shutil.rmtree(stale)


class DamagedCheckpoint(RunError):
    """A checkpoint whose files cannot be read back (truncated by a full disk, corrupted)."""


def resume(out: Path, model, optimizer, schedule, rank: int = 0) -> int:
    """Load the newest intact checkpoint under ``out``; a damaged newest one (a truncated file) is skipped with a
    warning that names it, so a crash while the disk filled up costs one save interval, not the run."""
    candidates = sorted((out / "checkpoints").glob("step-*"), reverse=True)
    for k, path in enumerate(candidates):
        try:
            return load_checkpoint(path, model, optimizer, schedule, rank)
        except (DamagedCheckpoint, CheckpointError) as err:
            if k == len(candidates) - 1:
                raise RunError(f"{out}: no intact checkpoint to resume from (the oldest: {err})") from None
            log.warning("%s is damaged (%s); resuming from %s instead", path.name, err, candidates[k + 1].name)
    return 0


def load_checkpoint(path: Path, model, optimizer, schedule, rank: int = 0) -> int:
    model.load_hf_state_dict(read_weights(path), source=str(path))
    try:  # tensors, numbers and plain containers only: nothing in a checkpoint may run code when loaded
        state = torch.load(path / "trainer.pt", map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise DamagedCheckpoint(f"{path / 'trainer.pt'}: cannot read the trainer state ({err})") from None
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    states = state.get("rng") or [{k: state[k] for k in ("torch_rng", "cuda_rng") if k in state}]  # older layout
    if rank >= len(states):
        raise RunError(f"{path}: saved by {len(states)} process(es); cannot resume rank {rank}")
    mine = states[rank]
    torch.set_rng_state(mine["torch_rng"])
    if "cuda_rng" in mine and torch.cuda.is_available():
        torch.cuda.set_rng_state(mine["cuda_rng"])
    return state["step"]
