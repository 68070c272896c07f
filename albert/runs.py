"""Run checkpoints: ``checkpoints/step-N/`` directories written atomically (weights in transformers' layout plus the
optimizer, schedule, step and every process's random state), ``model/`` beside them with the latest weights and the
tokenizer, the last K kept; on resume the newest intact checkpoint is loaded (a damaged newest one is skipped with a
warning that names it).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import signal
from pathlib import Path

import torch

from albert import modelcard
from albert.checkpoint import read_weights, write_text
from albert.data import copy_tokenizer
from albert.errors import AlbertError, CheckpointError
from albert.extras import require
from albert.outputs import replace_directory, strict_json

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


def write_checkpoint(out: Path, model, state: dict, keep_last: int) -> Path:
    """checkpoints/step-N: the weights (transformers' layout) and trainer.pt (``state``: optimizer, schedule, step,
    random states, whatever else the run needs to continue), renamed into place whole; then the oldest beyond
    ``keep_last`` are removed."""
    step = state["step"]
    final = out / "checkpoints" / f"step-{step:07d}"
    tmp = out / "checkpoints" / f".tmp-step-{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    torch.save(state, tmp / "trainer.pt")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for stale in sorted((out / "checkpoints").glob("step-*"))[:-keep_last]:
        shutil.rmtree(stale)
    return final


def save_checkpoint(
    out: Path,
    model,
    optimizer,
    schedule,
    step: int,
    data_dir: str,
    keep_last: int,
    rng_states: list[dict],
    card: str | None = None,
) -> None:
    """Pretraining: checkpoints/step-N, then model/ (the latest weights + tokenizer, and ``card`` as its README.md:
    albert/modelcard.py; replaced whole). ``rng_states`` holds every rank's random state (rank r resumes with its own
    dropout stream)."""
    state = {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "step": step, "rng": rng_states}
    final = write_checkpoint(out, model, state, keep_last)
    staging = out / ".tmp-model"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(final, staging, ignore=shutil.ignore_patterns("trainer.pt"))
    copy_tokenizer(data_dir, staging)
    if card is not None:  # in the staging directory: the card always describes the weights beside it
        write_text(staging / modelcard.FILENAME, card)
    replace_directory(staging, out / "model")  # one atomic swap: a kill leaves the previous model/ or this one


class DamagedCheckpoint(RunError):
    """A checkpoint whose files cannot be read back (truncated by a full disk, corrupted)."""


def resume(out: Path, model, optimizer, schedule, rank: int = 0) -> dict:
    """Load the newest intact checkpoint under ``out``; a damaged newest one (a truncated file) is skipped with a
    warning that names it, so a crash while the disk filled up costs one save interval, not the run. Returns the
    checkpoint's trainer state (its ``step`` and whatever else the run saved)."""
    candidates = sorted((out / "checkpoints").glob("step-*"), reverse=True)
    for k, path in enumerate(candidates):
        try:
            return load_checkpoint(path, model, optimizer, schedule, rank)
        except (DamagedCheckpoint, CheckpointError) as err:
            if k == len(candidates) - 1:
                raise RunError(f"{out}: no intact checkpoint to resume from (the oldest: {err})") from None
            log.warning("%s is damaged (%s); resuming from %s instead", path.name, err, candidates[k + 1].name)
    raise RunError(f"{out}: no checkpoint to resume from")


def load_checkpoint(path: Path, model, optimizer, schedule, rank: int = 0) -> dict:
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
    return state


def truncate_log(path: Path, step: int) -> None:
    """On resume, drop lines logged after the checkpoint we continue from (they will be logged again), and a line
    torn by the crash we resume from (only the last can be)."""
    if path.exists():
        kept = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("step", -1) <= step:
                kept.append(line)
        write_text(path, "".join(line + "\n" for line in kept))


class StopFlag:
    """Ctrl-C / SIGTERM set a flag; the loop finishes its step, all ranks agree, a checkpoint is written."""

    def __init__(self):
        self.flag = False
        self.previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay with the caller
                pass

    def _handle(self, signum, frame) -> None:
        self.flag = True

    def requested(self, dist) -> bool:
        return dist.mean(float(self.flag)) > 0 if dist.enabled else self.flag

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


REPORT_TO = ("none", "tensorboard")


class Reporter:
    """Where a run's metrics go: ``log.jsonl`` always (the main process only), and TensorBoard event files under
    ``tensorboard/`` with report_to="tensorboard" (eval_* keys as eval/*, the rest as train/*, at their step). On
    resume, TensorBoard drops what was logged after the checkpoint (purge_step), as the JSONL log does."""

    def __init__(self, out: Path, report_to: str = "none", is_main: bool = True, resumed_step: int | None = None):
        self.path, self.is_main, self.writer = out / "log.jsonl", is_main, None
        if is_main and resumed_step is not None:
            truncate_log(self.path, resumed_step)
        if is_main and report_to == "tensorboard":
            require("tensorboard", "--report-to tensorboard")
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=resumed_step)

    def write(self, record: dict) -> None:
        if not self.is_main:
            return
        with open(self.path, "a") as f:
            f.write(strict_json(record) + "\n")
        if self.writer is not None and "step" in record:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    tag = f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key}"
                    self.writer.add_scalar(tag, value, record["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
