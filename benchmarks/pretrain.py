"""Pretraining throughput and peak memory: our step against transformers' AlbertForPreTraining + AdamW.

Same albert-base-v2 shape and random weights, batch 8 × 128 with 20 masked positions per sequence (the official
max_predictions), fp32, one process per contender (so peak RSS is the contender's own), contenders alternated twice:
  transformers   AlbertForPreTraining, MLM logits over all positions (labels -100 elsewhere), AdamW
  ours-adamw     our AlbertForPreTraining, MLM logits at the masked positions only, AdamW
  ours-lamb      the same with LAMB, the official optimizer
The losses at step 0 must be equal (same weights, same batch). Then DDP scaling on this CPU: tokens/s of
`albert pretrain` with 1 process (2 threads) and 2 gloo processes (1 thread each) on the same global batch.

    python benchmarks/pretrain.py        # writes benchmarks/results/pretrain.json, prints a Markdown table
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH, LENGTH, PREDICTIONS, STEPS, WARMUP = 8, 128, 20, 5, 2


def make_batch(vocab: int):
    import torch

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (BATCH, LENGTH), generator=g)
    positions = torch.stack(
        [torch.randperm(LENGTH - 2, generator=g)[:PREDICTIONS].sort().values + 1 for _ in range(BATCH)]
    )
    labels = torch.gather(ids, 1, positions)
    full_labels = torch.full_like(ids, -100).scatter(1, positions, labels)
    return ids, positions, labels, full_labels, torch.randint(0, 2, (BATCH,), generator=g)


def worker(kind: str) -> None:
    import torch

    sys.path.insert(0, str(ROOT))
    import albert
    from albert.optim import build_optimizer

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    cfg = albert.AlbertConfig.from_name("albert-base-v2")
    ids, positions, labels, full_labels, sop = make_batch(cfg.vocab_size)
    if kind == "transformers":
        import transformers

        model = transformers.AlbertForPreTraining(transformers.AlbertConfig(**cfg.to_dict()))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, eps=1e-6)

        def loss_fn():
            return model(input_ids=ids, labels=full_labels, sentence_order_label=sop).loss
    else:
        with tempfile.TemporaryDirectory() as tmp:  # the same weights transformers' init gives
            import transformers

            transformers.AlbertForPreTraining(transformers.AlbertConfig(**cfg.to_dict())).save_pretrained(tmp)
            model = albert.AlbertForPreTraining.from_pretrained(tmp)
        optimizer = build_optimizer(model, "lamb" if kind == "ours-lamb" else "adamw", 1e-4)

        def loss_fn():
            return model(ids, labels=labels, sentence_order_label=sop, masked_positions=positions).loss

    model.eval()  # the loss before any step, without dropout (transformers puts dropout before its SOP head)
    with torch.no_grad():
        first_loss = loss_fn().item()
    model.train()
    times = []
    for step in range(WARMUP + STEPS):
        start = time.perf_counter()
        loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= WARMUP:
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB → GiB
    print(
        json.dumps(
            {
                "kind": kind,
                "step_loss0": first_loss,
                "s_per_step": seconds,
                "tokens_per_s": BATCH * LENGTH / seconds,
                "peak_rss_gib": peak,
            }
        )
    )


def run_worker(kind: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ddp_scaling() -> dict:
    """tokens/s of `albert pretrain` on Brown with 1 and 2 processes, the same global batch of 16 × 128."""
    sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
    import realdata

    from albert import spm
    from albert.data import PrepareConfig, prepare

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        text = "\n\n".join("\n".join(d["sentences"]) for d in realdata.brown_documents()[:200])
        (tmp / "corpus.txt").write_text(text + "\n", encoding="utf-8")
        spm.train([tmp / "corpus.txt"], tmp / "tok", vocab_size=8000, progress=False)
        prepare(
            PrepareConfig(input=[str(tmp / "corpus.txt")], tokenizer=str(tmp / "tok"), out=str(tmp / "data")),
            progress=False,
        )
        common = [
            "--data",
            str(tmp / "data"),
            "--model",
            "albert-tiny",
            "--max-steps",
            "12",
            "--max-seq-length",
            "128",
            "--log-every",
            "4",
            "--eval-fraction",
            "0",
            "--save-every",
            "1000",
            "--no-progress",
        ]
        for procs in (1, 2):
            out = tmp / f"run{procs}"
            args = ["-m", "albert", "pretrain", *common, "--out", str(out), "--batch-size", str(16 // procs)]
            env = {**os.environ, "OMP_NUM_THREADS": str(2 // procs)}
            launcher = (
                [sys.executable]
                if procs == 1
                else [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533"]
            )
            subprocess.run(launcher + args, check=True, capture_output=True, env=env)
            rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
            results[procs] = statistics.median(r["tokens_per_s"] for r in rows[1:] if "tokens_per_s" in r)
    return {
        "tokens_per_s_1_process": results[1],
        "tokens_per_s_2_processes": results[2],
        "scaling": results[2] / results[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    kinds = ["transformers", "ours-adamw", "ours-lamb"]
    runs = {k: [] for k in kinds}
    for _ in range(2):
        for kind in kinds:
            runs[kind].append(run_worker(kind))
            print(runs[kind][-1])
    best = {k: min(r, key=lambda x: x["s_per_step"]) for k, r in runs.items()}
    scaling = ddp_scaling()
    result = {
        "batch": BATCH,
        "length": LENGTH,
        "max_predictions": PREDICTIONS,
        "runs": runs,
        "best": best,
        "ddp_cpu": scaling,
    }
    (ROOT / "benchmarks" / "results" / "pretrain.json").write_text(json.dumps(result, indent=2) + "\n")
    hf = best["transformers"]
    print("\n| contender | s/step | tokens/s | vs transformers | peak RSS GiB | loss at step 0 |")
    print("|---|---|---|---|---|---|")
    for kind in kinds:
        r = best[kind]
        print(
            f"| {kind} | {r['s_per_step']:.2f} | {r['tokens_per_s']:.0f} | {hf['s_per_step'] / r['s_per_step']:.2f}× | "
            f"{r['peak_rss_gib']:.2f} | {r['step_loss0']:.4f} |"
        )
    print(
        f"\nDDP on this CPU (albert-tiny, global batch 16 × 128): 1 process {scaling['tokens_per_s_1_process']:.0f} "
        f"tokens/s, 2 processes {scaling['tokens_per_s_2_processes']:.0f} tokens/s ({scaling['scaling']:.2f}×)"
    )


if __name__ == "__main__":
    main()
