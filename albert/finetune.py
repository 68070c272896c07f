"""Fine-tuning any task of albert/tasks/ (FinetuneConfig, train(cfg)); `albert evaluate` (evaluate_directory).

One plain loop: a shuffled step of examples, cut into length-sorted forward passes (albert/batching.py) → forward →
loss weighed by each pass's share → backward → clip → AdamW → warmup + linear decay → log → evaluate every N steps →
keep the best checkpoint by the dev metric → stop early when it stops improving. fit_examples reads as set_up, the
rate, start, train_loop (train_step is one optimizer step) and finish. The output directory is a transformers-layout
model of the task's head with its labels and tokenizer, so ``albert predict``, ``TextClassifier.from_pretrained`` and
transformers all load it.
(The scikit-learn-style TextClassifier and EntityTagger are in albert/estimators.py.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from albert import batching, heads, hub, lrfind, modelcard, plot, runs, tasks
from albert import dist as distributed
from albert.checkpoint import write_text
from albert.config import PRESETS, AlbertConfig, read_json_dict
from albert.dist import choose_device
from albert.errors import AlbertError
from albert.extras import check
from albert.fields import (
    AT_LEAST_1,
    DROPOUT,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    DeviceName,
    OneOf,
    Range,
    RateOrAuto,
    coerce_fields,
)
from albert.optim import build_optimizer, build_schedule
from albert.outputs import (
    INCOMPLETE,
    absolute_if_local,
    check_directory,
    claim_directory,
    finish_directory,
    strict_json,
    working_directory,
)
from albert.tasks.base import DECODING
from albert.tokenizer import AlbertTokenizer

log = logging.getLogger("albert")


TASKS = tuple(name for name, task in tasks.REGISTRY.items() if task.trainable)


@dataclass
class FinetuneConfig:
    train: str = ""  # CSV/TSV/JSONL with a text column and a label column
    eval: str | None = None  # dev set: evaluated every eval_every steps, picks the best checkpoint
    out: str = ""  # the output directory: best model, tokenizer, log.jsonl, curves.png (missing or empty)
    init: str = ""  # checkpoint directory or hub id (pretrained weights); random:PRESET or random:config.json
    tokenizer: str | None = None  # directory or hub id; needed when init has no tokenizer files
    revision: str | None = None  # hub: branch, tag or commit of init (and tokenizer)
    cache_dir: str | None = None  # hub: cache folder (default: HF_HUB_CACHE, shared with transformers)
    local_files_only: bool = False  # hub: use the cache only, no network
    task: str = "classification"  # the task family (albert/tasks: its files, head and metric)
    text_column: str = "text"  # CSV/JSONL field holding the text
    pair_column: str | None = None  # field of a second text (sentence pairs), if any
    label_column: str = "label"  # field holding the label
    epochs: float = 3.0  # passes over the training data (fractions allowed)
    max_steps: int | None = None  # overrides epochs
    batch_size: int = 32  # examples per process and accumulation step (× grad_accum × processes: per optimizer step)
    grad_accum: int = 1  # gradient accumulation: batch_size × grad_accum examples per process and optimizer step
    group_by_length: bool = False  # steps of similar lengths (shuffled windows sorted by length): less padding still
    max_tokens: int | None = None  # padded tokens per forward pass (default batch_size × max_seq_length)
    learning_rate: float | str | None = None  # peak AdamW rate, or auto (range test); unset: by width and run length
    find_lr: bool = False  # only run the learning-rate range test: lr_find.png and the suggested rate in out
    find_lr_steps: int = 200  # steps of the range test (it stops early once the loss blows up)
    warmup_ratio: float = 0.1  # share of the steps spent warming the rate up from 0
    weight_decay: float = 0.01  # decoupled weight decay (not on LayerNorm and biases)
    max_seq_length: int = 128  # tokens per example (longer ones are cut)
    classifier_dropout: float = 0.1  # the paper's Table 14 value for every task
    dropout: float | None = None  # override the model's hidden/attention dropout (Table 14: 0 or 0.1)
    eval_every: int | None = None  # default: once per epoch
    early_stopping: int | None = None  # stop after this many evaluations without improvement
    doc_stride: int = 128  # qa: overlap of context windows
    max_query_length: int = 64  # qa
    max_answer_length: int = 30  # qa: longest answer span in tokens
    summary_sentences: int = 3  # summarization: sentences in the oracle and in a prediction
    answerability: bool = False  # qa: add the official SQuAD 2.0 answerability classifier
    seed: int = 42  # seeds data order, dropout and new heads
    device: str = "auto"  # auto (CUDA when available), cpu, cuda, cuda:N or mps
    bf16: bool = True  # bf16 autocast on CUDA (fp32 on CPU, where bf16 is emulated and slow)
    gradient_checkpointing: bool = False  # recompute layer activations in backward: less memory, more compute
    save_every: int | None = None  # steps between checkpoints in out/checkpoints (default: at each evaluation)
    keep_last: int = 2  # checkpoints kept (each holds the weights and the optimizer state)
    report_to: str = "none"  # also log to: tensorboard (event files in out/tensorboard) or none
    resume: bool = False  # continue the run in out from its latest intact checkpoint
    progress: bool = True  # show a progress bar
    overwrite: bool = False  # replace what a non-empty out directory holds (never an input of this run)

    LIMITS: ClassVar[dict] = {
        "task": OneOf(TASKS),
        "epochs": POSITIVE,
        "max_steps": AT_LEAST_1,
        "batch_size": AT_LEAST_1,
        "grad_accum": AT_LEAST_1,
        "max_tokens": AT_LEAST_1,
        "learning_rate": RateOrAuto(),
        "find_lr_steps": Range(10),
        "warmup_ratio": PROBABILITY,
        "weight_decay": NON_NEGATIVE,
        "max_seq_length": Range(4),  # [CLS], [SEP] and room for text
        "classifier_dropout": DROPOUT,
        "dropout": DROPOUT,
        "eval_every": AT_LEAST_1,
        "early_stopping": AT_LEAST_1,
        "doc_stride": AT_LEAST_1,
        "max_query_length": AT_LEAST_1,
        "max_answer_length": AT_LEAST_1,
        "summary_sentences": AT_LEAST_1,
        "seed": NON_NEGATIVE,
        "device": DeviceName(),
        "save_every": AT_LEAST_1,
        "keep_last": AT_LEAST_1,
        "report_to": OneOf(runs.REPORT_TO),
    }

    def __post_init__(self) -> None:
        coerce_fields(self)  # YAML, flags and Python callers alike: each field as its declared type


# Fields a resumed run may change: where and how it runs and reports, not what it computes.
RESUMABLE_CHANGES = ("out", "device", "progress", "overwrite", "resume", "save_every", "keep_last", "report_to")

RANDOM_PREFIX = "random:"  # --init random:albert-base-v2 (a preset) or random:config.json: no pretrained weights


def hub_options(cfg: FinetuneConfig) -> hub.HubOptions:
    return hub.HubOptions(cfg.revision, cfg.cache_dir, None, cfg.local_files_only)


def load_tokenizer(cfg: FinetuneConfig) -> AlbertTokenizer:
    """The tokenizer given, else the one stored beside (or published with) the initial checkpoint."""
    if cfg.tokenizer:
        return AlbertTokenizer.from_pretrained(cfg.tokenizer, **vars(hub_options(cfg)))
    if cfg.init.startswith(RANDOM_PREFIX):
        raise AlbertError(f"--init {cfg.init} has no tokenizer: pass --tokenizer DIR (spiece.model or vocab.txt)")
    path = hub.local_or_hub(cfg.init, "all", hub_options(cfg), flag="--init")  # the model's name first: a typo says so
    if path.is_dir():
        if any(path.glob("*.model")) or (path / "vocab.txt").is_file():
            return AlbertTokenizer.from_pretrained(path)
        raise AlbertError(f"no tokenizer files in {cfg.init!r}: pass --tokenizer DIR (spiece.model or vocab.txt)")
    return AlbertTokenizer.from_pretrained(cfg.init, **vars(hub_options(cfg)))


def build_model(cfg: FinetuneConfig, labels: list[str], vocab_size: int):
    """The task's head model (tasks.get(cfg.task).head_class) from cfg.init, with these labels."""
    family = tasks.get(cfg.task)
    cls = family.head_class(cfg)
    head = dict(
        id2label=dict(enumerate(labels)),
        problem_type=family.problem_type,
        classifier_dropout_prob=cfg.classifier_dropout,
    )
    if cfg.init.startswith(RANDOM_PREFIX):  # asked for explicitly: a preset's or a config file's shape
        source = cfg.init[len(RANDOM_PREFIX) :]
        if source.removeprefix("albert/") in PRESETS:
            model = cls(AlbertConfig.from_name(source, vocab_size=vocab_size, **head))
        elif Path(source).is_file():
            model = cls(AlbertConfig.from_dict({**read_json_dict(source), **head}, source))
        else:
            raise AlbertError(
                f"--init {cfg.init}: {source!r} is neither a preset ({', '.join(sorted(PRESETS))}) nor a config file"
            )
        log.warning("random initialisation in the shape of %s: no pretrained weights", source)
    elif Path(cfg.init).is_file():
        raise AlbertError(
            f"--init {cfg.init} is a file, not a checkpoint: a config has no weights; for random initialisation in "
            f"its shape say --init random:{cfg.init}"
        )
    else:  # a checkpoint directory, or a hub id (the released weights, as transformers reads the name)
        model = cls.from_pretrained(cfg.init, **vars(hub_options(cfg)), **head)
    if cfg.dropout is not None:
        for module in model.albert.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = cfg.dropout
        model.albert.config.hidden_dropout_prob = model.albert.config.attention_probs_dropout_prob = cfg.dropout
        for layer in (m for m in model.albert.modules() if hasattr(m, "attention_dropout")):
            layer.attention_dropout = cfg.dropout
    if model.config.vocab_size != vocab_size:
        raise AlbertError(f"the model has vocab_size {model.config.vocab_size}, the tokenizer {vocab_size}")
    return model


