"""Pretraining: PretrainConfig and train(cfg), one plain loop for one CPU, one GPU or many (torchrun).

Per step: the step's global batch (a function of seed, epoch and step) is split over processes and accumulation
micro-steps → forward (MLM logits at the masked positions only, plus SOP) → backward (DDP syncs on the last
micro-step) → global-norm clip → LAMB → warmup + polynomial decay → log → evaluate → checkpoint. A checkpoint holds
the weights in transformers' layout, the optimizer and schedule, the step and the RNG state; since the data order
and masks are functions of the step, ``resume=True`` continues with exactly the losses an uninterrupted run has.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from albert import dist as distributed
from albert import modelcard, plot, runs
from albert.checkpoint import read_weights, write_text
from albert.config import PRESETS, AlbertConfig
from albert.data import PretrainData
from albert.fields import (
    AT_LEAST_1,
    DROPOUT,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    DeviceName,
    OneOf,
    Range,
    coerce_fields,
)
from albert.model import AlbertForPreTraining
from albert.optim import build_optimizer, build_schedule
from albert.outputs import (
    absolute_if_local,
    check_directory,
    claim_directory,
    finish_directory,
    strict_json,
    working_directory,
)
from albert.readers import json_file
from albert.runs import REPORT_TO, Reporter, RunError, StopFlag, latest_checkpoint, rng_state


@dataclass
class PretrainConfig:
    data: str = ""  # a directory written by `albert prepare`
    out: str = ""  # the run directory
    model: str = (
        "albert-base-v2"  # a preset (its shape; the vocabulary comes from the data), config.json, or checkpoint dir
    )
    max_steps: int = 10000  # optimizer steps in the whole run
    batch_size: int = 32  # sequences per process and micro-step
    grad_accum: int = 1  # micro-steps per optimizer step (global batch: batch_size × grad_accum × processes)
    learning_rate: float | None = None  # peak rate after warmup; None: by optimizer, global batch and width
    warmup_steps: int | None = None  # None: 2.5 % of max_steps at official batch sizes (≥ 1,024), else 10 %
    poly_power: float = 1.0  # polynomial decay to 0 at max_steps (1 = linear, the official schedule)
    optimizer: str | None = None  # lamb or adamw; None: lamb at global batches ≥ 1,024 (the official), else adamw
    weight_decay: float = 0.01  # decoupled weight decay (not on LayerNorm and biases)
    clip_norm: float = 1.0  # clip the global gradient norm to this
    max_seq_length: int = 128  # tokens per sequence, [CLS] A [SEP] B [SEP]
    max_predictions: int | None = None  # most masked positions per sequence; None: 20 at official batch sizes
    # (the released recipe), else enough for masked_lm_prob (ceil(masked_lm_prob × max_seq_length))
    masked_lm_prob: float | None = None  # share of tokens masked (whole-word n-grams); None: 0.15 at official
    # batch sizes, 0.4 below (more predictions per step: measured faster on small budgets)
    short_seq_prob: float = 0.1  # share of sequences made shorter on purpose (as the official code does)
    masking: str = "dynamic"  # dynamic (new masks every epoch) or static (dupe_factor fixed variants)
    dupe_factor: int = 10  # static masking: fixed masked copies of the data
    eval_fraction: float = 0.01  # share of documents held out
    eval_every: int = 500  # steps between held-out evaluations
    eval_batches: int = 20  # batches per held-out evaluation
    save_every: int = 1000  # steps between checkpoints (atomic; SIGTERM also saves one)
    keep_last: int = 3  # checkpoints kept
    log_every: int = 10  # steps between log.jsonl lines
    report_to: str = "none"  # also log to: tensorboard (event files in out/tensorboard) or none
    seed: int = 12345  # seeds data order, masking and initialisation
    device: str = "auto"  # auto (CUDA when available), cpu, cuda, cuda:N or mps
    bf16: bool = True  # bf16 autocast on CUDA (fp32 on CPU, where bf16 is emulated and slow)
    dropout: float | None = None  # override every dropout of the model: hidden, attention and before SOP
    mlm_bias_init: str = "unigram"  # a new model's MLM output bias starts at the log unigram frequencies, or at zero
    resume: bool = False  # continue the run in out from its latest intact checkpoint
    progress: bool = True  # show a progress bar
    overwrite: bool = False  # replace what a non-empty out directory holds (not for --resume)

    LIMITS: ClassVar[dict] = {
        "max_steps": AT_LEAST_1,
        "batch_size": AT_LEAST_1,
        "grad_accum": AT_LEAST_1,
        "learning_rate": POSITIVE,
        "warmup_steps": NON_NEGATIVE,
        "poly_power": POSITIVE,
        "optimizer": OneOf(("lamb", "adamw")),
        "weight_decay": NON_NEGATIVE,
        "clip_norm": POSITIVE,
        "max_seq_length": Range(8),  # [CLS] A [SEP] B [SEP] with a few tokens each
        "max_predictions": AT_LEAST_1,
        "masked_lm_prob": Range(0, 1, low_open=True),
        "short_seq_prob": PROBABILITY,
        "masking": OneOf(("dynamic", "static")),
        "dupe_factor": AT_LEAST_1,
        "eval_fraction": Range(0, 1, high_open=True),
        "eval_every": AT_LEAST_1,
        "eval_batches": AT_LEAST_1,
        "save_every": AT_LEAST_1,
        "keep_last": AT_LEAST_1,
        "log_every": AT_LEAST_1,
        "report_to": OneOf(REPORT_TO),
        "seed": NON_NEGATIVE,
        "device": DeviceName(),
        "dropout": DROPOUT,
        "mlm_bias_init": OneOf(("unigram", "zero")),
    }

    def __post_init__(self) -> None:
        coerce_fields(self)  # YAML, flags and Python callers alike: each field as its declared type


# Fields that must not change when a run is resumed (the rest, e.g. max_steps or save_every, may).
_IDENTITY = (
    "data",
    "model",
    "batch_size",
    "grad_accum",
    "max_seq_length",
    "max_predictions",
    "masked_lm_prob",
    "short_seq_prob",
    "masking",
    "dupe_factor",
    "eval_fraction",
    "seed",
    "optimizer",
    "learning_rate",
    # the schedule and the update rule: changing them mid-run would silently make another run
    "warmup_steps",
    "poly_power",
    "weight_decay",
    "clip_norm",
    "dropout",
)  # not mlm_bias_init: it sets a new model's first step only, and a resumed run loads its weights


log = logging.getLogger("albert")


OFFICIAL_BATCH = 1024  # global batches from here up get the released recipe; LAMB was made for large batches
OFFICIAL_LAMB_RATE = 0.00176  # run_pretraining.py, for a global batch of 4,096


def small_batch_rate(optimizer: str, hidden_size: int) -> float:
    """The default peak rate below OFFICIAL_BATCH: AdamW 2e-3 × 256 / hidden size (Adam's rate for hidden matrices
    scales with 1 / width; μP, Yang et al. 2021), LAMB 5e-3 (its trust ratio already sizes each layer's step by its
    weights' norm). Chosen at H=256 by benchmarks/pretrain_learning.py across corpora (docs/pretraining.md has the
    table and the corpus left out); wider models are extrapolated, not measured here."""
    if optimizer == "lamb":
        return 5e-3
    return 2e-3 * 256 / hidden_size


def resolve_masking(cfg: PretrainConfig, world_size: int) -> PretrainConfig:
    """cfg with the masking budget it leaves to the defaults filled in. The released recipe masks 15 % with at
    most 20 predictions per sequence; a small batch sees few tokens per step, and masking 40 % (up to
    ceil(0.4 × max_seq_length) predictions) gives it more to learn from (Wettig et al. 2023 found 40 % no worse than
    15 % for BERT; ours is compared in docs/pretraining.md, held-out accuracy measured at 15 % either way)."""
    official = cfg.batch_size * cfg.grad_accum * world_size >= OFFICIAL_BATCH
    prob = cfg.masked_lm_prob
    if prob is None:
        prob = 0.15 if official else 0.4
    predictions = cfg.max_predictions
    if predictions is None:
        predictions = 20 if official and cfg.masked_lm_prob is None else math.ceil(prob * cfg.max_seq_length)
    return dataclasses.replace(cfg, masked_lm_prob=prob, max_predictions=predictions)


def resolve_recipe(cfg: PretrainConfig, config: AlbertConfig, world_size: int) -> PretrainConfig:
    """cfg with the optimizer, peak rate and warmup it leaves to the defaults filled in (what run_config.json
    records). The released recipe (LAMB 0.00176, warmup 2.5 %) is for global batches of thousands; a run of a few
    hundred steps at a batch of 32 learns nothing but token frequencies with it, so small batches get AdamW at
    the rate measured for them (``small_batch_rate``) and a longer warmup (10 %)."""
    global_batch = cfg.batch_size * cfg.grad_accum * world_size
    official = global_batch >= OFFICIAL_BATCH
    optimizer = cfg.optimizer or ("lamb" if official else "adamw")
    rate = cfg.learning_rate
    if rate is None:
        rate = (
            OFFICIAL_LAMB_RATE if official and optimizer == "lamb" else small_batch_rate(optimizer, config.hidden_size)
        )
    warmup = cfg.warmup_steps
    if warmup is None:
        warmup = int((0.025 if official else 0.1) * cfg.max_steps)
    if (cfg.optimizer, cfg.learning_rate, cfg.warmup_steps) != (optimizer, rate, warmup):
        log.info(
            "%s, peak learning rate %g, %d warmup steps (defaults for a global batch of %d, hidden size %d)",
            optimizer,
            rate,
            warmup,
            global_batch,
            config.hidden_size,
        )
    return dataclasses.replace(cfg, optimizer=optimizer, learning_rate=rate, warmup_steps=warmup)


def model_config(cfg: PretrainConfig, vocab_size: int) -> tuple[AlbertConfig, Path | None]:
    """The model's config and, if cfg.model is a checkpoint directory, where to load weights from."""
    source = Path(cfg.model)
    if cfg.model.removeprefix("albert/") in PRESETS:
        config, weights = AlbertConfig.from_name(cfg.model, vocab_size=vocab_size), None
    elif source.is_dir():
        config, weights = AlbertConfig.from_json_file(source / "config.json"), source
    elif source.is_file():
        config, weights = AlbertConfig.from_json_file(source), None
    else:
        raise RunError(f"model {cfg.model!r} is neither a preset ({', '.join(sorted(PRESETS))}) nor a config file/dir")
    if config.vocab_size != vocab_size:
        raise RunError(
            f"the model has vocab_size {config.vocab_size} but the data's tokenizer has {vocab_size} "
            f"pieces ({cfg.model} vs {cfg.data})"
        )
    if cfg.max_seq_length > config.max_position_embeddings:
        raise RunError(
            f"max_seq_length {cfg.max_seq_length} exceeds the model's {config.max_position_embeddings} positions"
        )
    if cfg.dropout is not None:
        config.hidden_dropout_prob = config.attention_probs_dropout_prob = cfg.dropout
        config.classifier_dropout_prob = cfg.dropout
    return config, weights


