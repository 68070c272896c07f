"""Model cards: the README.md in every model directory that `albert finetune`, `albert pretrain` and `albert convert`
write, in the Hugging Face Hub's format (YAML metadata between ``---`` lines, then Markdown).

The metadata is rendered by huggingface_hub's ``ModelCardData`` (a core dependency), so ``huggingface_hub.ModelCard``
parses what is written here. It holds:

- ``library_name: albert-lite``: the library that wrote the directory and the only one that loads every head it
  writes (transformers has no extractive-summarisation or answerability head); a ``transformers`` tag is added where
  transformers has the model's class, and the body shows how to load it there;
- ``pipeline_tag``: the Hub's task tag, from the task (``Task.pipeline_tag``, albert/tasks/);
- ``base_model``: only when the run started from a hub id (``base_model_of``), never for a local path or random
  weights, which the Hub could not link to;
- ``language``: only where the vocabulary shows it (``language_of``); otherwise left out rather than guessed;
- no ``license``: whoever publishes the model decides it (the base model's license applies to its weights); the body
  says so, and how to add the field;
- ``model-index``: one result with every metric of the final evaluation at full precision (the numbers
  `albert evaluate` prints, to 4 decimals, for the same model and file), the task type (= the pipeline tag) and the
  evaluation file's name as the dataset.

The body says what the model is, how it was trained (the settings that matter; the full configuration is in the
run's JSON beside it), its evaluation, how to load it with albert-lite and with transformers, and its limitations.
Files are named by their names only, never by absolute paths: a card is written to be published.

The builders read plain values and the run's config objects field by field; the commands write the text with
``checkpoint.write_text`` (atomically) inside the model directory they have claimed, nowhere else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from albert import hub
from albert.tokenizer import is_cjk

FILENAME = "README.md"
LIBRARY = "albert-lite"
RANDOM_PREFIX = "random:"  # finetune's --init random:PRESET / random:config.json (albert/finetune.py)
# transformers' ALBERT classes: a directory of one of these loads there with the same outputs (the parity tests)
TRANSFORMERS_CLASSES = frozenset(
    {
        "AlbertModel",
        "AlbertForPreTraining",
        "AlbertForMaskedLM",
        "AlbertForSequenceClassification",
        "AlbertForTokenClassification",
        "AlbertForQuestionAnswering",
        "AlbertForMultipleChoice",
    }
)
LICENSE_NOTE = (
    "**License:** not set. Add a `license:` line to the metadata above before publishing this model; the license of "
    "the weights it started from applies to them."
)
MAX_LABELS_SHOWN = 20
FINETUNE_EXAMPLE = "albert finetune --task classification --train train.csv --eval dev.csv --init {directory} --out clf"


# ----------------------------------------------------------------------------------------------------------------
# Facts about a model
# ----------------------------------------------------------------------------------------------------------------
def base_model_of(init: str | None) -> str | None:
    """The hub id a run started from (the legacy short names as their ``albert/`` repositories), or None for a local
    path, random weights (``random:…``) or nothing: the Hub links ``base_model`` to a repository, so only a hub id
    may go there."""
    if not init or init.startswith(RANDOM_PREFIX) or not hub.is_remote(init):
        return None
    return hub.repo_id_of(init)


# A vocabulary is Chinese when at least a third of its entries hold a CJK ideograph and fewer than one in twenty hold
# kana: bert-base-chinese's vocab.txt (the Chinese ALBERTs') has 69 % and 2.6 %; a Japanese vocabulary holds kanji too
# but far more kana (sentencepiece's kyoto_ja test model: 83 % and 24 %), an English or a multilingual one few
# ideographs. No other language is told from the vocabulary: a Latin-script SentencePiece model could be English,
# French or a mix, so the card leaves the field out rather than guess.
CHINESE_SHARE, KANA_SHARE = 1 / 3, 1 / 20


def language_of(tokenizer) -> str | None:
    """``"zh"`` for a Chinese vocabulary (the rule above), None otherwise (unknown, not "not Chinese")."""
    if tokenizer is None or not tokenizer.vocab_size:
        return None
    pieces = tokenizer.convert_ids_to_tokens(range(tokenizer.vocab_size))
    ideographs = sum(any(is_cjk(ch) for ch in piece) for piece in pieces)
    kana = sum(any("\u3040" <= ch <= "\u30ff" for ch in piece) for piece in pieces)
    if ideographs >= CHINESE_SHARE * len(pieces) and kana < KANA_SHARE * len(pieces):
        return "zh"
    return None


def latest_evaluation(log_path: Path, step: int) -> dict[str, Any] | None:
    """The last held-out evaluation a pretraining log (log.jsonl) records at or before ``step``: its step and its
    metrics (the ``eval_`` keys, without the prefix); None if the run has not evaluated."""
    found = None
    if log_path.is_file():
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line torn by a crash
                continue
            if isinstance(record, dict) and record.get("step", step + 1) <= step:
                metrics = {k.removeprefix("eval_"): v for k, v in record.items() if k.startswith("eval_")}
                if metrics:
                    found = {"step": record["step"], "metrics": metrics}
    return found


def shown_name(path: str | None, parts: int = 1) -> str:
    """How a card names an input: a hub id as it is; a local path by its last ``parts`` components (a starting
    checkpoint by two: a pretraining run's is ``RUN/model``), a TensorFlow checkpoint's prefix (no file of that name:
    ``albert_base/model.ckpt-best``) with its folder's."""
    if not path:
        return ""
    if hub.is_remote(path):
        return path
    local = hub.expanded(path)
    names = [part for part in local.parts if part != local.anchor]
    return "/".join(names[-max(parts, 1 if local.exists() else 2) :]) or path


def _shape(config, parameters: int) -> str:
    layers, groups = config.num_hidden_layers, config.num_hidden_groups
    return (
        f"{layers} layer{'s' if layers > 1 else ''}, {groups} shared group{'s' if groups > 1 else ''}, hidden size "
        f"{config.hidden_size}, embedding size {config.embedding_size}, {config.num_attention_heads} attention heads, "
        f"vocabulary {config.vocab_size}, "
        + (f"{parameters / 1e6:.1f}M parameters" if parameters >= 100_000 else f"{parameters:,} parameters")
    )


def _number(value: Any) -> float | None:
    """A metric as a finite float; None for anything else (NaN: a correlation of constant predictions)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


# ----------------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------------
def render(
    *,
    name: str,
    architecture: str,
    pipeline_tag: str | None,
    body: str,
    base_model: str | None = None,
    language: str | None = None,
    task_name: str | None = None,
    dataset: str | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> str:
    """The card: metadata (``ModelCardData``; a model-index when ``metrics`` and ``dataset`` are given) and ``body``."""
    from huggingface_hub import EvalResult, ModelCardData

    results = []
    for key, value in (metrics or {}).items():
        number = _number(value)
        if number is not None and dataset:
            results.append(
                EvalResult(
                    task_type=pipeline_tag or "other",
                    task_name=task_name,
                    dataset_type=dataset,
                    dataset_name=dataset,
                    metric_type=key,
                    metric_name=key,
                    metric_value=number,
                )
            )
    tags = ["albert", *(["transformers"] if architecture in TRANSFORMERS_CLASSES else [])]
    data = ModelCardData(
        library_name=LIBRARY,
        pipeline_tag=pipeline_tag,
        base_model=base_model,
        language=language,
        tags=tags,
        model_name=name if results else None,
        eval_results=results or None,
    )
    return f"---\n{data.to_yaml()}\n---\n\n{body.strip()}\n"


def _table(rows: Iterable[tuple[str, Any]], header: tuple[str, str] = ("setting", "value")) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows if v is not None and v != ""]
    return "\n".join(lines)


def _metric_table(metrics: Mapping[str, Any]) -> str:
    """Metrics to 4 decimals, as `albert evaluate` prints them."""
    shown = [(k, f"{v:.4f}" if _number(v) is not None else str(v)) for k, v in metrics.items()]
    return _table(shown, ("metric", "value"))


def _usage(directory: str, architecture: str, cli: str, cli_note: str = "") -> str:
    """How to load the directory with albert-lite (``cli``: a command line that uses it, ``cli_note`` a sentence on
    it) and with transformers."""
    ours = (
        f"```bash\n{cli}\n```\n\n{cli_note}{chr(10) * 2 if cli_note else ''}"
        f'```python\nimport albert\n\nmodel = albert.{architecture}.from_pretrained("{directory}")\n'
        f'tokenizer = albert.AlbertTokenizer.from_pretrained("{directory}")\n```'
    )
    if architecture in TRANSFORMERS_CLASSES:
        theirs = (
            f'```python\nimport transformers\n\nmodel = transformers.{architecture}.from_pretrained("{directory}")\n'
            f'tokenizer = transformers.AutoTokenizer.from_pretrained("{directory}")\n```'
        )
    else:
        theirs = (
            f'transformers has no `{architecture}`; `transformers.AlbertModel.from_pretrained("{directory}")` loads '
            "the encoder without the head."
        )
    return (
        f"`{directory}` is this directory (or its Hub id, once uploaded).\n\nWith albert-lite:\n\n{ours}\n\n"
        f"With transformers:\n\n{theirs}"
    )


# ----------------------------------------------------------------------------------------------------------------
# The three kinds of model directory
# ----------------------------------------------------------------------------------------------------------------
def finetuned(
    cfg,
    task,
    model,
    tokenizer,
    labels: list[str],
    metrics: Mapping[str, Any] | None,
    name: str,
    run: Mapping[str, Any],
) -> str:
    """A fine-tuned model's card. ``cfg``: its FinetuneConfig; ``task``: its Task; ``metrics``: the kept
    checkpoint's dev metrics (None without a dev file); ``name``: the directory's name; ``run``: ``steps``,
    ``best_step``, ``rate`` (the peak learning rate), ``world_size`` and ``examples`` (training, dev: examples read)."""
    config, architecture = model.config, model.hf_class_name
    steps, best_step, rate, world_size, examples = (
        run[k] for k in ("steps", "best_step", "rate", "world_size", "examples")
    )
    base = base_model_of(cfg.init)
    if cfg.init.startswith(RANDOM_PREFIX):
        start = f"random weights in the shape of `{shown_name(cfg.init[len(RANDOM_PREFIX) :])}`"
    else:
        start = f"`{shown_name(cfg.init, parts=2)}`" + (f" (revision `{cfg.revision}`)" if cfg.revision else "")
    shown = ", ".join(f"`{label}`" for label in labels[:MAX_LABELS_SHOWN])
    shown += f" … ({len(labels)} in all)" if len(labels) > MAX_LABELS_SHOWN else ""
    train_file = shown_name(cfg.train) or "examples given in Python"
    dev_file = shown_name(cfg.eval) or "dev examples given in Python"
    intro = (
        f"# {name}\n\nAn ALBERT model ({_shape(config, model.num_parameters())}) fine-tuned with "
        f"albert-lite for **{task.name}** (`{architecture}`), "
        f"from {start}. Labels: {shown}.\n\n{LICENSE_NOTE}"
    )
    epochs = f" ({steps / max(1, examples[0]) * cfg.batch_size * cfg.grad_accum * world_size:.2f} epochs)"
    training = _table(
        [
            ("started from", start),
            ("training data", f"`{train_file}`, {examples[0]:,} examples"),
            ("optimizer steps", f"{steps:,}" + epochs),
            (
                "batch",
                f"{cfg.batch_size * cfg.grad_accum * world_size} examples ({cfg.batch_size} × {cfg.grad_accum} "
                f"accumulation × {world_size} process{'es' if world_size > 1 else ''})",
            ),
            (
                "learning rate",
                f"{rate:g} peak (AdamW, weight decay {cfg.weight_decay:g}, warmup {cfg.warmup_ratio:.0%} of the "
                "steps, then linear decay)"
                if rate
                else None,
            ),
            ("max sequence length", cfg.max_seq_length),
            ("dropout", f"classifier {cfg.classifier_dropout:g}" + (f", model {cfg.dropout:g}" if cfg.dropout else "")),
            ("seed", cfg.seed),
        ]
    )
    if metrics:
        evaluation = (
            f"On `{dev_file}` ({examples[1]:,} examples), the checkpoint kept by its {task.selection_metric(metrics)} "
            f"(step {best_step:,} of {steps:,}):\n\n{_metric_table(metrics)}\n\n`albert evaluate --model "
            f"{name} --data {dev_file}` gives these figures; the metadata above holds them at full precision."
            if cfg.eval
            else f"On {examples[1]:,} {dev_file}, the checkpoint kept by its {task.selection_metric(metrics)} "
            f"(step {best_step:,} of {steps:,}):\n\n{_metric_table(metrics)}"
        )
    else:
        evaluation = "Not evaluated: the run had no dev file (`--eval`); this is the model of the last step."
    columns = [f"`{c}`" for c in task.input_columns(vars(cfg)).values()]  # what predict reads: as trained
    inputs = "texts.txt" if len(columns) == 1 else "inputs.jsonl"
    note = f"`--input` takes .jsonl, .csv or .tsv records with the field{'s' if len(columns) > 1 else ''} "
    note += ", ".join(columns) + ("; or a .txt file, one text a line." if len(columns) == 1 else ".")
    limits = [
        f"Fine-tuned on {examples[0]:,} examples of `{train_file}`"
        + (" from random weights" if cfg.init.startswith(RANDOM_PREFIX) else "")
        + ".",
        f"Inputs are cut to {cfg.max_seq_length} tokens.",
    ]
    if metrics:
        limits.append(
            "The figures are on the dev set that also chose the checkpoint, not on a held-out test set: expect lower "
            "on new data (`albert evaluate` on a test file tells)."
        )
        if metrics.get("predicted_labels") == 1 and len(labels) > 1:
            limits.append("The kept model gives every dev example the same label: it learned the label prior only.")
    body = "\n\n".join(
        [
            intro,
            f"## Training\n\n{training}\n\nEvery setting is in `finetune_config.json`, the run's log in `log.jsonl`.",
            f"## Evaluation\n\n{evaluation}",
            "## Use\n\n" + _usage(name, architecture, f"albert predict --model {name} --input {inputs}", note),
            "## Limitations\n\n" + "\n".join(f"- {line}" for line in limits),
        ]
    )
    return render(
        name=name,
        architecture=architecture,
        pipeline_tag=task.pipeline_tag,
        body=body,
        base_model=base,
        language=language_of(tokenizer),
        task_name=task.name,
        dataset=shown_name(cfg.eval) or "dev",
        metrics=metrics,
    )


def pretrained(cfg, model, corpus, step: int, world_size: int, log_path: Path) -> str:
    """A pretraining run's model/ card at ``step``: its settings (``cfg``: the resolved PretrainConfig), its corpus
    (``corpus``: the PretrainData, with its tokenizer and manifest) and the latest held-out evaluation in its log
    (``log_path``)."""
    config, architecture, name = model.config, model.hf_class_name, Path(cfg.out).name
    start = f"the weights of `{shown_name(cfg.model, parts=2)}`" if Path(cfg.model).is_dir() else "random weights"
    data, files = shown_name(cfg.data), [Path(f).name for f in corpus.manifest.get("files", [])]
    listed = ", ".join(f"`{f}`" for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    intro = (
        f"# {name}\n\nAn ALBERT encoder ({_shape(config, model.num_parameters())}) pretrained with albert-lite "
        f"(masked LM on whole-word n-grams + sentence order prediction) on the corpus `{data}` (prepared from "
        f"{listed or 'its text files'}, {corpus.manifest.get('lines', 0):,} lines), from {start}. This is the "
        f"checkpoint of step {step:,} of {cfg.max_steps:,}.\n\n{LICENSE_NOTE}"
    )
    global_batch = cfg.batch_size * cfg.grad_accum * world_size
    training = _table(
        [
            ("steps", f"{step:,} of {cfg.max_steps:,}"),
            ("batch", f"{global_batch} sequences of up to {cfg.max_seq_length} tokens"),
            ("optimizer", f"{cfg.optimizer}, peak rate {cfg.learning_rate:g}, weight decay {cfg.weight_decay:g}"),
            ("schedule", f"{cfg.warmup_steps:,} warmup steps, then polynomial decay (power {cfg.poly_power:g}) to 0"),
            ("gradient clipping", f"global norm {cfg.clip_norm:g}"),
            (
                "masking",
                f"{cfg.masking}, {cfg.masked_lm_prob:.0%} of tokens in whole-word n-grams (n ≤ 3), at most "
                f"{cfg.max_predictions} per sequence; short sequences {cfg.short_seq_prob:.0%}",
            ),
            ("dropout", f"{cfg.dropout:g}" if cfg.dropout is not None else "the model config's"),
            ("seed", cfg.seed),
        ]
    )
    held_out = latest_evaluation(log_path, step)
    if held_out:
        evaluation = (
            f"Held out: {cfg.eval_fraction:.0%} of the corpus's documents, at most {cfg.eval_batches} batches of "
            f"{cfg.batch_size} sequences, masked as the released recipe masks (15%, at most 20 per sequence), at "
            f"step {held_out['step']:,}:\n\n{_metric_table(held_out['metrics'])}"
        )
    else:
        evaluation = "Not evaluated yet" + (" (no held-out split: eval_fraction 0)." if not cfg.eval_fraction else ".")
    limits = [
        f"Pretrained for {step:,} steps on one corpus (`{data}`); held-out figures come from documents of the same "
        "corpus.",
        'Not fine-tuned for any task: it fills masks (`albert predict --model DIR "A [MASK] day."`); fine-tune it '
        "first (`albert finetune --init`) for a task, or ask for its sentence vectors (`--task embedding`).",
    ]
    directory = f"{name}/model"
    cli = FINETUNE_EXAMPLE.format(directory=directory)
    body = "\n\n".join(
        [
            intro,
            f"## Training\n\n{training}\n\nEvery setting is in the run's `run_config.json`, its log in `log.jsonl`.",
            f"## Evaluation\n\n{evaluation}",
            "## Use\n\n" + _usage(directory, architecture, cli),
            "## Limitations\n\n" + "\n".join(f"- {line}" for line in limits),
        ]
    )
    return render(
        name=name,
        architecture=architecture,
        pipeline_tag="fill-mask",  # a masked LM: the FillMask task's tag (albert/tasks/fill_mask.py)
        body=body,
        language=language_of(corpus.tokenizer),
        task_name="pretraining",
        dataset=data if held_out else None,
        metrics=held_out["metrics"] if held_out else None,
    )


def converted(
    report, model, tokenizer, name: str, source: str, pipeline_tag: str | None, base_model: str | None
) -> str:
    """A converted checkpoint's card: what it was converted from (``source``: its name or hub id; ``report``: the
    ImportReport), no metrics. ``name``: the directory's name."""
    config, architecture = model.config, model.hf_class_name
    kind = (
        "a transformers BERT directory"
        if report.layout == "transformers-bert"
        else f"a TensorFlow checkpoint ({report.layout} layout" + (", TF-Hub module)" if report.prefix else ")")
    )
    facts = [
        f"{len(report.converted):,} variables converted; {len(report.optimizer):,} optimizer variables skipped.",
        f"Not used by `{architecture}`: {', '.join(f'`{n}`' for n in report.unused)}." if report.unused else "",
        f"Unknown, not converted: {len(report.unknown):,} variables." if report.unknown else "",
        (
            f"Newly initialised (random, not from the source): {', '.join(f'`{n}`' for n in report.initialised)}."
            if report.initialised
            else ""
        ),
        "Tokenizer: "
        + (
            f"`{Path(tokenizer.source).name}`."
            if tokenizer is not None
            else "none found beside the checkpoint (`albert convert --tokenizer FILE` adds one; loading it needs one)."
        ),
    ]
    intro = (
        f"# {name}\n\nAn ALBERT model ({_shape(config, model.num_parameters())}, `{architecture}`) converted by "
        f"albert-lite's `albert convert` from `{source}`, {kind}.\n\n"
        f"{LICENSE_NOTE}"
    )
    limits = [
        "What the source was trained on and for is not recorded here: see where it came from.",
        "Not evaluated after conversion; the weights are the source's, in the transformers layout.",
    ]
    if report.initialised:
        limits.append("The newly initialised parameters are random: fine-tune before using their outputs.")
    body = "\n\n".join(
        [
            intro,
            "## Conversion\n\n" + "\n".join(f"- {fact}" for fact in facts if fact),
            "## Use\n\n" + _usage(name, architecture, FINETUNE_EXAMPLE.format(directory=name)),
            "## Limitations\n\n" + "\n".join(f"- {line}" for line in limits),
        ]
    )
    return render(
        name=name,
        architecture=architecture,
        pipeline_tag=pipeline_tag,
        body=body,
        base_model=base_model,
        language=language_of(tokenizer),
    )