def train(cfg: FinetuneConfig) -> dict[str, Any]:
    """Read and validate every file first, then fine-tune; returns the best dev metrics (or the last train ones)."""
    family = tasks.get(cfg.task)
    choose_device(cfg.device)  # refused before any work: a missing GPU, or an out directory that must not be touched
    plot.check_available()  # and a missing [train] extra (curves at the end, metrics at each evaluation)
    for module in ("sklearn", "seqeval", "rouge_score"):  # the [train] extra, whole
        check(module, "fine-tuning metrics")
    if cfg.resume:
        check_resumable(cfg)
    check_directory(cfg.out, "--out", cfg.overwrite, _inputs(cfg), resumable=cfg.resume)
    cfg = absolute_paths(cfg)  # the run config records them so, and --resume works from any folder
    train_examples = family.read(cfg.train, cfg)
    eval_examples = family.read(cfg.eval, cfg) if cfg.eval else None
    return fit_examples(cfg, train_examples, eval_examples)


def check_resumable(cfg: FinetuneConfig) -> None:
    """``out`` (or the staging directory of an ``--overwrite`` run into it) holds an unfinished run of this
    configuration (RESUMABLE_CHANGES aside)."""
    out = Path(cfg.out)
    saved_path = working_directory(out, resumable=True) / "finetune_config.json"
    if not saved_path.is_file():
        raise AlbertError(f"{out}: nothing to resume (no finetune_config.json)")
    if not (saved_path.parent / INCOMPLETE).exists():
        raise AlbertError(f"{out}: this run is complete; nothing to resume (fine-tune into a new --out to train more)")
    saved = read_json_dict(saved_path)
    saved.update({k: absolute_if_local(saved[k]) for k in PATH_FIELDS if isinstance(saved.get(k), str)})
    current = absolute_paths(cfg)
    changed = [
        f"{f.name}: {saved.get(f.name)!r} → {getattr(current, f.name)!r}"
        for f in dataclasses.fields(current)
        if f.name not in RESUMABLE_CHANGES and f.name in saved and saved[f.name] != getattr(current, f.name)
    ]
    if changed:
        listed = "; ".join(changed)
        raise AlbertError(f"{out} was run with another configuration; resuming would not continue it: {listed}")


