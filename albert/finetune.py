"""Fine-tuning for text classification: FinetuneConfig, train(cfg), evaluate(), and the TextClassifier API.

One plain loop: shuffled batches padded to their longest row → forward → loss / accumulation → backward → clip →
AdamW → warmup + linear decay → log → evaluate every N steps → keep the best checkpoint by the dev metric → stop
early when it stops improving. The output directory is a transformers-layout AlbertForSequenceClassification with
its labels and tokenizer, so ``albert predict``, ``TextClassifier.from_pretrained`` and transformers all load it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from albert import hub, infer, plot
from albert.config import PRESETS, AlbertConfig, read_json_dict
from albert.dist import choose_device
from albert.engines import TorchForward, run_rows
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
from albert.heads import (
    AlbertForExtractiveSummarization,
    AlbertForMultipleChoice,
    AlbertForQuestionAnswering,
    AlbertForQuestionAnsweringWithAnswerability,
    AlbertForSequenceClassification,
    AlbertForTokenClassification,
)
from albert.optim import build_optimizer, build_schedule
from albert.outputs import check_directory, claim_directory, mark_complete
from albert.tasks import classification as task
from albert.tasks import multiple_choice, ner, qa, summarization
from albert.tokenizer import AlbertTokenizer

log = logging.getLogger("albert")


METRIC_MODULES = {"ner": "seqeval.metrics", "summarization": "rouge_score.rouge_scorer"}  # else scikit-learn's
TASKS = ("classification", "multi_label", "regression", "ner", "multiple_choice", "qa", "summarization")


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
    task: str = (
        "classification"  # classification | multi_label | regression | ner | multiple_choice | qa | summarization
    )
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


PROBLEM_TYPES = {
    "classification": "single_label_classification",
    "multi_label": "multi_label_classification",
    "regression": "regression",
    "ner": None,
    "multiple_choice": None,
    "qa": None,
    "summarization": None,
}


def build_model(cfg: FinetuneConfig, labels: list[str], vocab_size: int):
    """AlbertForSequenceClassification (or AlbertForTokenClassification for ner) from cfg.init, with these labels."""
    qa_class = AlbertForQuestionAnsweringWithAnswerability if cfg.answerability else AlbertForQuestionAnswering
    cls = {
        "ner": AlbertForTokenClassification,
        "multiple_choice": AlbertForMultipleChoice,
        "qa": qa_class,
        "summarization": AlbertForExtractiveSummarization,
    }.get(cfg.task, AlbertForSequenceClassification)
    head = dict(
        id2label=dict(enumerate(labels)),
        problem_type=PROBLEM_TYPES[cfg.task],
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


class Encoded:
    """Tokenised examples; batches are padded to their longest row."""

    def __init__(self, tok: AlbertTokenizer, examples: list[task.Example], max_length: int, y: np.ndarray | None):
        texts = [e.text for e in examples]
        pairs = [e.pair for e in examples] if examples and examples[0].pair is not None else None
        enc = tok(texts, pairs)
        self.ids, self.types, self.y, self.pad = enc["input_ids"], enc["token_type_ids"], y, tok.pad_token_id
        long = [i for i, ids in enumerate(self.ids) if len(ids) > max_length]
        self.truncated = len(long)
        if long:  # only the over-long rows are encoded again, with truncation
            cut = tok(
                [texts[i] for i in long],
                [pairs[i] for i in long] if pairs else None,
                max_length=max_length,
                truncation=True,
            )
            for k, i in enumerate(long):
                self.ids[i], self.types[i] = cut["input_ids"][k], cut["token_type_ids"][k]

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        width = max(len(self.ids[r]) for r in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        types = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, r in enumerate(rows):
            n = len(self.ids[r])
            ids[b, :n], types[b, :n], mask[b, :n] = torch.tensor(self.ids[r]), torch.tensor(self.types[r]), 1
        out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        if self.y is not None:
            out["labels"] = torch.from_numpy(self.y[list(rows)])
        return out


def predict_scores(model, data: Encoded, batch_size: int, device) -> np.ndarray:
    """Logits in input order, from length-sorted, token-budgeted batches (infer.run_rows)."""
    logits = run_rows(TorchForward(model, device), data.ids, data.types, data.pad, max_batch=batch_size)["logits"]
    return np.stack(logits).astype(np.float32) if logits else np.zeros((0, model.config.num_labels), np.float32)


def evaluate(model, data: Encoded, kind: str, batch_size: int = 64, device="cpu") -> dict[str, float]:
    return task.metrics(kind, data.y, predict_scores(model, data, batch_size, device))


def train(cfg: FinetuneConfig) -> dict[str, Any]:
    """Read and validate every file first, then fine-tune; returns the best dev metrics (or the last train ones)."""
    readers = {
        "summarization": summarization.read_documents,
        "qa": qa.read_squad,
        "multiple_choice": multiple_choice.read_questions,
        "ner": ner.read_sentences,
    }
    read = readers.get(
        cfg.task, lambda path: task.read_examples(path, cfg.task, cfg.text_column, cfg.pair_column, cfg.label_column)
    )
    choose_device(cfg.device)  # refused before any work: a missing GPU, or an out directory that must not be touched
    plot.pyplot()  # and a missing [train] extra (curves at the end, metrics at each evaluation)
    require(METRIC_MODULES.get(cfg.task, "sklearn.metrics"), f"{cfg.task} metrics")
    check_directory(cfg.out, "--out", cfg.overwrite, _inputs(cfg))
    train_examples = read(cfg.train)
    eval_examples = read(cfg.eval) if cfg.eval else None
    return fit_examples(cfg, train_examples, eval_examples)


def _inputs(cfg: FinetuneConfig) -> list[str | None]:
    """The run's own input paths, which its out directory must not hold."""
    init = cfg.init.removeprefix(RANDOM_PREFIX)
    return [init, cfg.tokenizer, cfg.train, cfg.eval]


