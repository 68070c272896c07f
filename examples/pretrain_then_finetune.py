"""Does a small-budget pretraining run help an English task? Pretrain, then fine-tune, both with the defaults.

1. `albert pretrain`'s defaults (AdamW, unigram-prior bias, 40 % masking; see docs/pretraining.md) on the text of
   the task's training split only (its dev and test text is never seen), with an 8,000-piece SentencePiece tokenizer
   trained on the same text: a 4-layer ALBERT (H=256, E=128), --pretrain-steps of 32 × 128 tokens (300: the small
   budget of benchmarks/pretrain_learning.py).
2. The task (--task):
   brown-genre  examples/real_encoder.py's: which kind of prose a ~50-word Brown passage comes from (press /
                non-fiction / fiction), split by document, 2,000 training passages; pretraining on the training
                split's 352 documents.
   spam         SpamAssassin ham / spam (subject and body, whitespace collapsed, first 128 tokens), split by a hash
                of the text (60 % train, 20 % dev, 20 % test), 2,000 training emails; pretraining on every training
                email, each a document of its lines: the user who pretrains on their own unlabelled domain text.
3. `albert finetune` with its defaults (3 epochs, the default rate for the width and the run's length), from the
   pretrained weights and from random weights in the same shape (`random:config.json`), same tokenizer, once per
   seed.
4. Test accuracy and macro-F1 of both (mean ± sd over the seeds, and each run), the majority class and TF-IDF +
   logistic regression, to examples/results/pretrain_then_finetune.json (brown-genre) or
   pretrain_then_finetune_spam.json (_spam_500.json etc. for another --train-examples), and, once a task has
   results for two or more training sizes, pretrain_then_finetune_TASK_by_labels.png: accuracy by labelled examples.

    python examples/pretrain_then_finetune.py [--task brown-genre|spam] [--pretrain-steps 300] [--seeds 0 1 2]
        [--train-examples 2000] [--reuse-pretraining]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "examples"), str(ROOT / "benchmarks")]
import real_encoder  # noqa: E402
import realdata  # noqa: E402
from pretrain_learning import MODEL  # noqa: E402

from albert import spm  # noqa: E402
from albert.cliflags import COUNT  # noqa: E402
from albert.data import PrepareConfig, prepare  # noqa: E402
from albert.finetune import FinetuneConfig  # noqa: E402
from albert.finetune import train as finetune_train  # noqa: E402
from albert.pretrain import PretrainConfig  # noqa: E402
from albert.pretrain import train as pretrain_train  # noqa: E402

WORK = ROOT / ".cache" / "pretrain_then_finetune"
RESULTS = ROOT / "examples" / "results"
LENGTH = {"brown-genre": 64, "spam": 128}  # fine-tuning tokens per example (a 50-word passage is ~65 pieces)


def brown_genre(train_examples: int) -> tuple[dict, list[list[str]]]:
    """(train / dev / test rows of (text, label), pretraining documents as lists of sentences)."""
    documents: dict[str, list[dict]] = {}
    splits = real_encoder.split_by_document(documents=documents)
    splits["train"], splits["dev"] = splits["train"][:train_examples], splits["dev"][:600]
    return splits, [d["sentences"] for d in documents["train"]]


def spam(train_examples: int) -> tuple[dict, list[list[str]]]:
    """As brown_genre: each email its subject line and body (the other headers dropped), sorted by a hash of the text
    (the files are grouped by label); pretraining documents: the training emails, one line of text to a line."""
    emails = []
    for email in realdata.spam_emails():
        headers, _, body = email["text"].partition("\n\n")
        subject = next((h[8:].strip() for h in headers.splitlines() if h.lower().startswith("subject:")), "")
        lines = [" ".join(line.split()) for line in [subject, *body.splitlines()] if line.strip()]
        emails.append((lines, "spam" if email["group"].startswith("spam") else "ham"))
    emails.sort(key=lambda e: hashlib.md5("\n".join(e[0]).encode()).hexdigest())
    rows = [(" ".join(lines)[:3000], label) for lines, label in emails if lines]
    fifth = len(rows) // 5
    splits = {"test": rows[:fifth], "dev": rows[fifth : 2 * fifth][:600], "train": rows[2 * fifth :][:train_examples]}
    return splits, [lines for lines, _ in emails[2 * fifth :] if lines]


TASKS = {"brown-genre": brown_genre, "spam": spam}


def pretrain(work: Path, documents: list[list[str]], steps: int) -> Path:
    corpus = work / "corpus.txt"
    with open(corpus, "w", encoding="utf-8") as f:
        realdata.write_documents(f, documents)
    shutil.rmtree(work / "tokenizer", ignore_errors=True)
    spm.train([corpus], work / "tokenizer", vocab_size=8000, progress=False)
    shutil.rmtree(work / "data", ignore_errors=True)
    prepare(PrepareConfig(input=[str(corpus)], tokenizer=str(work / "tokenizer"), out=str(work / "data")), False)
    (work / "config.json").write_text(json.dumps({**MODEL, "vocab_size": 8000, "model_type": "albert"}, indent=2))
    out = work / "pretrain"
    result = pretrain_train(
        PretrainConfig(
            data=str(work / "data"),
            out=str(out),
            model=str(work / "config.json"),
            max_steps=steps,
            batch_size=32,
            max_seq_length=128,
            eval_fraction=0.05,
            eval_every=max(1, steps // 3),
            save_every=steps,
            overwrite=True,
        )
    )
    print(f"   pretrained: held-out MLM {result['eval_mlm_acc']:.3f}, SOP {result['eval_sop_acc']:.3f}")
    return out / "model"


def finetune(work: Path, init: str, name: str, seed: int, length: int) -> dict:
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    done = finetune_train(
        FinetuneConfig(
            train=str(work / "train.csv"),
            eval=str(work / "dev.csv"),
            init=init,
            tokenizer=str(work / "pretrain" / "model"),
            out=str(out),
            max_seq_length=length,
            seed=seed,
        )
    )
    metrics = real_encoder.score_on_test(out, work / "test.csv", length)
    metrics["learning_rate"] = done["learning_rate"]  # the default for the width and the run's length
    metrics["steps"] = done["steps"]
    metrics["minutes"] = (time.perf_counter() - t0) / 60
    print(f"   {name}: test accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}")
    return metrics


def the_one(rates: set[float]) -> float:
    """The rate every run used: both sides take `albert finetune`'s default for the same width and steps."""
    if len(rates) != 1:
        raise SystemExit(f"the runs used different rates ({sorted(rates)}): both sides should take the same default")
    return rates.pop()


