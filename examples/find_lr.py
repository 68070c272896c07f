"""Does `--learning-rate auto` pick a good rate? The range test against a small sweep, on the demo's data.

The demo's pretrained ALBERT (4 layers, H=256; `make demo` builds it, this script builds it too if it is missing)
fine-tuned on the first 4,000 reviews of the demo's training split (--train-examples) as the demo fine-tunes (one
epoch, batch 32, 96 tokens, evaluation every 200 steps, the best dev checkpoint kept) at each rate of a sweep, then
with `--learning-rate auto` (the range test's suggestion) and with no rate at all (the default for the model's
size). Dev accuracy picks the sweep's best; test accuracy is reported for all.

    python examples/find_lr.py [--rates 3e-4 1e-3 3e-3] [--random] [--reuse-sweep]
        # writes examples/results/find_lr.json and find_lr_pretrained-auto.png (the range test's curve)
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
sys.path[:0] = [str(ROOT), str(ROOT / "examples"), str(ROOT / "scripts")]
from demo import WORK, build_pretrained, split_reviews, write_split  # noqa: E402

from albert.config import AlbertConfig  # noqa: E402
from albert.estimators import TextClassifier  # noqa: E402
from albert.finetune import FinetuneConfig, train  # noqa: E402
from albert.lrfind import rate_for_size  # noqa: E402
from albert.tasks import classification as task  # noqa: E402

RESULTS = ROOT / "examples" / "results"


def finetune(init: str, name: str, rate) -> dict:
    """One demo-style fine-tuning run; its kept model's dev and test accuracy and the rate it trained at."""
    out = WORK / "find_lr" / name
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    result = train(
        FinetuneConfig(
            train=str(WORK / "find_lr" / "train.csv"),
            eval=str(WORK / "dev.csv"),
            init=init,
            tokenizer=str(WORK / "tokenizer"),
            out=str(out),
            epochs=1,
            batch_size=32,
            learning_rate=rate,
            max_seq_length=96,
            eval_every=200,
            seed=0,
            progress=False,
        )
    )
    clf = TextClassifier.from_pretrained(out, max_length=96)
    test = task.read_examples(WORK / "test.csv")
    scores = np.log(clf.predict_proba([e.text for e in test]))
    metrics = task.metrics("classification", task.targets(test, clf.labels, "classification"), scores)
    run = {
        "learning_rate": result["learning_rate"],
        "dev_accuracy": result["accuracy"],
        "test_accuracy": metrics["accuracy"],
        "minutes": (time.perf_counter() - t0) / 60,
    }
    print(
        f"   {name:10s} lr {run['learning_rate']:.2g}: dev {run['dev_accuracy']:.4f}, test {run['test_accuracy']:.4f}"
    )
    if (out / "lr_find.png").exists():
        RESULTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "lr_find.png", RESULTS / f"find_lr_{name}.png")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3])
    parser.add_argument("--random", action="store_true", help="also from random weights in the same shape")
    parser.add_argument("--reuse-sweep", action="store_true", help="take the sweep's runs from the last results file")
    parser.add_argument("--train-examples", type=int, default=4000, help="the first N of the demo's training split")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    splits = split_reviews()
    write_split(splits)
    pretrained, _ = build_pretrained(splits, 1000)
    (WORK / "find_lr").mkdir(parents=True, exist_ok=True)
    with open(WORK / "find_lr" / "train.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *splits["train"][: args.train_examples]])
    inits = {"pretrained": str(pretrained)}
    if args.random:
        inits["random"] = f"random:{WORK / 'model.json'}"
    sizes = {**{k: len(v) for k, v in splits.items()}, "train": min(args.train_examples, len(splits["train"]))}
    results: dict = {"split": sizes, "models": {}}
    last = json.loads((RESULTS / "find_lr.json").read_text()) if args.reuse_sweep else {"models": {}}
    for kind, init in inits.items():
        print(f"{kind} weights")
        kept = last["models"].get(kind, {}).get("sweep", {})
        runs = {
            f"{rate:g}": kept[f"{rate:g}"] if f"{rate:g}" in kept else finetune(init, f"{kind}-{rate:g}", rate)
            for rate in args.rates
        }
        best = max(runs, key=lambda r: runs[r]["dev_accuracy"])
        auto = finetune(init, f"{kind}-auto", "auto")
        steps = sizes["train"] // 32  # one epoch of batch 32
        width_rate = f"{rate_for_size(AlbertConfig.from_json_file(WORK / 'model.json'), steps):g}"
        # no --learning-rate trains exactly as the sweep's run at the default rate, when the sweep has it
        default = runs[width_rate] if width_rate in runs else finetune(init, f"{kind}-default", None)
        results["models"][kind] = {
            "sweep": runs,
            "best_of_sweep": best,
            "auto": auto,
            "default": default,
            "auto_minus_best_test_points": 100 * (auto["test_accuracy"] - runs[best]["test_accuracy"]),
            "auto_minus_best_dev_points": 100 * (auto["dev_accuracy"] - runs[best]["dev_accuracy"]),
        }
        print(
            f"   auto ({auto['learning_rate']:.2g}) vs the sweep's best by dev ({best}): "
            f"{results['models'][kind]['auto_minus_best_test_points']:+.2f} test points"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "find_lr.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
