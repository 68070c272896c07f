"""The ``albert`` command: a thin argparse layer in which each subcommand calls one library function."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

import albert
from albert.cliflags import (
    COUNT,
    SEQUENCE_LENGTH,
    add_dataclass_flags,
    add_hub_flags,
    bounded,
    config_from_args,
    hub_options,
)
from albert.fields import THREADS, Range
from albert.outputs import strict_json, working_directory
from albert.readers import json_file


def cmd_presets(args: argparse.Namespace) -> int:
    """Print every preset with its shape and encoder+pooler parameter count (counted on the meta device)."""
    import torch

    print(f"{'preset':<20} {'layers':>6} {'hidden':>6} {'E':>4} {'heads':>5} {'ffn':>6} {'vocab':>6} {'act':<9} params")
    for name in sorted(albert.PRESETS):
        cfg = albert.AlbertConfig.from_name(name)
        with torch.device("meta"):
            count = albert.AlbertModel(cfg).num_parameters()
        print(
            f"{name:<20} {cfg.num_hidden_layers:>6} {cfg.hidden_size:>6} {cfg.embedding_size:>4} "
            f"{cfg.num_attention_heads:>5} {cfg.intermediate_size:>6} {cfg.vocab_size:>6} {cfg.hidden_act:<9} {count:,}"
        )
    return 0


def cmd_tokenizer_train(args: argparse.Namespace) -> int:
    """Train a SentencePiece unigram tokenizer with ALBERT's settings."""
    from albert import spm

    spm.train(
        args.input,
        args.out,
        vocab_size=args.vocab_size,
        do_lower_case=not args.cased,
        keep_accents=args.keep_accents,
        character_coverage=args.character_coverage,
        model_type=args.model_type,
        verbose=args.verbose,
        overwrite=args.overwrite,
    )
    return 0


def cmd_tokenizer_encode(args: argparse.Namespace) -> int:
    """Encode lines from stdin (or --input files): one line of ids (or pieces) per input line."""
    from albert.readers import read_lines
    from albert.tokenizer import AlbertTokenizer

    tok = AlbertTokenizer.from_pretrained(args.tokenizer, **vars(hub_options(args)))
    from albert.readers import stdin_lines

    lines = read_lines(args.input) if args.input else stdin_lines()
    batch: list[str] = []

    def flush() -> None:
        for ids in tok(batch, add_special_tokens=args.special_tokens)["input_ids"]:
            print(" ".join(tok.convert_ids_to_tokens(ids) if args.pieces else map(str, ids)))
        batch.clear()

    for line in lines:
        batch.append(line)
        if len(batch) == 1000:
            flush()
    flush()
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """Tokenise a corpus into shards for pretraining."""
    from albert.data import PrepareConfig, prepare

    cfg = config_from_args(PrepareConfig, args)
    manifest = prepare(cfg)
    tokens = sum(s["tokens"] for s in manifest["shards"])
    documents = sum(s["documents"] for s in manifest["shards"])
    print(f"{documents:,} documents, {manifest['lines']:,} lines, {tokens:,} tokens → {cfg.out}")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Pretrain ALBERT (MLM + SOP); under torchrun every process runs this."""
    from albert.pretrain import PretrainConfig, train

    base = None
    if args.resume_dir:  # `--resume DIR` continues DIR with the configuration it was started with
        saved = working_directory(args.resume_dir, resumable=True) / "run_config.json"  # or a killed --overwrite's
        if not saved.is_file():
            raise albert.AlbertError(f"{args.resume_dir}: nothing to resume (no run_config.json in {saved.parent})")
        base = {k: v for k, v in json_file(saved).items() if k != "world_size"}
        base.update(out=args.resume_dir, resume=True)
    result = train(config_from_args(PretrainConfig, args, base))
    print(strict_json(result, indent=2))
    return 130 if result.get("interrupted") else 0


def cmd_finetune(args: argparse.Namespace) -> int:
    """Fine-tune any task (--task: classification, multi_label, regression, ner, qa, multiple_choice,
    summarization, similarity) on its files; the best dev checkpoint lands in --out."""
    from albert.finetune import FinetuneConfig, train

    base = None
    if args.resume_dir:  # `--resume DIR` continues DIR with the configuration it was started with
        saved = working_directory(args.resume_dir, resumable=True) / "finetune_config.json"  # or a killed --overwrite's
        if not saved.is_file():
            raise albert.AlbertError(
                f"{args.resume_dir}: nothing to resume (no finetune_config.json in {saved.parent})"
            )
        base = {**json_file(saved), "out": args.resume_dir, "resume": True}
    result = train(config_from_args(FinetuneConfig, args, base))
    print(strict_json(result, indent=2))
    return 130 if result.get("interrupted") else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Metrics of a fine-tuned model on a labelled file, for every task, with the settings it was trained with (a
    classifier's confusion matrix drawn where --confusion-png says; nothing is written into the model)."""
    from albert.finetune import evaluate_directory
    from albert.hub import local_or_hub
    from albert.outputs import PNG, check_output_file

    figure = None
    if args.confusion_png:  # checked before any work; nothing is written into the model directory unless asked
        figure = check_output_file(args.confusion_png, "--confusion-png", PNG, [args.model, args.data], args.overwrite)
    model_dir = local_or_hub(args.model, "all", hub_options(args), flag="--model")  # a hub id → its snapshot
    columns = {"text_column": args.text_column, "pair_column": args.pair_column, "label_column": args.label_column}
    if args.tune and args.max_seq_length:  # the threshold belongs to the windows predict will use: the model's own
        raise albert.AlbertError("--tune tunes for the model's own settings; drop --max-seq-length")
    if args.tune and model_dir != Path(args.model).expanduser():
        raise albert.AlbertError(f"--tune writes into the model directory; {args.model} is a hub id: download it first")
    result, count, drawn = evaluate_directory(
        model_dir, args.data, figure=figure, tune=args.tune, max_seq_length=args.max_seq_length, **columns
    )
    _print_metrics(result, count, args.data)
    if args.tune:
        print(f"tuned on {args.data} → {Path(model_dir) / 'decoding.json'}")
    if drawn:
        print(f"confusion matrix → {drawn}")
    return 0