PATH_FIELDS = ("train", "eval", "init", "tokenizer", "cache_dir", "out")


def absolute_paths(cfg: FinetuneConfig) -> FinetuneConfig:
    """cfg with its local paths absolute (hub ids, presets and missing paths as given), so that a saved run config
    means the same files from any working folder."""
    changes = {name: absolute_if_local(getattr(cfg, name), always=name == "out") for name in PATH_FIELDS}
    if cfg.init.startswith(RANDOM_PREFIX):  # random:config.json names a file, random:albert-base-v2 a preset
        changes["init"] = absolute_if_local(cfg.init, RANDOM_PREFIX)
    return dataclasses.replace(cfg, **changes)


def _inputs(cfg: FinetuneConfig) -> list[str | None]:
    """The run's own input paths, which its out directory must not hold."""
    init = cfg.init.removeprefix(RANDOM_PREFIX)
    return [init, cfg.tokenizer, cfg.train, cfg.eval]


@dataclass
class Run:
    """A fine-tuning run once set up: what its loop and its end read (set_up builds it)."""

    cfg: FinetuneConfig
    family: Any  # the task (albert/tasks)
    dist: Any  # this process's place in the run (albert/dist.py)
    tok: AlbertTokenizer
    labels: list[str]
    model: torch.nn.Module
    ddp: torch.nn.Module  # the model, or its DistributedDataParallel wrapper across processes
    train_data: Any
    dev: Any  # encoded dev examples, or None
    plan: batching.StepPlan  # which rows each step and process takes
    total: int  # optimizer steps
    eval_every: int
    save_every: int
    target: Path  # where the model ends up
    out: Path  # where this run writes (a staging directory when it replaces target)
    resuming: bool
    autocast: Any
    examples: tuple[int, int]  # train and dev examples read


