"""Forward speed of our AlbertModel against transformers' AlbertModel (sdpa), side by side in one process.

Same random albert-base-v2 weights in both (ours loaded from the directory transformers wrote), fp32, torch threads
= cores. For each (batch, length): sequences/s of each, the ratio, the max abs difference of the outputs, and the
achieved GFLOP/s as a fraction of a plain torch.mm GEMM measured in the same run. Timings alternate between the two
models so that a busy machine slows both alike; medians are reported.

    python benchmarks/forward.py [--shapes 1x128 32x128 8x512] [--repeats 5]

Writes benchmarks/results/forward.json and prints a Markdown table (quoted in the README).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import albert  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def gemm_gflops(repeats: int = 10) -> float:
    """fp32 GEMM rate on an ALBERT-shaped product (4096 tokens × 768 → 3072)."""
    a, b = torch.randn(4096, 768), torch.randn(768, 3072)
    for _ in range(3):
        torch.mm(a, b)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * 4096 * 768 * 3072 / statistics.median(times) / 1e9


def seconds(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["1x128", "32x128", "8x512"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS / "forward.json"))
    args = parser.parse_args()

    import transformers

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    cfg = albert.AlbertConfig.from_name("albert-base-v2")
    hf = transformers.AlbertModel(transformers.AlbertConfig(**cfg.to_dict()), add_pooling_layer=True).eval()
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        ours = albert.AlbertModel.from_pretrained(tmp).eval()
    print(f"transformers {transformers.__version__} attn={hf.config._attn_implementation}, torch {torch.__version__}")

    peak = gemm_gflops()
    rows = []
    for shape in args.shapes:
        batch, length = map(int, shape.split("x"))
        ids = torch.randint(5, cfg.vocab_size, (batch, length))
        mask = torch.ones_like(ids)
        with torch.inference_mode():
            a = ours(ids, mask).last_hidden_state
            b = hf(input_ids=ids, attention_mask=mask).last_hidden_state
            diff = (a - b).abs().max().item()
            ours_t, hf_t = [], []
            for _ in range(args.repeats):  # alternate so that machine noise hits both
                ours_t.append(seconds(ours, ids, mask))
                hf_t.append(seconds(hf, input_ids=ids, attention_mask=mask))
        t_ours, t_hf = statistics.median(ours_t), statistics.median(hf_t)
        gflops = cfg.num_flops_per_token(length) * batch * length / t_ours / 1e9
        row = {
            "batch": batch,
            "length": length,
            "ours_seq_per_s": batch / t_ours,
            "transformers_seq_per_s": batch / t_hf,
            "speedup": t_hf / t_ours,
            "max_abs_diff": diff,
            "ours_gflops": gflops,
            "fraction_of_gemm": gflops / peak,
        }
        rows.append(row)
        print(
            f"{batch}x{length}: ours {row['ours_seq_per_s']:.2f} seq/s, "
            f"transformers {row['transformers_seq_per_s']:.2f} seq/s, {row['speedup']:.2f}x, diff {diff:.1e}, "
            f"{gflops:.0f} GFLOP/s = {gflops / peak:.0%} of GEMM"
        )

    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} threads",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "gemm_gflops": peak,
        "repeats": args.repeats,  # each figure is the median of this many alternating runs
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nGEMM peak in this run: {peak:.0f} GFLOP/s\n")
    print("| batch × length | albert-lite seq/s | transformers seq/s | speed-up | max abs diff | % of GEMM peak |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['batch']} × {r['length']} | {r['ours_seq_per_s']:.2f} | {r['transformers_seq_per_s']:.2f} | "
            f"{r['speedup']:.2f}× | {r['max_abs_diff']:.1e} | {r['fraction_of_gemm']:.0%} |"
        )


if __name__ == "__main__":
    main()
