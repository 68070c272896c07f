"""Pretrain a small ALBERT on real text for a fixed CPU budget and report what it learned.

Corpus: People's Daily, January 1998 (Chinese; paragraphs in order, ten consecutive paragraphs to a document,
sentences split at 。！？) and the Brown corpus (English; 500 documents) — see shared/DATA.md. Tokenizer: the
21,128-entry bert-base-chinese WordPiece vocabulary that Chinese ALBERT uses (it also covers English), with jieba
word boundaries for whole-word masking. Model: the albert-tiny-zh shape (4 layers, H=312, E=128).

Every `--eval-every` steps the held-out documents (1 %) give MLM and SOP accuracy. Baselines reported beside them:
SOP by chance = 50 %; MLM "unigram" = always predicting the most frequent token of the training data, scored on the
same held-out masked positions.

    python examples/pretrain_small.py --minutes 25      # writes examples/results/pretrain_small.{json,png}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
import realdata  # noqa: E402

from albert.data import PrepareConfig, prepare  # noqa: E402
from albert.pretrain import PretrainConfig, mlm_bias, pretrain_data, train  # noqa: E402
from albert.tokenizer import AlbertTokenizer  # noqa: E402

RESULTS = ROOT / "examples" / "results"


def write_corpus(path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        realdata.write_documents(f, realdata.peoples_daily_documents())
        realdata.write_documents(f, (doc["sentences"] for doc in realdata.brown_documents()))


def unigram_baseline(cfg: PretrainConfig) -> float:
    """Accuracy of always predicting the training data's most frequent token, on the held-out masked positions."""
    top = int(mlm_bias(pretrain_data(cfg, "train")).argmax())
    held = pretrain_data(cfg, "eval")
    n = min(len(held.pairs(0)), cfg.eval_batches * cfg.batch_size)
    labels = held.batch(0, range(n), shuffle=False)["labels"]
    real = labels[labels != -100]
    return float((real == top).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=25.0, help="CPU budget; sets max_steps from a speed probe")
    parser.add_argument("--work", default=str(ROOT / ".cache" / "pretrain_small"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "data"
    if not (data_dir / "manifest.json").exists():
        write_corpus(work / "corpus.txt")
        AlbertTokenizer.from_pretrained(realdata.chinese_vocab()).save_pretrained(work / "tokenizer")
        prepare(PrepareConfig(input=[str(work / "corpus.txt")], tokenizer=str(work / "tokenizer"), out=str(data_dir)))
    base = dict(
        data=str(data_dir),
        model="albert-tiny-zh",
        batch_size=32,
        max_seq_length=128,
        max_predictions=20,
        learning_rate=0.005,
        optimizer="lamb",
        mlm_bias_init="zero",  # the recipe docs/pretraining.md's table was measured with
        eval_fraction=0.01,
        eval_batches=25,
        log_every=10,
    )
    probe = PretrainConfig(
        **base,
        out=str(work / "probe"),
        max_steps=12,
        eval_every=10**9,
        save_every=10**9,
        warmup_steps=0,
        progress=False,
    )
    import shutil

    shutil.rmtree(work / "probe", ignore_errors=True)
    start = time.perf_counter()
    train(probe)
    seconds_per_step = (time.perf_counter() - start) / probe.max_steps
    steps = int(args.minutes * 60 / seconds_per_step * 0.85)  # leave room for evaluations
    print(f"{seconds_per_step:.2f} s/step → {steps} steps in {args.minutes:.0f} minutes")
    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    cfg = PretrainConfig(
        **base,
        out=str(run),
        max_steps=steps,
        warmup_steps=max(1, steps // 20),
        eval_every=max(1, steps // 8),
        save_every=max(1, steps // 4),
    )
    started = time.perf_counter()
    final = train(cfg)
    minutes = (time.perf_counter() - started) / 60
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    evals = [
        {k: r[k] for k in ("step", "eval_mlm_acc", "eval_sop_acc", "eval_mlm_loss", "eval_sop_loss")}
        for r in rows
        if "eval_mlm_acc" in r
    ]
    baseline = unigram_baseline(cfg)
    manifest = json.loads((data_dir / "manifest.json").read_text())
    result = {
        "minutes": minutes,
        "steps": steps,
        "tokens": sum(s["tokens"] for s in manifest["shards"]),
        "documents": sum(s["documents"] for s in manifest["shards"]),
        "unigram_mlm_acc": baseline,
        "sop_chance": 0.5,
        "evals": evals,
        "final": final,
        # paths relative to the repository: a results file never records this machine's directories
        "config": {
            k: v.removeprefix(f"{ROOT}/") if isinstance(v, str) else v for k, v in {**base, "max_steps": steps}.items()
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pretrain_small.json").write_text(json.dumps(result, indent=2) + "\n")
    shutil.copyfile(run / "curves.png", RESULTS / "pretrain_small.png")
    print(f"\n{result['documents']:,} documents, {result['tokens']:,} tokens; {steps} steps in {minutes:.1f} min\n")
    print("| step | held-out MLM acc | held-out SOP acc |\n|---|---|---|")
    for e in evals:
        print(f"| {e['step']} | {e['eval_mlm_acc']:.3f} | {e['eval_sop_acc']:.3f} |")
    print(f"| baselines | {baseline:.3f} (unigram) | 0.500 (chance) |")


if __name__ == "__main__":
    main()
