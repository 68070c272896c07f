"""Pretraining data at scale: memory and time of an epoch's SOP pairs and of a batch, from 10 M to 1 B tokens.

Synthetic shards in `albert prepare`'s exact format (token ids, word-start flags, sentence and document offsets;
sentences of 5-40 tokens, documents of 10-60 sentences) stand in for a corpus of each size: the question here is how
PretrainData scales, not what it learns (the learning tests use real text). Each size runs in its own process so its
peak RSS is its own: RSS after building epoch 0's pairs (the shards are memory-mapped and only their offsets are
read), the pairs' own bytes per token, and the mean time of a 32 × 128 batch at random positions.

    python benchmarks/pretrain_data.py [--sizes 10M 100M 1B] [--work /tmp/albert_pretrain_data]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARD_TOKENS = 50_000_000


def _count(text: str) -> int:
    return int(float(text[:-1]) * {"K": 1e3, "M": 1e6, "B": 1e9}[text[-1]]) if text[-1] in "KMB" else int(text)


def make_corpus(directory: Path, tokens: int, tokenizer: Path, seed: int = 0) -> None:
    """Shards of random ids with realistic sentence and document lengths, and a manifest like prepare writes."""
    if (directory / "manifest.json").is_file():
        return
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    shutil.copytree(tokenizer, directory / "tokenizer")
    from albert.tokenizer import AlbertTokenizer

    vocab = AlbertTokenizer.from_pretrained(tokenizer).vocab_size
    rng = np.random.default_rng(seed)
    shards, left, k = [], tokens, 0
    while left > 0:
        n = min(left, SHARD_TOKENS)
        name = f"shard-{k:05d}"
        sentence_lengths = rng.integers(5, 41, size=n // 5 + 10)
        bounds = np.concatenate([[0], np.cumsum(sentence_lengths)])
        bounds = bounds[bounds <= n]
        bounds[-1] = n
        doc_sizes = rng.integers(10, 61, size=len(bounds) // 10 + 10)
        doc_bounds = np.concatenate([[0], np.cumsum(doc_sizes)])
        doc_bounds = doc_bounds[doc_bounds <= len(bounds) - 1]
        doc_bounds[-1] = len(bounds) - 1
        np.save(directory / f"{name}.tokens.npy", rng.integers(5, vocab, size=n, dtype=np.uint16))
        np.save(directory / f"{name}.starts.npy", rng.random(n) < 0.7)
        np.save(directory / f"{name}.segments.npy", bounds.astype(np.int64))
        np.save(directory / f"{name}.documents.npy", doc_bounds.astype(np.int64))
        shards.append({"name": name, "tokens": n, "segments": len(bounds) - 1, "documents": len(doc_bounds) - 1})
        left, k = left - n, k + 1
    manifest = {"version": 1, "vocab_size": vocab, "shards": shards, "synthetic": True}
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _peak_rss_mb() -> float:
    """This address space's high-water mark (VmHWM; ru_maxrss would carry the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(directory: Path) -> dict:
    """In a fresh process: build epoch 0, then time batches."""
    from albert.data import PretrainData

    rss0 = _peak_rss_mb()
    t0 = time.perf_counter()
    data = PretrainData(
        directory, max_seq_length=128, max_predictions=20, masked_lm_prob=0.15, short_seq_prob=0.1, seed=1
    )
    pairs = data.pairs(0)
    data.order(0)
    build = time.perf_counter() - t0
    rss1 = _peak_rss_mb()
    rng = np.random.default_rng(0)
    times = []
    for _ in range(30):
        start = int(rng.integers(0, len(pairs) - 32))
        t = time.perf_counter()
        data.batch(0, range(start, start + 32))
        times.append(time.perf_counter() - t)
    tokens = sum(s["tokens"] for s in data.manifest["shards"])
    return {
        "tokens": tokens,
        "pairs": len(pairs),
        "epoch_build_s": round(build, 2),
        "peak_rss_mb_after_build": round(rss1, 1),
        "rss_growth_mb": round(rss1 - rss0, 1),
        "pair_bytes_per_token": round(pairs.nbytes / tokens, 3),
        "batch_ms": round(1000 * float(np.median(times)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["10M", "100M", "1B"])
    parser.add_argument("--work", default="/tmp/albert_pretrain_data")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pretrain_data.json"))
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: measure one directory in this process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure))))
        return
    tokenizer = Path(args.work) / "tokenizer"
    if not tokenizer.is_dir():  # bert-base-chinese's 21,128 WordPiece entries (scripts/realdata.py)
        sys.path.insert(0, str(ROOT / "scripts"))
        import realdata

        from albert.tokenizer import AlbertTokenizer

        AlbertTokenizer.from_pretrained(realdata.chinese_vocab()).save_pretrained(tokenizer)
    rows = []
    for size in args.sizes:
        directory = Path(args.work) / size
        t = time.perf_counter()
        make_corpus(directory, _count(size), tokenizer)
        made = time.perf_counter() - t
        result = subprocess.run(
            [sys.executable, __file__, "--measure", str(directory)], capture_output=True, text=True, check=True
        )
        row = {"size": size, **json.loads(result.stdout.strip().splitlines()[-1]), "corpus_made_s": round(made, 1)}
        print(row, flush=True)
        rows.append(row)
    Path(args.out).write_text(json.dumps({"max_seq_length": 128, "batch": 32, "rows": rows}, indent=2) + "\n")
    print("\n| tokens | pairs | epoch build s | peak RSS MB | pair bytes/token | batch ms |\n|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']} | {r['pairs']:,} | {r['epoch_build_s']} | {r['peak_rss_mb_after_build']} | "
            f"{r['pair_bytes_per_token']} | {r['batch_ms']} |"
        )


if __name__ == "__main__":
    main()