def _pretrained_steps(work: Path) -> int | None:
    """The steps of the finished pretraining run in work/, or None."""
    config, model = work / "pretrain" / "run_config.json", work / "pretrain" / "model" / "model.safetensors"
    return json.loads(config.read_text())["max_steps"] if config.exists() and model.exists() else None


def summary(runs: list[dict]) -> dict:
    """Mean (and sample standard deviation) of each metric over the fine-tuning seeds."""
    out = {}
    for key in ("accuracy", "macro_f1", "mcc", "minutes"):
        values = np.array([r[key] for r in runs])
        out[key] = float(values.mean())
        out[f"{key}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def plot_by_label_count(task: str) -> Path | None:
    """Test accuracy (mean ± sd over seeds) against the labelled examples, pretrained vs random, from every results
    file of this task (one per --train-examples), with the majority class and TF-IDF; None if under two sizes."""
    from albert.plot import pyplot

    runs = [json.loads(f.read_text()) for f in RESULTS.glob("pretrain_then_finetune*.json")]
    runs = sorted((r for r in runs if r["args"].get("task", "brown-genre") == task), key=lambda r: r["split"]["train"])
    if len(runs) < 2:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    sizes = [r["split"]["train"] for r in runs]
    steps = runs[-1]["args"]["pretrain_steps"]
    for key, label in (("pretrained", f"pretrained ({steps} steps)"), ("random_init", "random initialisation")):
        means = np.array([r[key]["accuracy"] for r in runs])
        sds = np.array([r[key]["accuracy_sd"] for r in runs])
        ax.errorbar(sizes, means, yerr=sds, marker="o", capsize=3, label=f"{label}, mean ± sd over seeds")
    ax.plot(sizes, [r["tfidf_logreg"]["accuracy"] for r in runs], "k:", label="TF-IDF + logistic regression")
    ax.plot(sizes, [r["majority_class_accuracy"] for r in runs], "k--", label="majority class")
    ax.set(xscale="log", xlabel="labelled training examples", ylabel="test accuracy", title=f"{task}: fine-tuning")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    png = RESULTS / f"pretrain_then_finetune_{task}_by_labels.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="brown-genre")
    parser.add_argument("--pretrain-steps", type=COUNT, default=300)
    parser.add_argument("--train-examples", type=COUNT, default=2000, help="labelled training examples")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="fine-tuning seeds (one run each)")
    parser.add_argument(
        "--reuse-pretraining",
        action="store_true",
        help="keep the pretrained model of an earlier run of this task with the same --pretrain-steps (the corpus "
        "does not depend on --train-examples or --seeds)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    work = WORK / args.task
    work.mkdir(parents=True, exist_ok=True)
    splits, documents = TASKS[args.task](args.train_examples)
    for name, rows in splits.items():
        real_encoder.write(rows, work / f"{name}.csv")
    model = work / "pretrain" / "model"
    if args.reuse_pretraining and _pretrained_steps(work) == args.pretrain_steps:
        print(f"1. Reusing {model} ({args.pretrain_steps} steps on the {len(documents)} training documents)")
    else:
        print(f"1. Pretraining on the {len(documents)} training documents ({args.pretrain_steps} steps)")
        model = pretrain(work, documents, args.pretrain_steps)
    print("2. Fine-tuning with the defaults")
    runs = {"pretrained": [], "random_init": []}
    length = LENGTH[args.task]
    for seed in args.seeds:  # the same seed for both: same head init, data order and dropout
        runs["pretrained"].append(finetune(work, str(model), f"finetuned-pretrained-{seed}", seed, length))
        runs["random_init"].append(
            finetune(work, f"random:{work / 'config.json'}", f"finetuned-random-{seed}", seed, length)
        )
    pretrained, random_init = summary(runs["pretrained"]), summary(runs["random_init"])
    wins = sum(p["accuracy"] > r["accuracy"] for p, r in zip(runs["pretrained"], runs["random_init"], strict=True))
    labels = sorted({g for _, g in splits["train"]})
    majority = max(labels, key=lambda g: sum(1 for _, x in splits["test"] if x == g))
    result = {
        "args": vars(args),
        "split": {k: len(v) for k, v in splits.items()},
        "learning_rate": the_one({run["learning_rate"] for side in runs.values() for run in side}),
        "pretraining_documents": len(documents),
        "majority_class_accuracy": sum(1 for _, x in splits["test"] if x == majority) / len(splits["test"]),
        "pretrained": pretrained,
        "random_init": random_init,
        "pretrained_wins": f"{wins} of {len(args.seeds)} seeds",
        "runs": runs,
        "tfidf_logreg": real_encoder.tfidf_baseline(labels, work),
        "minutes": (time.perf_counter() - started) / 60,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "pretrain_then_finetune" + ("" if args.task == "brown-genre" else f"_{args.task}")
    name += "" if args.train_examples == parser.get_default("train_examples") else f"_{args.train_examples}"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\npretrained {pretrained['accuracy']:.4f} ± {pretrained['accuracy_sd']:.4f} vs random init "
        f"{random_init['accuracy']:.4f} ± {random_init['accuracy_sd']:.4f} (mean ± sd over seeds {args.seeds}; "
        f"pretrained ahead in {wins}) "
        f"(majority {result['majority_class_accuracy']:.4f}, TF-IDF {result['tfidf_logreg']['accuracy']:.4f}); "
        f"{result['minutes']:.1f} min"
    )
    png = plot_by_label_count(args.task)
    if png:
        print(f"accuracy by labelled examples → {png}")


if __name__ == "__main__":
    main()