def _print_metrics(result: dict[str, float], count: int, data: str) -> None:
    print(f"{count} examples from {data}")
    for name, value in result.items():
        print(f"  {name:<12} {value:.4f}")


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict for texts given as arguments, --input FILE (streamed: any size) or stdin lines; JSONL out, in input
    order. Batches are length-sorted and sized by a token budget; --onnx runs an `albert export` file instead."""
    from tqdm import tqdm

    from albert import infer
    from albert.outputs import PREDICTIONS, atomic_output, check_output_file, terminate_as_interrupt
    from albert.readers import stdin_lines

    if args.input and not Path(args.input).is_file():  # before the model loads, and before any output is touched
        what = "is a directory; expected a file" if Path(args.input).is_dir() else "no such input file"
        raise albert.AlbertError(f"--input {args.input}: {what}")
    if args.output:
        inputs = [args.model, args.input, args.onnx]
        check_output_file(args.output, "--output", PREDICTIONS, inputs, args.overwrite)
    predictor = infer.Predictor(
        args.model,
        args.onnx,
        args.max_seq_length,
        args.max_tokens,
        args.max_batch,
        args.threads,
        hub_options=hub_options(args),
        model_flag="--model",
        task=args.task,
        top_k=args.top_k,
        targets=args.targets,
    )
    # (the record as given, what the model predicts for): the output is the record plus its prediction. Each field is
    # read from the column the model was trained with (a text pair classifier's two, STS-B's sentence1/sentence2)
    family = predictor.family
    columns = family.input_columns(predictor.trained)  # field → column, e.g. {"text": "review"}
    if args.text_column:
        columns["text"] = args.text_column
    if tuple(columns) != ("text",):
        if not args.input:
            wanted = ", ".join(columns.values())
            raise albert.AlbertError(f"a {predictor.task} model reads records: pass --input FILE.jsonl with {wanted}")
        found = infer.iter_records(args.input, columns, family.item)
        records = ((r, family.item_of(values)) for _, r, values in found)
    elif args.texts:
        records = (({"text": t}, t) for t in args.texts)
    elif args.input:
        records = ((r, values["text"]) for _, r, values in infer.iter_records(args.input, columns))
    else:  # every line is a text, blank ones too: output line n answers input line n
        records = (({"text": line}, line) for line in stdin_lines())
    # a file output is written under a temporary name and renamed at the end: a bad input line leaves it untouched
    # SIGTERM unwinds as Ctrl-C does, so the unfinished output is dropped and the old file kept
    out = atomic_output(args.output) if args.output else contextlib.nullcontext(sys.stdout)
    shown = args.output is not None and not args.quiet
    with terminate_as_interrupt(), out as stream, tqdm(desc="predict", unit=" rows", disable=not shown, delay=1) as bar:
        progress = infer.RowProgress(predictor.forward, bar, predictor.family.item is str)
        predictor.forward = progress  # the bar moves with each model call, not each chunk of --chunk rows
        for record in infer.predict_stream(predictor, records, chunk=args.chunk):
            print(strict_json(record, ensure_ascii=False), file=stream)
            progress.wrote()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a model over HTTP (FastAPI + uvicorn): micro-batching, limits with clear 4xx, graceful shutdown,
    JSON access log; OpenAPI docs at /docs."""
    from albert.serve import ServeConfig, serve

    serve(config_from_args(ServeConfig, args))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a model directory to ONNX (dynamic batch and length, no einsum), check it against PyTorch with
    onnxruntime, optionally quantise to int8."""
    from albert.export import export_onnx

    report = export_onnx(
        args.model,
        args.onnx,
        int8=args.int8,
        opset=args.opset,
        hub_options=hub_options(args),
        overwrite=args.overwrite,
        task=args.task,
    )
    print(strict_json(report, indent=1))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert a TensorFlow ALBERT/BERT checkpoint (Google, TF-Hub, fine-tuned, albert_zh; as a directory or the
    release archive itself) or a transformers BERT directory into a transformers-layout ALBERT directory; no
    TensorFlow needed."""
    from albert import importers

    report = importers.convert(
        args.source,
        args.out,
        args.kind,
        args.model_config,
        args.tokenizer,
        args.head,
        hub_options(args),
        args.overwrite,
    )
    print(report.summary())
    print(f"wrote {args.out}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """List a checkpoint's variables (TensorFlow) or keys (transformers / safetensors) with dtypes and shapes,
    and the layout they were detected as."""
    import numpy as np

    from albert import importers

    info = importers.describe(args.path)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"path:   {info['path']}\nformat: {info['format']}")
    print(f"layout: {info['layout']}" + (f" (prefix '{info['prefix']}')" if info["prefix"] else ""))
    roles: dict[str, int] = {}
    for var in info["variables"]:
        roles[var["role"]] = roles.get(var["role"], 0) + 1
        if args.all or var["role"] != "optimizer":
            shape = "×".join(map(str, var["shape"])) or "scalar"
            print(f"  {var['name']:<80} {var['dtype']:<9} {shape}  {'' if var['role'] == 'weight' else var['role']}")
    weights = sum(int(np.prod(v["shape"])) for v in info["variables"] if v["role"] == "weight")
    print(", ".join(f"{n} {role}" for role, n in sorted(roles.items())) + f"; {weights:,} weight values")
    if info.get("missing_data_files"):
        missing = info["missing_data_files"]
        print(f"missing data files ({len(missing)}): {', '.join(missing)}; the listing above is from the index alone")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    """Push a model directory (config, weights, tokenizer and what fine-tuning saved) to a Hugging Face Hub repository
    in one commit, creating the repository and the branch if missing. A folder that is not a complete model (a run
    still writing it, no weights, no tokenizer) is refused before anything is sent."""
    from albert.push import push_folder

    options = dict(private=args.private, revision=args.revision, commit_message=args.commit_message, token=args.token)
    print(strict_json(push_folder(args.folder, args.repo_id, **options), indent=2))
    return 0


EXAMPLES = {
    "presets": ["albert presets"],
    "prepare": [
        "albert prepare --input corpus.txt --tokenizer tok/ --out data/",
        "albert prepare --input wiki/ --tokenizer albert/albert-base-v2 --out data/ --chinese-words jieba",
    ],
    "pretrain": [
        "albert pretrain --data data/ --out run/ --model albert-base-v2 --max-steps 10000",
        "torchrun --nproc_per_node 2 -m albert pretrain --data data/ --out run/ --model config.json",
        "albert pretrain --resume run/ --max-steps 20000",
    ],
    "finetune": [
        "albert finetune --train train.csv --eval dev.csv --init albert/albert-base-v2 --out clf/",
        "albert finetune --config configs/finetune/sst-2.yaml --train sst2/train.tsv --init run/model --out sst2/",
        "albert finetune --task ner --train train.conll --eval dev.conll --init run/model --out ner/",
        "albert finetune --resume clf/",
    ],
    "evaluate": ["albert evaluate --model clf/ --data test.csv", "albert evaluate --model ner/ --data test.conll"],
    "predict": [
        'albert predict --model clf/ "a great film" "a dull one"',
        "albert predict --model clf/ --input reviews.csv --output predictions.jsonl",
        "cat texts.txt | albert predict --model clf/ --onnx clf.onnx",
        "albert predict --model race/ --input questions.jsonl",
        'albert predict --model runs/pretrain/model "It was a [MASK] day." --top-k 3',
    ],
    "serve": [
        "albert serve --model clf/ --port 8000",
        "albert serve --model clf/ --onnx clf-int8.onnx --host 0.0.0.0 --max-batch 32",
    ],
    "export": ["albert export --model clf/ --onnx clf.onnx", "albert export --model clf/ --onnx clf-int8.onnx --int8"],
    "convert": [
        "albert convert albert_base_v2.tar.gz --out albert-base/",
        "albert convert albert_tiny_zh/ --from tf --out albert-tiny-zh/",
        "albert convert sentence-transformers/all-MiniLM-L6-v2 --from bert --out minilm/",
    ],
    "inspect": [
        "albert inspect albert_base/model.ckpt-best.index",
        "albert inspect albert_base_v2.tar.gz --all --json",
    ],
    "push": [
        "albert push runs/spam you/spam-filter",
        'albert push clf/ you/clf --private --revision v2 --commit-message "Tuned on the new data"',
    ],
    "tokenizer train": ["albert tokenizer train --input corpus.txt --out tok/ --vocab-size 30000"],
    "tokenizer encode": ["echo 'Hello world' | albert tokenizer encode --tokenizer tok/ --pieces"],
}


def command(sub, name: str, func, key: str | None = None) -> argparse.ArgumentParser:
    """A subcommand whose help is its function's docstring and whose --help ends with example invocations."""
    doc = " ".join((func.__doc__ or "").split())
    examples = "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[key or name])
    parser = sub.add_parser(
        name,
        help=doc.split(". ")[0],
        description=doc,
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func)
    return parser


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; ``only`` (a subcommand's name, or "" for none) gives the others no flags, so that the
    config modules behind them, which import torch, are not imported to parse one command (or `albert --help`)."""
    parser = argparse.ArgumentParser(prog="albert", description="ALBERT toolkit: pretrain, fine-tune, convert, serve.")
    parser.add_argument("--version", action="version", version=f"albert-lite {albert.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    command(sub, "presets", cmd_presets)
    full = {name: only is None or only == name for name in ("prepare", "pretrain", "finetune", "serve", "convert")}
    _training_commands(sub, full)
    _prediction_commands(sub, full)
    _conversion_commands(sub, full)
    _tokenizer_commands(sub)
    _sharing_commands(sub)
    return parser


def _training_commands(sub, full: dict[str, bool]) -> None:
    prepare = command(sub, "prepare", cmd_prepare, "prepare")
    if full["prepare"]:
        from albert.data import PrepareConfig

        add_dataclass_flags(prepare, PrepareConfig, required=("input", "tokenizer", "out"))
    pretrain = command(sub, "pretrain", cmd_pretrain, "pretrain")
    if full["pretrain"]:
        from albert.pretrain import PretrainConfig

        add_dataclass_flags(pretrain, PretrainConfig, required=("data", "out"), skip=("resume",))
        pretrain.add_argument("--resume", dest="resume_dir", metavar="RUN_DIR", help="continue this run directory")
    finetune = command(sub, "finetune", cmd_finetune, "finetune")
    if full["finetune"]:
        from albert.finetune import FinetuneConfig

        add_dataclass_flags(finetune, FinetuneConfig, required=("train", "init", "out"), skip=("resume",))
        finetune.add_argument("--resume", dest="resume_dir", metavar="OUT", help="continue this unfinished run")
        add_hub_flags(finetune, config_fields=True)


def _prediction_commands(sub, full: dict[str, bool]) -> None:
    evaluate = command(sub, "evaluate", cmd_evaluate, "evaluate")
    evaluate.add_argument("--model", required=True, help="fine-tuned model directory or hub id")
    evaluate.add_argument("--data", required=True, help="labelled CSV/TSV/JSONL (NER: CoNLL or JSONL)")
    evaluate.add_argument("--confusion-png", help="draw the confusion matrix (classification) to this .png file")
    evaluate.add_argument(
        "--tune",
        action="store_true",
        help="save what this file tunes for prediction into the model (QA: the null threshold of best_f1)",
    )
    predict = command(sub, "predict", cmd_predict, "predict")
    predict.add_argument("--model", required=True, help="fine-tuned model directory or hub id")
    predict.add_argument("texts", nargs="*", help="texts to predict (else --input, else stdin lines)")
    predict.add_argument(
        "--input",
        help="CSV/TSV/JSONL/TXT file of texts, or records with the task's fields (QA: question, context; multiple "
        "choice: passage, question, options; similarity: text, pair)",
    )
    predict.add_argument("--output", help="write JSONL here instead of stdout (with a progress bar)")
    predict.add_argument("--onnx", help="run this `albert export` file with onnxruntime instead of PyTorch")
    predict.add_argument("--max-tokens", type=COUNT, help="token budget per batch, rows × longest (1024 on CPU)")
    predict.add_argument("--max-batch", type=COUNT, default=256, help="most rows per batch")
    predict.add_argument(
        "--threads", type=bounded(int, THREADS), help=f"CPU threads, at most {THREADS.high:g} (default: the engine's)"
    )
    predict.add_argument("--chunk", type=COUNT, default=4096, help="rows held in memory at once")
    predict.add_argument("--quiet", action="store_true", help="no progress bar")
    predict.add_argument(
        "--task",
        choices=["fill_mask", "embedding"],
        help="what a masked-LM or pretraining directory predicts (default: fill_mask; embedding: sentence vectors)",
    )
    predict.add_argument("--top-k", type=COUNT, default=5, help="fill-mask: candidates per [MASK]")
    predict.add_argument(
        "--targets", nargs="+", help="fill-mask: score only these tokens, as the pipeline does (put texts before it)"
    )
    for p in (evaluate, predict):
        add_hub_flags(p)
        p.add_argument("--overwrite", action="store_true", help="replace an existing output file of another kind")
        p.add_argument("--text-column", help="CSV/JSONL field holding the text (default: as trained, else text)")
        p.add_argument(
            "--max-seq-length",
            type=SEQUENCE_LENGTH,
            help="tokens per text (default: the length it was fine-tuned with, else 128 or the model's positions)",
        )
    evaluate.add_argument("--pair-column", help="field of a second text (sentence pairs), if any")
    evaluate.add_argument("--label-column", help="field holding the label (default: as trained, else label)")

    serve = command(sub, "serve", cmd_serve, "serve")
    if full["serve"]:
        from albert.serve import ServeConfig

        add_dataclass_flags(serve, ServeConfig, required=("model",))
        add_hub_flags(serve, config_fields=True)
    export = command(sub, "export", cmd_export, "export")
    export.add_argument("--model", required=True, help="model directory")
    export.add_argument("--onnx", required=True, help="output .onnx file")
    export.add_argument("--int8", action="store_true", help="dynamic int8 quantisation (onnxruntime)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing file that is not an export")
    export.add_argument(
        "--task",
        choices=["fill_mask", "embedding"],
        help="what a masked-LM or pretraining directory's graph computes (default: fill_mask; embedding: vectors)",
    )
    export.add_argument(
        "--opset", type=bounded(int, Range(14, 20)), default=17, help="ONNX opset, 14 to 20 (what torch exports)"
    )
    add_hub_flags(export)


def _conversion_commands(sub, full: dict[str, bool]) -> None:
    convert = command(sub, "convert", cmd_convert, "convert")
    if full["convert"]:
        _convert_flags(convert)
    inspect = command(sub, "inspect", cmd_inspect, "inspect")
    inspect.add_argument(
        "path", help="TF checkpoint, release archive, transformers directory, .safetensors or .bin file"
    )
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.add_argument("--all", action="store_true", help="also list optimizer slots")


def _convert_flags(convert: argparse.ArgumentParser) -> None:
    from albert.importers import HEADS, SOURCES

    convert.add_argument(
        "source",
        help="TF checkpoint prefix / .index / directory, a release archive (.tar.gz, .zip: Google, brightmart, "
        "TF-Hub), or a transformers BERT directory or hub id",
    )
    convert.add_argument(
        "--from", dest="kind", choices=SOURCES, default="auto", help="source format (default: auto, from the files)"
    )
    convert.add_argument("--config", dest="model_config", help="albert_config.json (default: found next to it)")
    convert.add_argument("--tokenizer", help="30k-clean.model / spiece.model / vocab.txt (default: found next to it)")
    convert.add_argument("--head", choices=HEADS, default="auto", help="model class (default: from the variables)")
    convert.add_argument("--out", required=True, help="output directory (transformers layout; missing or empty)")
    convert.add_argument("--overwrite", action="store_true", help="replace what a non-empty --out holds")
    add_hub_flags(convert)


def _sharing_commands(sub) -> None:
    push = command(sub, "push", cmd_push)
    push.add_argument("folder", metavar="DIR", help="model directory: a fine-tuned --out, a run's model/")
    push.add_argument("repo_id", metavar="REPO_ID", help="hub repository, user/name or org/name (created if missing)")
    push.add_argument("--private", action="store_true", help="create the repository private")
    push.add_argument(
        "--revision", metavar="BRANCH", help="branch to commit to, created from main if missing (default: main)"
    )
    push.add_argument(
        "--commit-message",
        metavar="TEXT",
        help="the commit's message (default: Upload model and tokenizer with albert-lite VERSION)",
    )
    push.add_argument(
        "--token", help="hub: token with write access (default: HF_TOKEN, else the one `hf auth login` stored)"
    )


def _tokenizer_commands(sub) -> None:
    tok = sub.add_parser("tokenizer", help="train a tokenizer or encode text").add_subparsers(
        dest="action", required=True
    )
    train = command(tok, "train", cmd_tokenizer_train, "tokenizer train")
    train.add_argument(
        "--input", nargs="+", required=True, help="text files (one sentence/paragraph per line) or .jsonl"
    )
    train.add_argument("--out", required=True, help="directory for spiece.model and tokenizer_config.json")
    train.add_argument("--vocab-size", type=bounded(int, Range(16)), default=30000, help="pieces in the vocabulary")
    train.add_argument("--cased", action="store_true", help="keep case (ALBERT's English models are lower-cased)")
    train.add_argument("--keep-accents", action="store_true", help="keep accents (ALBERT's English models strip them)")
    train.add_argument(
        "--character-coverage", type=bounded(float, Range(0, 1, low_open=True)), default=0.99995, help="in (0, 1]"
    )
    train.add_argument(
        "--model-type", default="unigram", choices=["unigram", "bpe"], help="SentencePiece algorithm (ALBERT: unigram)"
    )
    train.add_argument("--overwrite", action="store_true", help="replace what a non-empty --out holds")
    train.add_argument("--verbose", action="store_true", help="show SentencePiece's own training log")
    encode = command(tok, "encode", cmd_tokenizer_encode, "tokenizer encode")
    encode.add_argument("--tokenizer", required=True, help="directory (or spiece.model / vocab.txt)")
    encode.add_argument("--input", nargs="*", help="files to read instead of stdin")
    encode.add_argument("--pieces", action="store_true", help="print pieces instead of ids")
    encode.add_argument("--no-special-tokens", dest="special_tokens", action="store_false", help="no [CLS]/[SEP]")
    add_hub_flags(encode)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    only = argv[0] if argv and not argv[0].startswith("-") else ""  # the subcommand, if any
    args = build_parser(only).parse_args(argv)
    if getattr(args, "token", None):  # huggingface_hub reads HF_TOKEN at each request; never written to a file
        os.environ["HF_TOKEN"] = args.token
    try:
        return args.func(args)
    except albert.AlbertError as err:  # bad input: one clear line, no traceback
        print(f"albert: error: {err}", file=sys.stderr)
        return 2
    except (
        BrokenPipeError
    ) as err:  # the reader went away (`albert predict ... | head -1`): end quietly, as Unix tools do
        if err.filename is not None:  # a file, not our stdout: an error like any other
            print(f"albert: error: {err.filename}: {err.strerror}", file=sys.stderr)
            return 2
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the interpreter's final flush is silent
        return 128 + 13  # what a shell reports for a command ended by SIGPIPE
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM where a command turns it into this: its outputs are cleaned up
        print("albert: interrupted", file=sys.stderr)
        return 130