def task_parts(cfg: FinetuneConfig, tok: AlbertTokenizer, train_examples, eval_examples, labels=None):
    """What differs between task families: labels, encoding, evaluation, the metric that picks the best model.
    ``labels``: the label order to keep (TextClassifier's user-given list), else the one the data implies."""
    if cfg.task == "summarization":

        def encode(examples):
            return summarization.EncodedDocuments(tok, examples, cfg.max_seq_length, cfg.summary_sentences)

        def evaluate_fn(model, data, device):
            return summarization.evaluate(model, data, cfg.batch_size, device, cfg.summary_sentences)

        return ["summary"], encode, evaluate_fn, "rouge2"
    if cfg.task == "qa":

        def encode(examples):
            return qa.QAFeatures(
                tok, examples, cfg.max_seq_length, cfg.doc_stride, cfg.max_query_length, cfg.answerability
            )

        def evaluate_fn(model, data, device):
            scored = qa.predict(model, data, max_answer_length=cfg.max_answer_length, max_batch=cfg.batch_size)
            return qa.evaluate(data.examples, scored)

        return ["start", "end"], encode, evaluate_fn, "f1"
    if cfg.task == "multiple_choice":
        labels = [chr(ord("A") + i) for i in range(len(train_examples[0].options))]
        if eval_examples is not None and len(eval_examples[0].options) != len(labels):
            raise AlbertError(
                f"{cfg.eval}: {len(eval_examples[0].options)} options per question, training has {len(labels)}"
            )

        def encode(examples):
            return multiple_choice.EncodedChoices(tok, examples, cfg.max_seq_length)

        def evaluate_fn(model, data, device):
            return multiple_choice.metrics(data.y, multiple_choice.predict_scores(model, data, cfg.batch_size, device))

        return labels, encode, evaluate_fn, "accuracy"
    if cfg.task == "ner":
        labels = ner.tag_list(train_examples)
        if eval_examples is not None:
            ner.check_tags(eval_examples, labels, cfg.eval or "eval")

        def encode(examples):
            return ner.EncodedTokens(tok, examples, labels, cfg.max_seq_length)

        def evaluate_fn(model, data, device):
            predicted = ner.predict_tags(model, data, labels, cfg.batch_size * 2, device)
            return ner.metrics([s.tags for s in data.sentences], predicted)

        return labels, encode, evaluate_fn, "f1"
    if labels is None:
        labels = task.label_list(train_examples, cfg.task)
    else:
        task.check_labels(train_examples, labels, cfg.task, "the training labels")
    if eval_examples is not None:
        task.check_labels(eval_examples, labels, cfg.task, cfg.eval or "eval")

    def encode(examples):
        return Encoded(tok, examples, cfg.max_seq_length, task.targets(examples, labels, cfg.task))

    def evaluate_fn(model, data, device):
        return evaluate(model, data, cfg.task, cfg.batch_size * 2, device)

    return labels, encode, evaluate_fn, task.main_metric(cfg.task)