def _check_run_dir(cfg: PretrainConfig, target: Path, out: Path) -> None:
    """Before anything is read: a new run needs a free --out, a resumed one a run to resume (in ``out``: the
    target itself or the staging directory of a killed --overwrite run)."""
    if cfg.resume and not (out / "run_config.json").is_file():
        raise RunError(f"{target}: nothing to resume (no run_config.json)")
    if not cfg.resume:
        if (target / "run_config.json").is_file() and not cfg.overwrite:
            raise RunError(
                f"{target} already holds a run; pass --resume {target} to continue it, or choose another --out"
            )
        check_directory(target, "--out", cfg.overwrite, _inputs(cfg))


def absolute_paths(cfg: PretrainConfig) -> PretrainConfig:
    """cfg with its local paths absolute (a preset name or hub id as given)."""
    data, model = absolute_if_local(cfg.data), absolute_if_local(cfg.model)
    return dataclasses.replace(cfg, data=data, out=absolute_if_local(cfg.out, always=True), model=model)


def _check_resume(cfg: PretrainConfig, out: Path, world_size: int) -> None:
    """A resumed run's settings (resolved) must be the saved run's, or it would not continue it."""
    saved_path = out / "run_config.json"
    saved = _resolved_record(json_file(saved_path, RunError))
    saved.update(data=absolute_if_local(saved.get("data")), model=absolute_if_local(saved.get("model")))
    changed = [f"{k}: {saved.get(k)!r} → {getattr(cfg, k)!r}" for k in _IDENTITY if saved.get(k) != getattr(cfg, k)]
    if saved.get("world_size", 1) != world_size:
        changed.append(f"world_size: {saved.get('world_size')} → {world_size}")
    if changed:
        raise RunError(
            f"{out} was run with another configuration; resuming would not continue it: {'; '.join(changed)}"
        )


