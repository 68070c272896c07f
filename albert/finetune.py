"""Fine-tuning any task of albert/tasks/ (FinetuneConfig, train(cfg)); `albert evaluate` (evaluate_directory).

One plain loop: shuffled batches padded to their longest row → forward → loss / accumulation → backward → clip →
AdamW → warmup + linear decay → log → evaluate every N steps → keep the best checkpoint by the dev metric → stop
early when it stops improving. The output directory is a transformers-layout AlbertForSequenceClassification with
its labels and tokenizer, so ``albert predict``, ``TextClassifier.from_pretrained`` and transformers all load it.
(The scikit-learn-style TextClassifier and EntityTagger are in albert/estimators.py.)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from albert import hub, plot, tasks
from albert.config import PRESETS, AlbertConfig, read_json_dict
from albert.dist import choose_device
from albert.errors import AlbertError
from albert.extras import require
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
from albert.optim import build_optimizer, build_schedule
from albert.outputs import check_directory, claim_directory, mark_complete
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
    batch_size: int = 32  # examples per micro-step
    grad_accum: int = 1  # micro-steps per optimizer step
    learning_rate: float = 3e-5  # peak AdamW rate after warmup
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
    progress: bool = True  # show a progress bar
    overwrite: bool = False  # replace what a non-empty out directory holds (never an input of this run)

    LIMITS: ClassVar[dict] = {
        "task": OneOf(TASKS),
        "epochs": POSITIVE,
        "max_steps": AT_LEAST_1,
        "batch_size": AT_LEAST_1,
        "grad_accum": AT_LEAST_1,
        "learning_rate": POSITIVE,
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
    }

    def __post_init__(self) -> None:
        coerce_fields(self)  # YAML, flags and Python callers alike: each field as its declared type


RANDOM_PREFIX = "random:"  # --init random:albert-base-v2 (a preset) or random:config.json: no pretrained weights


def hub_options(cfg: FinetuneConfig) -> hub.HubOptions:
    return hub.HubOptions(cfg.revision, cfg.cache_dir, None, cfg.local_files_only)


def load_tokenizer(cfg: FinetuneConfig) -> AlbertTokenizer:
    """The tokenizer given, else the one stored beside (or published with) the initial checkpoint."""
    if cfg.tokenizer:
        return AlbertTokenizer.from_pretrained(cfg.tokenizer, **vars(hub_options(cfg)))
    if cfg.init.startswith(RANDOM_PREFIX):
        raise AlbertError(f"--init {cfg.init} has no tokenizer: pass --tokenizer DIR (spiece.model or vocab.txt)")
    path = Path(cfg.init)
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
    plot.pyplot()  # and a missing [train] extra (curves at the end, metrics at each evaluation)
    for module in ("sklearn.metrics", "seqeval.metrics", "rouge_score.rouge_scorer"):  # the [train] extra, whole
        require(module, "fine-tuning metrics")
    check_directory(cfg.out, "--out", cfg.overwrite, _inputs(cfg))
    train_examples = family.read(cfg.train, cfg)
    eval_examples = family.read(cfg.eval, cfg) if cfg.eval else None
    return fit_examples(cfg, train_examples, eval_examples)


def _inputs(cfg: FinetuneConfig) -> list[str | None]:
    """The run's own input paths, which its out directory must not hold."""
    init = cfg.init.removeprefix(RANDOM_PREFIX)
    return [init, cfg.tokenizer, cfg.train, cfg.eval]