def fit_examples(cfg: FinetuneConfig, train_examples, eval_examples, labels=None) -> dict[str, Any]:
    if not cfg.out:
        raise AlbertError("fine-tuning needs an output directory (out)")
    if cfg.task not in PROBLEM_TYPES:
        raise AlbertError(f"unknown task {cfg.task!r} (one of {', '.join(PROBLEM_TYPES)})")
    tok = load_tokenizer(cfg)
    labels, encode, evaluate_fn, metric = task_parts(cfg, tok, train_examples, eval_examples, labels)
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
    plot.finetune_curves(log_path, out / "curves.png", metric)
    mark_complete(out)
    return {"best_step": best_step, **(best or {}), "steps": step, "train_examples": len(train_data)}


def save_classifier(model, tok: AlbertTokenizer, out: Path) -> None:
    """Model + tokenizer into ``out`` (each file replaced atomically)."""
    model.save_pretrained(out)
    tok.save_pretrained(out)


# ----------------------------------------------------------------------------------------------------------------
# The Python API
# ----------------------------------------------------------------------------------------------------------------
MAX_LENGTH_KEY = "max_seq_length"  # config.json key of TextClassifier's max_length (transformers ignores it)


class TextClassifier:
    """fit / predict / predict_proba / save around AlbertForSequenceClassification and its tokenizer."""

    def __init__(
        self,
        model: AlbertForSequenceClassification,
        tokenizer: AlbertTokenizer,
        init: str | None = None,
        labels: list[str] | None = None,
        task_kind: str | None = None,
        max_length: int = 128,
    ):
        self.model, self.tokenizer, self.init, self.max_length = model, tokenizer, init, max_length
        self.user_labels = labels is not None  # fit() keeps their order
        self.labels = labels or [model.config.labels_by_id()[i] for i in range(model.config.num_labels)]
        self.task = task_kind or {"regression": "regression", "multi_label_classification": "multi_label"}.get(
            model.config.problem_type or "", "classification"
        )

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        labels: list[str] | None = None,
        task: str = "classification",
        max_length: int | None = None,
        **hub_options: Any,
    ) -> TextClassifier:
        """A fine-tuned directory or hub id (ready to predict), or a pretrained one plus ``labels`` (ready to fit).
        ``max_length``: tokens per text (default: what ``save`` recorded, else 128). ``hub_options``: revision,
        cache_dir, token, local_files_only."""
        path = hub.local_or_hub(path, "all", hub.options_from(hub_options))
        tok = AlbertTokenizer.from_pretrained(path)
        extra = {"id2label": dict(enumerate(labels))} if labels else {}
        model = AlbertForSequenceClassification.from_pretrained(path, **extra)
        saved = model.config.extra.get(MAX_LENGTH_KEY)
        max_length = infer.fit_length(max_length or saved, model.config.max_position_embeddings, path)
        return cls(model, tok, init=str(path), labels=labels, task_kind=task if labels else None, max_length=max_length)

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[Any],
        eval: tuple[Sequence[str], Sequence[Any]] | None = None,
        **config: Any,
    ) -> dict[str, Any]:
        """Fine-tune in place (FinetuneConfig fields as keywords, e.g. epochs=3, learning_rate=3e-5)."""

        def examples(xs, ys):
            return [
                task.Example(
                    str(x),
                    None,
                    [str(v) for v in y]
                    if self.task == "multi_label"
                    else (float(y) if self.task == "regression" else str(y)),
                    n + 1,
                )
                for n, (x, y) in enumerate(zip(xs, ys, strict=True))
            ]

        if isinstance(texts, str):
            raise TypeError("fit() takes a list of texts (one string is one text: wrap it in a list)")
        settings = {"progress": False, "max_seq_length": self.max_length, **config}  # a keyword overrides the default
        self.max_length = settings["max_seq_length"]
        # the user's label list keeps its order (probability columns follow it), unless labels come from the data
        keep = self.labels if self.user_labels and self.task != "regression" else None
        with tempfile.TemporaryDirectory() as tmp:
            self.model.save_pretrained(Path(tmp) / "init")
            self.tokenizer.save_pretrained(Path(tmp) / "init")
            cfg = FinetuneConfig(init=str(Path(tmp) / "init"), out=str(Path(tmp) / "out"), task=self.task, **settings)
            result = fit_examples(cfg, examples(texts, labels), examples(*eval) if eval else None, keep)
            trained = TextClassifier.from_pretrained(Path(tmp) / "out", max_length=self.max_length)
        self.model, self.labels = trained.model, trained.labels
        return result

    def predict_proba(self, texts: Sequence[str] | str, batch_size: int = 64) -> np.ndarray:
        """One row of probabilities (columns in ``self.labels`` order) per text; a single string is one text."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            width = 1 if self.task == "regression" else len(self.labels)
            return np.zeros((0,) if self.task == "regression" else (0, width), dtype=np.float32)
        scores = infer.classification_logits(
            self.model, self.tokenizer, [str(t) for t in texts], None, self.max_length, max_batch=batch_size
        )
        if self.task == "regression":
            return scores[:, 0]
        if self.task == "multi_label":
            return 1 / (1 + np.exp(-scores))
        exp = np.exp(scores - scores.max(-1, keepdims=True))
        return exp / exp.sum(-1, keepdims=True)

    def predict(self, texts: Sequence[str] | str, batch_size: int = 64) -> list[Any]:
        """One prediction per text (a single string is one text: a list of one)."""
        probs = self.predict_proba(texts, batch_size)
        if self.task == "regression":
            return [float(p) for p in probs]
        if self.task == "multi_label":
            return [[self.labels[i] for i in np.flatnonzero(row > 0.5)] for row in probs]
        return [self.labels[i] for i in probs.argmax(-1)]

    def save(self, path: str | Path) -> None:
        """Model + tokenizer; ``max_length`` is kept in config.json (as max_seq_length), which from_pretrained reads
        back."""
        self.model.config.extra[MAX_LENGTH_KEY] = self.max_length
        save_classifier(self.model, self.tokenizer, Path(path))


class EntityTagger:
    """predict() for a fine-tuned AlbertForTokenClassification: entity spans with character offsets into the text.

    Text with CJK characters is tagged character by character (as Chinese NER data is); other text word by word."""

    def __init__(self, model: AlbertForTokenClassification, tokenizer: AlbertTokenizer, max_length: int = 128):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.labels = [model.config.labels_by_id()[i] for i in range(model.config.num_labels)]

    @classmethod
    def from_pretrained(cls, path: str | Path, max_length: int | None = None, **hub_options: Any) -> EntityTagger:
        """A fine-tuned directory or hub id (``hub_options``: revision, cache_dir, token, local_files_only);
        ``max_length``: tokens per text (default: 128 or the model's positions)."""
        path = hub.local_or_hub(path, "all", hub.options_from(hub_options))
        model = AlbertForTokenClassification.from_pretrained(path)
        max_length = infer.fit_length(max_length, model.config.max_position_embeddings, path)
        return cls(model, AlbertTokenizer.from_pretrained(path), max_length)

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[list[dict]]:
        """Entity spans with character offsets into each text (infer.tag_texts)."""
        return infer.tag_texts(self.model, self.tokenizer, self.labels, texts, self.max_length, max_batch=batch_size)