_DEFAULTED = ("optimizer", "learning_rate", "warmup_steps", "masked_lm_prob", "max_predictions")


def _inherit_saved(cfg: PretrainConfig, out: Path) -> PretrainConfig:
    """On --resume, what the user leaves to the defaults is what the saved run used: the defaults may have changed
    since it started (they did: before December 2026 a batch of 32 got LAMB 0.00176 and 15 % masking)."""
    path = out / "run_config.json"
    if not (cfg.resume and path.is_file()):
        return cfg
    saved = _resolved_record(json_file(path, RunError))
    kept = {k: saved[k] for k in _DEFAULTED if getattr(cfg, k) is None and saved.get(k) is not None}
    return dataclasses.replace(cfg, **kept)


def _resolved_record(saved: dict) -> dict:
    """A run_config.json as this version writes it: older versions recorded warmup_steps unresolved (None)."""
    if "warmup_steps" in saved and saved["warmup_steps"] is None:
        return {**saved, "warmup_steps": int(0.025 * saved["max_steps"])}  # their default then
    return saved


def _inputs(cfg: PretrainConfig) -> list[str]:
    return [cfg.data, cfg.model]


def _micro_batches(data: PretrainData, step: int, cfg: PretrainConfig, dist) -> tuple[int, list[list[int]]]:
    """The indices this process uses at ``step``: the global batch is [micro][rank][batch_size]."""
    per_step = cfg.batch_size * cfg.grad_accum * dist.world_size
    steps_per_epoch = data.steps_per_epoch(per_step)
    if steps_per_epoch == 0:
        raise RunError(
            f"{cfg.data}: fewer training instances than one global batch of {per_step} sequences (--batch-size "
            f"{cfg.batch_size} × --grad-accum {cfg.grad_accum} × {dist.world_size} process(es)): lower --batch-size, "
            "or prepare a larger corpus"
        )
    epoch, offset = divmod(step, steps_per_epoch)
    first = offset * per_step
    micro = []
    for m in range(cfg.grad_accum):
        start = first + (m * dist.world_size + dist.rank) * cfg.batch_size
        micro.append(list(range(start, start + cfg.batch_size)))
    return epoch, micro