@dataclass
class Progress:
    """What a checkpoint keeps besides weights, optimizer and schedule."""

    step: int = 0
    best: dict[str, float] | None = None  # the dev metrics of the kept model
    best_step: int = 0
    stale: int = 0  # evaluations since the best
    learning_rate: float | None = None
    rate_source: str | None = None  # given, width, auto (lrfind.Rate)


def fit_examples(cfg: FinetuneConfig, train_examples, eval_examples, labels=None) -> dict[str, Any]:
    """Fine-tune on examples already read (train() reads the files; the estimators pass their own)."""
    run = set_up(cfg, train_examples, eval_examples, labels)
    chosen = None  # a resumed run trains at its checkpoint's rate
    if not run.resuming:  # the rate given, the default (width, steps) or a range test's (auto, --find-lr)
        chosen = lrfind.choose_rate(cfg, run.model, lambda step: train_pass(run, step), run.out, run.dist, run.total)
    if cfg.find_lr:
        return finish_range_test(run, chosen)
    optimizer, schedule, progress = start(run, chosen)
    interrupted = train_loop(run, optimizer, schedule, progress)
    return finish(run, progress, interrupted)


def set_up(cfg: FinetuneConfig, train_examples, eval_examples, labels) -> Run:
    """Processes, tokenizer, model, encoded data, step plan; the output directory claimed, the run config in it."""
    if not cfg.out:
        raise AlbertError("fine-tuning needs an output directory (out)")
    if cfg.find_lr and cfg.resume:
        raise AlbertError("--find-lr runs a short range test from the start; it does not --resume (give a new --out)")
    family = tasks.get(cfg.task)
    dist = distributed.setup(cfg.device)
    tok = load_tokenizer(cfg)
    labels = family.labels(train_examples, eval_examples, cfg, labels)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, labels, tok.vocab_size)
    if cfg.max_seq_length > model.config.max_position_embeddings:
        raise AlbertError(
            f"max_seq_length {cfg.max_seq_length} is longer than the model's {model.config.max_position_embeddings} "
            "position embeddings (max_position_embeddings): pass --max-seq-length "
            f"{model.config.max_position_embeddings} or less"
        )
    if cfg.gradient_checkpointing:
        model.albert.gradient_checkpointing = True
    model.to(dist.device)
    train_data = family.encode(tok, train_examples, labels, cfg)
    dev = family.encode(tok, eval_examples, labels, cfg) if eval_examples is not None else None
    for name, data in (("train", train_data), ("eval", dev)):
        if data is not None and data.truncated and dist.is_main:
            log.warning(
                "%s: %d of %d examples truncated to %d tokens", name, data.truncated, len(data), cfg.max_seq_length
            )
    plan = batching.StepPlan(cfg, train_data, dist.world_size)
    eval_every = cfg.eval_every or plan.steps_per_epoch
    target = Path(cfg.out)
    out = Path(dist.broadcast(str(working_directory(target, cfg.overwrite, cfg.resume)) if dist.is_main else None))
    resuming = cfg.resume and runs.latest_checkpoint(out) is not None
    if cfg.resume and not resuming and dist.is_main:
        log.warning("%s holds no checkpoint yet (the run stopped before its first): starting over from step 0", target)
    ddp = model
    if dist.enabled:  # a parameter some head leaves out of a step's graph must not stall the gradient all-reduce
        ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    if dist.is_main:  # every rank has checked out and built its model: now claim the directory
        claim_directory(target, "--out", cfg.overwrite, _inputs(cfg), resumable=cfg.resume, work=out)
        # at once, so that a run killed at any later moment can be resumed (or says it starts over)
        write_text(out / "finetune_config.json", strict_json(dataclasses.asdict(absolute_paths(cfg)), indent=2) + "\n")
    on_gpu_bf16 = dist.device.type == "cuda" and cfg.bf16
    model.train()
    return Run(
        cfg=cfg,
        family=family,
        dist=dist,
        tok=tok,
        labels=labels,
        model=model,
        ddp=ddp,
        train_data=train_data,
        dev=dev,
        plan=plan,
        total=cfg.max_steps or max(1, int(cfg.epochs * plan.steps_per_epoch)),
        eval_every=eval_every,
        save_every=cfg.save_every or eval_every,
        target=target,
        out=out,
        resuming=resuming,
        autocast=torch.autocast("cuda", dtype=torch.bfloat16) if on_gpu_bf16 else contextlib.nullcontext(),
        examples=(len(train_examples), len(eval_examples) if eval_examples is not None else 0),
    )