def fit_examples(cfg: FinetuneConfig, train_examples, eval_examples, labels=None) -> dict[str, Any]:
    if not cfg.out:
        raise AlbertError("fine-tuning needs an output directory (out)")
    family = tasks.get(cfg.task)
    tok = load_tokenizer(cfg)
    labels = family.labels(train_examples, eval_examples, cfg, labels)
    metric = family.metric

    def encode(examples):
        return family.encode(tok, examples, labels, cfg)

    def evaluate_fn(model, data, device):
        return family.evaluate(model, data, labels, cfg, device)

    torch.manual_seed(cfg.seed)
    model = build_model(cfg, labels, tok.vocab_size)
    if cfg.max_seq_length > model.config.max_position_embeddings:
        raise AlbertError(
            f"max_seq_length {cfg.max_seq_length} is longer than the model's {model.config.max_position_embeddings} "
            "position embeddings (max_position_embeddings): pass --max-seq-length "
            f"{model.config.max_position_embeddings} or less"
        )
    device = choose_device(cfg.device)
    model.to(device)
    train_data = encode(train_examples)
    dev = encode(eval_examples) if eval_examples is not None else None
    for name, data in (("train", train_data), ("eval", dev)):
        if data is not None and data.truncated:
            log.warning(
                "%s: %d of %d examples truncated to %d tokens", name, data.truncated, len(data), cfg.max_seq_length
            )
    per_step = cfg.batch_size * cfg.grad_accum
    steps_per_epoch = max(1, len(train_data) // per_step)
    total = cfg.max_steps or max(1, int(cfg.epochs * steps_per_epoch))
    eval_every = cfg.eval_every or steps_per_epoch
    optimizer = build_optimizer(model, "adamw", cfg.learning_rate, cfg.weight_decay)
    schedule = build_schedule(optimizer, int(cfg.warmup_ratio * total), total, power=1.0)
    out = claim_directory(cfg.out, "--out", cfg.overwrite, _inputs(cfg))  # marked INCOMPLETE until the run ends
    log_path = out / "log.jsonl"
    weights = "random" if cfg.init.startswith(RANDOM_PREFIX) else "pretrained"
    log_path.write_text(json.dumps({"init": cfg.init, "weights": weights, "revision": cfg.revision}) + "\n")
    (out / "finetune_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
    best, best_step, stale, last = None, 0, 0, {}
    from tqdm import tqdm

    bar = tqdm(total=total, disable=not cfg.progress, desc="fine-tuning")
    g = torch.Generator().manual_seed(cfg.seed)
    order, cursor, step = torch.randperm(len(train_data), generator=g).tolist(), 0, 0
    model.train()
    while step < total:
        running = 0.0
        for _ in range(cfg.grad_accum):
            if cursor + cfg.batch_size > len(order):  # a new epoch: reshuffle
                order, cursor = torch.randperm(len(train_data), generator=g).tolist(), 0
            batch = {k: v.to(device) for k, v in train_data.batch(order[cursor : cursor + cfg.batch_size]).items()}
            cursor += cfg.batch_size
            loss = model(**batch).loss / cfg.grad_accum
            loss.backward()
            running += loss.item()
        if not math.isfinite(running):  # training on would save NaN weights as "best" and print NaN predictions
            best_note = f"the best model so far (step {best_step}) is in {out}" if best_step else "nothing was saved"
            raise AlbertError(
                f"step {step + 1}: the training loss is {running} (not finite); lower --learning-rate "
                f"(now {cfg.learning_rate:g}) or check the model config ({best_note})"
            )
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)
        last = {"step": step, "loss": running, "lr": schedule.get_last_lr()[0]}
        if dev is not None and (step % eval_every == 0 or step == total):
            scores = evaluate_fn(model, dev, device)
            model.train()
            last |= {f"eval_{k}": v for k, v in scores.items()}
            bar.set_postfix({metric: f"{scores[metric]:.4f}"})
            if best is None or scores[metric] > best[metric]:
                best, best_step, stale = scores, step, 0
                save_classifier(model, tok, out)
            else:
                stale += 1
        with open(log_path, "a") as f:
            f.write(json.dumps(last) + "\n")
        if cfg.early_stopping and stale >= cfg.early_stopping:
            log.warning("early stopping at step %d: no %s gain for %d evaluations", step, metric, stale)
            break
    bar.close()
    if dev is None:
        save_classifier(model, tok, out)
    elif best is not None and best.get("predicted_labels") == 1 and len(labels) > 1:
        log.warning(one_label_warning(cfg, best, len(labels)))
    plot.finetune_curves(log_path, out / "curves.png", metric)
    mark_complete(out)
    return {"best_step": best_step, **(best or {}), "steps": step, "train_examples": len(train_data)}


def one_label_warning(cfg: FinetuneConfig, best: dict[str, float], n_labels: int) -> str:
    """What to say when the kept model gives every dev text the same label: it learned the label prior only, which
    looks like a result (accuracy = the majority share) unless someone says so."""
    return (
        f"the best model predicts one label for every dev example (of {n_labels}; accuracy {best['accuracy']:.4f} is "
        f"that label's share): it learned the label prior, not the task. Raise --learning-rate (now "
        f"{cfg.learning_rate:g}; small or self-pretrained models need around 1e-4 to 1e-3, Table 14's rates suit "
        "released-size checkpoints) or train longer"
    )


MAX_LENGTH_KEY = "max_seq_length"  # config.json key of TextClassifier's max_length (transformers ignores it)


def evaluate_directory(
    model_dir: str | Path, data: str, figure: Path | None = None, **overrides: Any
) -> tuple[dict[str, float], int, Path | None]:
    """Metrics of a fine-tuned directory on a labelled file, for any task, through the same Task methods that
    evaluated it during training; the settings it was trained with (finetune_config.json: sequence length, stride,
    columns; or the max_length a TextClassifier saved) apply unless ``overrides`` (FinetuneConfig fields) say
    otherwise. ``figure``: where the task's picture of the evaluation goes, if it has one (classification: a confusion
    matrix). Returns (metrics, examples, the figure drawn or None)."""
    model_dir = Path(model_dir)
    names = {f.name for f in dataclasses.fields(FinetuneConfig)}
    saved_path = model_dir / "finetune_config.json"
    saved = read_json_dict(saved_path) if saved_path.is_file() else {}
    config = read_json_dict(model_dir / "config.json")
    settings = {k: v for k, v in saved.items() if k in names and k not in ("train", "eval", "init", "out")}
    settings["task"] = tasks.for_model(config, saved.get("task"))
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
    return result, len(examples), drawn


def save_classifier(model, tok: AlbertTokenizer, out: Path) -> None:
    """Model + tokenizer into ``out`` (each file replaced atomically)."""
    model.save_pretrained(out)
    tok.save_pretrained(out)