def _metrics(out, batch) -> dict[str, float]:
    labels = batch["labels"]
    predicted = labels != -100
    mlm_acc = (out.prediction_logits.argmax(-1) == labels)[predicted].float().mean()
    sop_acc = (out.sop_logits.argmax(-1) == batch["sentence_order_label"]).float().mean()
    return {
        "loss": out.loss.item(),
        "mlm_loss": out.mlm_loss.item(),
        "sop_loss": out.sop_loss.item(),
        "mlm_acc": mlm_acc.item(),
        "sop_acc": sop_acc.item(),
    }


@torch.no_grad()
def evaluate(model, data: PretrainData, cfg: PretrainConfig, device, batches: int) -> dict[str, float]:
    """Held-out MLM/SOP loss and accuracy on the first ``batches`` batches of the eval split's fixed instances."""
    model.eval()
    total = len(data.pairs(0))
    sums: dict[str, float] = {}
    n = 0
    for start in range(0, min(total, batches * cfg.batch_size), cfg.batch_size):
        positions = range(start, min(start + cfg.batch_size, total))
        batch = {k: v.to(device) for k, v in data.batch(0, positions, shuffle=False).items()}
        for key, value in _metrics(model(**batch), batch).items():
            sums[key] = sums.get(key, 0.0) + value
        n += 1
    model.train()
    return {f"eval_{k}": v / max(n, 1) for k, v in sums.items()}