def finish_range_test(run: Run, chosen: lrfind.Rate) -> dict[str, Any]:
    """--find-lr: the range test was the whole run; its curve and numbers are in the output directory."""
    distributed.teardown(run.dist, run)
    if run.dist.is_main:
        finish_directory(run.target, run.out)
    if chosen.inconclusive:  # no suggestion: what `auto` would train at instead, and why
        found = {"suggested_learning_rate": None, "inconclusive": chosen.inconclusive, "default": chosen.value}
    else:
        found = {"suggested_learning_rate": chosen.value}
    return found | {"curve": str(run.target / "lr_find.png")}


def start(run: Run, chosen: lrfind.Rate | None):
    """The optimizer, the schedule and the progress so far: new, or the latest checkpoint's when resuming."""
    rate, source = (chosen.value, chosen.source) if chosen else (None, None)
    optimizer = build_optimizer(run.model, "adamw", rate or 1.0, run.cfg.weight_decay)
    schedule = build_schedule(optimizer, int(run.cfg.warmup_ratio * run.total), run.total, power=1.0)
    if run.resuming:  # weights, optimizer (its rates too), schedule, random state, best-so-far
        saved = runs.resume(run.out, run.model, optimizer, schedule, run.dist.rank)
        known = {f.name for f in dataclasses.fields(Progress)}
        progress = Progress(**{k: v for k, v in saved.items() if k in known})
        progress.rate_source = progress.rate_source or "given"  # a checkpoint from before rate_source was saved
        if run.dist.is_main:
            log.warning("resuming %s at step %d of %d", run.target, progress.step, run.total)
        return optimizer, schedule, progress
    if run.dist.is_main:
        weights = "random" if run.cfg.init.startswith(RANDOM_PREFIX) else "pretrained"
        header = {"init": run.cfg.init, "weights": weights, "revision": run.cfg.revision}
        header |= {"world_size": run.dist.world_size, "learning_rate": rate}
        write_text(run.out / "log.jsonl", strict_json(header) + "\n")
    return optimizer, schedule, Progress(learning_rate=rate, rate_source=source)


def train_loop(run: Run, optimizer, schedule, progress: Progress) -> bool:
    """Steps until the last, an early stop or a stop signal (then True); evaluates, keeps the best and checkpoints."""
    from tqdm import tqdm

    cfg, dist = run.cfg, run.dist
    reporter = runs.Reporter(run.out, cfg.report_to, dist.is_main, resumed_step=progress.step if run.resuming else None)
    stop = runs.StopFlag()
    bar = tqdm(total=run.total, initial=progress.step, disable=not (cfg.progress and dist.is_main), desc="fine-tuning")
    try:  # the signal handlers restored and the log closed however the loop ends (an error, a stop, the last step)
        stopping = False
        while progress.step < run.total:
            record = train_step(run, optimizer, schedule, progress)
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4f}", ex_s=f"{record['examples_per_s']:.1f}", refresh=False)
            step = progress.step
            evaluated = run.dev is not None and (step % run.eval_every == 0 or step == run.total)
            if evaluated:
                scores = evaluate_and_keep(run, progress)
                record |= {f"eval_{k}": v for k, v in scores.items()}
                metric = run.family.selection_metric(scores)
                bar.set_postfix(loss=f"{record['loss']:.4f}", **{metric: f"{scores[metric]:.4f}"})
            reporter.write(record)
            early = bool(cfg.early_stopping and progress.stale >= cfg.early_stopping)
            stopping = stop.requested(dist)
            if step < run.total and not early and (step % run.save_every == 0 or evaluated or stopping):
                save_checkpoint(run, optimizer, schedule, progress)
            if early:
                metric = run.family.selection_metric(progress.best)
                log.warning("early stopping at step %d: no %s gain for %d evaluations", step, metric, progress.stale)
            if stopping or early:
                break
    finally:
        bar.close()
        stop.restore()
        reporter.close()
    return stopping and progress.step < run.total


def train_pass(run: Run, step: int) -> float:
    """Forward and backward over step ``step``'s rows for this process; the step's mean loss (no update)."""
    return forward_backward(run.ddp, run.train_data, run.plan.passes(step, run.dist.rank)[1], run.dist, run.autocast)


def train_step(run: Run, optimizer, schedule, progress: Progress) -> dict[str, Any]:
    """One optimizer step: forward and backward over the step's rows, clip, update; its record for the log."""
    tick = time.perf_counter()
    rows, passes = run.plan.passes(progress.step, run.dist.rank)
    loss = forward_backward(run.ddp, run.train_data, passes, run.dist, run.autocast)
    grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
    if not (math.isfinite(loss) and torch.isfinite(grad_norm)):  # both agreed by all processes: all stop here
        kept = f"the best model so far (step {progress.best_step}) is in {run.out}" if progress.best_step else ""
        distributed.teardown(run.dist, run)
        raise AlbertError(
            f"step {progress.step + 1}: the training loss is {loss} (not finite); lower --learning-rate "
            f"(now {progress.learning_rate:g}) or check the model config ({kept or 'nothing was saved'})"
        )
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)
    progress.step += 1
    seconds = time.perf_counter() - tick
    return {
        "step": progress.step,
        "epoch": round(progress.step / run.plan.steps_per_epoch, 4),
        "loss": loss,
        "lr": schedule.get_last_lr()[0],
        "grad_norm": float(grad_norm),
        "examples_per_s": len(rows) / seconds,
    }


def evaluate_and_keep(run: Run, progress: Progress) -> dict[str, float]:
    """The dev metrics now; the model saved into out when it is the best so far."""
    dist = run.dist
    scores = dist.broadcast(
        run.family.evaluate(run.model, run.dev, run.labels, run.cfg, dist.device) if dist.is_main else None
    )
    run.model.train()
    metric = run.family.selection_metric(scores)  # SQuAD 2.0: best_f1, the F1 predictions at its threshold get
    if progress.best is None or scores[metric] > progress.best[metric]:
        progress.best, progress.best_step, progress.stale = scores, progress.step, 0
        if dist.is_main:
            save_classifier(run.model, run.tok, run.out)
            save_decoding(run.family.decoding(scores), run.out)
    else:
        progress.stale += 1
    return scores


def save_checkpoint(run: Run, optimizer, schedule, progress: Progress) -> None:
    """Everything resuming needs, every process's random state included (a collective: every rank calls it)."""
    rng_states = run.dist.gather_objects(runs.rng_state())
    if run.dist.is_main:
        saved = dataclasses.asdict(progress) | {"rng": rng_states}
        trainer = {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}
        runs.write_checkpoint(run.out, run.model, trainer | saved, run.cfg.keep_last)
    run.dist.barrier()