def mlm_bias(data: PretrainData, max_tokens: int = 20_000_000) -> torch.Tensor:
    """log p(token) over the training documents (add-one smoothed; the first ``max_tokens`` of them).

    A new model's MLM head starts where it would otherwise spend its first hundred steps going: at the unigram
    distribution. With a zero bias the fastest way down the loss is to make every hidden state alike and point
    them all at the frequent tokens, and at a small batch's high learning rates that collapse does not come back
    (one token predicted everywhere, benchmarks/pretrain_learning.py); with the prior in the bias the hidden states
    are free to carry context from the first step."""
    pieces, seen = [], 0
    for shard_index, doc in data.documents:
        shard = data.shards[shard_index]
        first, last = shard["documents"][doc], shard["documents"][doc + 1]
        pieces.append(shard["tokens"][shard["segments"][first] : shard["segments"][last]])  # views of the map
        seen += len(pieces[-1])
        if seen >= max_tokens:
            break
    counts = np.bincount(np.concatenate(pieces), minlength=data.vocab_size)[: data.vocab_size]
    smoothed = counts.astype(np.float64) + 1.0
    return torch.from_numpy(np.log(smoothed / smoothed.sum())).float()


EVAL_MASKING = {"masked_lm_prob": 0.15, "max_predictions": 20}  # the released recipe's


def pretrain_data(cfg: PretrainConfig, split: str) -> PretrainData:
    """The train or held-out split of cfg.data with cfg's instance settings. The train split is masked as cfg says
    (resolved: see resolve_masking); the held-out split always at the released recipe's 15 % (≤ 20 per sequence),
    so held-out accuracies compare across runs whatever they train with."""
    if split == "eval":
        masking = EVAL_MASKING
    else:  # train() has resolved it for its world size; other callers get one process's defaults
        resolved = resolve_masking(cfg, world_size=1)
        masking = {"masked_lm_prob": resolved.masked_lm_prob, "max_predictions": resolved.max_predictions}
    return PretrainData(
        cfg.data,
        split=split,
        max_seq_length=cfg.max_seq_length,
        max_predictions=masking["max_predictions"],
        seed=cfg.seed,
        masked_lm_prob=masking["masked_lm_prob"],
        short_seq_prob=cfg.short_seq_prob,
        eval_fraction=cfg.eval_fraction,
        masking=cfg.masking,
        dupe_factor=cfg.dupe_factor,
    )


@dataclass
class Run:
    """A pretraining run once set up: what its loop and its end read (set_up builds it)."""

    cfg: PretrainConfig  # resolved: masking, optimizer, rate and warmup filled in, paths absolute
    dist: Any  # this process's place in the run (albert/dist.py)
    data: PretrainData
    eval_data: PretrainData | None
    model: AlbertForPreTraining
    ddp: torch.nn.Module  # the model, or its DistributedDataParallel wrapper across processes
    optimizer: torch.optim.Optimizer
    schedule: Any
    step: int  # steps done: 0, or the checkpoint's when resuming
    target: Path  # where the run ends up
    out: Path  # where it writes (a staging directory when it replaces target)
    autocast: Any


def train(cfg: PretrainConfig) -> dict[str, Any]:
    """Run (or resume) pretraining; returns the last logged metrics. Rank 0 writes everything under cfg.out."""
    run = set_up(cfg)
    last = train_loop(run)
    return finish(run, last)


def set_up(cfg: PretrainConfig) -> Run:
    """Checks, resolved settings, data, model, optimizer (a checkpoint's when resuming); the run directory claimed and
    its run_config.json written."""
    if not cfg.data or not cfg.out:
        raise RunError("pretraining needs data (a prepared directory) and out (the run directory)")
    plot.check_available()  # the curves at the end need the [train] extra: say so now, not after the run
    dist = distributed.setup(cfg.device)
    target = Path(cfg.out)
    # decided by every rank before any writes (rank 0 claims only after DDP's construction has synchronised them)
    out = working_directory(target, cfg.overwrite, cfg.resume)
    _check_run_dir(cfg, target, out)
    cfg = absolute_paths(cfg)  # run_config.json records them so, and --resume works from any folder
    target, out = Path(cfg.out), Path(absolute_if_local(str(out), always=True))
    cfg = resolve_masking(_inherit_saved(cfg, out), dist.world_size)
    data = pretrain_data(cfg, "train")
    eval_data = pretrain_data(cfg, "eval") if cfg.eval_fraction > 0 else None
    config, init_from = model_config(cfg, data.vocab_size)
    cfg = resolve_recipe(cfg, config, dist.world_size)
    if cfg.resume:
        _check_resume(cfg, out, dist.world_size)
    torch.manual_seed(cfg.seed)
    model = AlbertForPreTraining(config)
    if init_from is not None:
        model.load_hf_state_dict(read_weights(init_from), str(init_from))
    elif cfg.mlm_bias_init == "unigram":
        with torch.no_grad():
            model.mlm.bias.copy_(mlm_bias(data))
    model.to(dist.device).train()
    optimizer = build_optimizer(model, cfg.optimizer, cfg.learning_rate, cfg.weight_decay)
    schedule = build_schedule(optimizer, cfg.warmup_steps, cfg.max_steps, cfg.poly_power)
    step = 0
    if cfg.resume and latest_checkpoint(out) is not None:
        step = runs.resume(out, model, optimizer, schedule, dist.rank)["step"]
    elif cfg.resume and dist.is_main:
        log.warning("%s holds no checkpoint yet (the run stopped before its first): starting over from step 0", target)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if dist.enabled else model
    if dist.is_main:  # every rank has checked out (DDP's construction above synchronised them): now claim it
        claim_directory(target, "--out", cfg.overwrite, _inputs(cfg), resumable=cfg.resume, work=out)
        record = {**dataclasses.asdict(cfg), "world_size": dist.world_size}
        write_text(out / "run_config.json", strict_json(record, indent=2) + "\n")
    on_gpu_bf16 = dist.device.type == "cuda" and cfg.bf16
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_gpu_bf16 else contextlib.nullcontext()
    return Run(cfg, dist, data, eval_data, model, ddp, optimizer, schedule, step, target, out, autocast)