def finish(run: Run, progress: Progress, interrupted: bool) -> dict[str, Any]:
    """The result; a complete run also leaves its curves and model card, and its directory takes the target's place."""
    cfg, dist, out = run.cfg, run.dist, run.out
    result = {"best_step": progress.best_step, **(progress.best or {}), "steps": progress.step}
    result |= {"train_examples": len(run.train_data), "learning_rate": progress.learning_rate}
    if interrupted:
        distributed.teardown(dist, run)
        if dist.is_main:
            log.warning(
                "interrupted at step %d: continue with `albert finetune --resume %s`", progress.step, run.target
            )
        return {**result, "interrupted": True}
    if dist.is_main:
        best = progress.best
        log_path = out / "log.jsonl"
        if run.dev is None:
            save_classifier(run.model, run.tok, out)
        elif best is not None and best.get("predicted_labels") == 1 and len(run.labels) > 1:
            records = [json.loads(line) for line in log_path.read_text().splitlines() if line]
            losses = [r["loss"] for r in records if isinstance(r.get("loss"), float)]
            prior = label_entropy(getattr(run.train_data, "y", None))
            rate, source = progress.learning_rate, progress.rate_source
            log.warning(one_label_warning(rate, source, losses, best, len(run.labels), prior))
        metric = run.family.selection_metric(best) if best else run.family.metric
        plot.finetune_curves(log_path, out / "curves.png", metric)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # the run is complete: its model is out itself
        facts = {"steps": progress.step, "best_step": progress.best_step, "rate": progress.learning_rate}
        facts |= {"world_size": dist.world_size, "examples": run.examples}
        card = modelcard.finetuned(cfg, run.family, run.model, run.tok, run.labels, best, run.target.name, facts)
        write_text(out / modelcard.FILENAME, card)  # README.md, the model card (albert/modelcard.py)
        finish_directory(run.target, out)
    distributed.teardown(dist, run)
    return result


def forward_backward(ddp, data, passes: list[list[int]], dist, autocast) -> float:
    """One optimizer step's forward and backward passes (gradients accumulate; DDP all-reduces them on the last
    pass); returns the step's mean loss over every process's examples.

    Each pass's loss is the head's mean over its loss units (``loss_units``), weighed by the pass's share of the units
    of the whole step, counted over all processes: the gradient is that of one padded batch of the step, however the
    step is cut into passes and processes."""
    if getattr(data, "pad_to_step", False):  # a loss that depends on padding (span QA): pad as one batch of the step
        width = max(dist.gather_objects(max(len(data.ids[r]) for rows_k in passes for r in rows_k)))
        batches = [data.batch(rows_k, width=width) for rows_k in passes]
    else:
        batches = [data.batch(rows_k) for rows_k in passes]
    units = [loss_units(getattr(ddp, "module", ddp), batch) for batch in batches]
    total = dist.sum(sum(units))  # DDP averages the processes' gradients, hence world_size below
    running = 0.0
    for k, (batch, units_k) in enumerate(zip(batches, units, strict=True)):
        batch = {key: v.to(dist.device) for key, v in batch.items()}
        sync = ddp.no_sync() if dist.enabled and k < len(passes) - 1 else contextlib.nullcontext()
        with sync, autocast:
            out = ddp(**batch)
            # a pass without a labelled token (the head's mean is 0/0) adds nothing, but still goes backward, as DDP's
            # last pass must
            loss = out.loss * (units_k * dist.world_size / total) if units_k else out.logits.sum() * 0.0
            loss.backward()
        running += loss.item()
    return dist.mean(running)


PER_LABEL_HEADS = (heads.AlbertForTokenClassification, heads.AlbertForExtractiveSummarization)


def loss_units(model, batch: dict[str, torch.Tensor]) -> int:
    """How many terms the head's loss in ``batch`` is the mean of: the labelled tokens of token classification and
    the real sentences of summarisation (labels ≠ -100, as the heads' losses count them), otherwise the examples
    (classification, multiple choice; QA windows, whose answer positions always lie inside the window)."""
    if isinstance(model, PER_LABEL_HEADS):
        return int((batch["labels"] != -100).sum())
    return len(batch["input_ids"])


def one_label_warning(
    rate: float, source: str, losses: list[float], best: dict[str, float], n_labels: int, prior: float | None = None
) -> str:
    """What to say when the kept model gives every dev text the same label: it learned the label prior only, which
    looks like a result (accuracy = the majority share) unless someone says so; and what to change, by what the
    training loss did (``lrfind.one_label_advice``)."""
    return (
        f"the best model predicts one label for every dev example (of {n_labels}; accuracy {best['accuracy']:.4f} is "
        f"that label's share): it learned the label prior, not the task. "
        + lrfind.one_label_advice(losses, rate, source, prior)
    )


def label_entropy(y) -> float | None:
    """The entropy of single-label training targets (class indices), in nats: the training loss of a model that
    predicts each label's share whatever the text; None for other targets."""
    if not isinstance(y, np.ndarray) or y.ndim != 1 or y.dtype.kind not in "iu" or not len(y) or y.min() < 0:
        return None
    shares = np.bincount(y) / len(y)
    shares = shares[shares > 0]
    return float(-(shares * np.log(shares)).sum())


MAX_LENGTH_KEY = "max_seq_length"  # config.json key of TextClassifier's max_length (transformers ignores it)


def evaluate_directory(
    model_dir: str | Path, data: str, figure: Path | None = None, tune: bool = False, **overrides: Any
) -> tuple[dict[str, float], int, Path | None]:
    """Metrics of a fine-tuned directory on a labelled file, for any task, through the same Task methods that
    evaluated it during training; the settings it was trained with (finetune_config.json: sequence length, stride,
    columns; or the max_length a TextClassifier saved) apply unless ``overrides`` (FinetuneConfig fields) say
    otherwise. ``figure``: where the task's picture of the evaluation goes, if it has one (classification: a confusion
    matrix). ``tune``: save what the task tunes on this file for prediction (QA: the null threshold of best_f1) into
    the model directory's decoding.json, replacing what fine-tuning tuned on its dev set. Returns (metrics, examples,
    the figure drawn or None)."""
    model_dir = Path(model_dir)
    names = {f.name for f in dataclasses.fields(FinetuneConfig)}
    saved_path = model_dir / "finetune_config.json"
    saved = read_json_dict(saved_path) if saved_path.is_file() else {}
    config = read_json_dict(model_dir / "config.json")
    settings = {k: v for k, v in saved.items() if k in names and k not in ("train", "eval", "init", "out")}
    settings["task"] = tasks.for_model(config, saved.get("task"))
    if not saved:  # fine-tuned elsewhere: what its task predicts with (QA: SQuAD's windows, its own head)
        settings.update(tasks.get(settings["task"]).untrained_settings(config))
    if MAX_LENGTH_KEY in config and not saved:  # a TextClassifier's own directory
        settings["max_seq_length"] = config[MAX_LENGTH_KEY]
    settings.update({k: v for k, v in overrides.items() if v is not None})
    cfg = FinetuneConfig(**{**settings, "eval": data, "init": str(model_dir), "progress": False})
    family = tasks.get(cfg.task)
    examples = family.read(data, cfg)
    model = family.head_class(cfg).from_pretrained(model_dir)
    known = [model.config.labels_by_id()[i] for i in range(model.config.num_labels)]
    labels = family.labels(examples, examples, cfg, known)
    device = choose_device(cfg.device)
    model.to(device).eval()
    encoded = family.encode(AlbertTokenizer.from_pretrained(model_dir), examples, labels, cfg)
    result = family.evaluate(model, encoded, labels, cfg, device)
    drawn = family.figure(model, encoded, labels, cfg, device, figure) if figure is not None else None
    if tune:
        tuned = family.decoding(result)
        if tuned is None:
            raise AlbertError(
                f"--tune: a {family.name} model has nothing to tune on {data} (QA: unanswerable questions)"
            )
        save_decoding({**tuned, "tuned_on": str(Path(data).resolve())}, model_dir)
    return result, len(examples), drawn


def save_decoding(settings: dict[str, Any] | None, out: Path) -> None:
    """What the task tuned on dev for prediction (albert/tasks/base.py: DECODING), beside the model it was tuned for."""
    if settings is not None:
        write_text(out / DECODING, strict_json(settings, indent=2) + "\n")


def save_classifier(model, tok: AlbertTokenizer, out: Path) -> None:
    """Model + tokenizer into ``out`` (each file replaced atomically)."""
    model.save_pretrained(out)
    tok.save_pretrained(out)