def train_loop(run: Run) -> dict[str, Any]:
    """Steps until max_steps or a stop signal, logging every log_every, evaluating every eval_every and checkpointing
    every save_every steps (and at the end, and when stopped); returns the last logged metrics."""
    from tqdm import tqdm

    cfg, dist = run.cfg, run.dist
    reporter = Reporter(run.out, cfg.report_to, dist.is_main, resumed_step=run.step)
    stop = StopFlag()
    bar = tqdm(total=cfg.max_steps, initial=run.step, disable=not (cfg.progress and dist.is_main), desc="pretraining")
    try:  # the signal handlers restored and the log closed however the loop ends (an error, a stop, the last step)
        last: dict[str, Any] = {}
        tokens, tick = 0, time.perf_counter()
        while run.step < cfg.max_steps:
            epoch, sums, step_tokens, grad_norm = train_step(run)
            step, tokens = run.step, tokens + step_tokens
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                elapsed, tick = time.perf_counter() - tick, time.perf_counter()
                last = {"step": step, "epoch": epoch, **{k: dist.mean(v) for k, v in sums.items()}}
                last |= {"lr": run.schedule.get_last_lr()[0], "grad_norm": float(grad_norm)}
                last["tokens_per_s"], tokens = tokens / elapsed, 0
                bar.set_postfix(loss=f"{last['loss']:.3f}", mlm=f"{last['mlm_acc']:.3f}", sop=f"{last['sop_acc']:.3f}")
                reporter.write(last)
            if run.eval_data is not None and (step % cfg.eval_every == 0 or step == cfg.max_steps):
                metrics = evaluate(run.model, run.eval_data, cfg, dist.device, cfg.eval_batches)
                reporter.write({"step": step, **{k: dist.mean(v) for k, v in metrics.items()}})
                last.update(metrics)
            stopping = stop.requested(dist)
            if step % cfg.save_every == 0 or step == cfg.max_steps or stopping:
                save_checkpoint(run, reporter.path)
            if stopping:
                break
    finally:
        bar.close()
        stop.restore()
        reporter.close()
    return last


def train_step(run: Run) -> tuple[int, dict[str, float], int, torch.Tensor]:
    """One optimizer step: forward and backward over this process's micro-batches (DDP syncs on the last), clip,
    update. Returns the epoch, this process's mean metrics, the tokens all processes read, and the gradient norm."""
    cfg, dist = run.cfg, run.dist
    epoch, micro = _micro_batches(run.data, run.step, cfg, dist)
    sums: dict[str, float] = {}
    tokens = 0
    for m, indices in enumerate(micro):
        batch = {k: v.to(dist.device) for k, v in run.data.batch(epoch, indices).items()}
        sync = contextlib.nullcontext() if (m == len(micro) - 1 or not dist.enabled) else run.ddp.no_sync()
        with sync, run.autocast:
            result = run.ddp(**batch)
            (result.loss / cfg.grad_accum).backward()
        for key, value in _metrics(result, batch).items():
            sums[key] = sums.get(key, 0.0) + value / cfg.grad_accum
        tokens += int(batch["attention_mask"].sum()) * dist.world_size
    grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.clip_norm)
    if not torch.isfinite(grad_norm):  # all-reduced, so every rank stops here together; no step is taken
        distributed.teardown(dist, run)
        raise RunError(
            f"step {run.step + 1}: the gradient is not finite (loss {sums.get('loss', float('nan')):.4g}); lower "
            f"--learning-rate (now {cfg.learning_rate:g}) and --resume from the last checkpoint in {run.target}"
        )
    run.optimizer.step()
    run.schedule.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    return epoch, sums, tokens, grad_norm


def save_checkpoint(run: Run, log_path: Path) -> None:
    """Weights, optimizer, schedule, step and every process's random state, with a model card for the weights (a
    collective: every rank calls it)."""
    rng_states = run.dist.gather_objects(rng_state())  # every rank's, in rank order
    if run.dist.is_main:
        card = modelcard.pretrained(run.cfg, run.model, run.data, run.step, run.dist.world_size, log_path)
        args = (run.model, run.optimizer, run.schedule, run.step, run.cfg.data, run.cfg.keep_last, rng_states, card)
        runs.save_checkpoint(run.out, *args)
    run.dist.barrier()


def finish(run: Run, last: dict[str, Any]) -> dict[str, Any]:
    """A complete run gets its curves and takes the target's place; an interrupted one stays where it is."""
    done = run.step >= run.cfg.max_steps
    if run.dist.is_main and done:
        plot.pretrain_curves(run.out / "log.jsonl", run.out / "curves.png")
    distributed.teardown(run.dist, run)
    if run.dist.is_main and done:
        finish_directory(run.target, run.out)
    return {**last, "step": run.step, "interrupted": not done}
