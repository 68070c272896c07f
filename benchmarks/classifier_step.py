"""One fine-tuning step of a sequence classifier: the pooled-only last layer against the full pass and transformers.

`AlbertForSequenceClassification` reads only the pooled [CLS] vector, so it runs its encoder with
``pooled_only=True``: the last layer computes the [CLS] row alone (docs/architecture.md). This measures what that
saves, side by side in one process on the same weights (written by transformers, loaded by both): one training step
(forward, cross-entropy, backward, AdamW) and one no-grad forward (prediction), for

  ours                 AlbertForSequenceClassification as it runs (pooled_only)
  ours, full pass      the same weights through the encoder's full pass, then the same pooler, dropout and classifier
  transformers         transformers.AlbertForSequenceClassification (sdpa)

on two shapes: the 4-layer H=256 model of benchmarks/finetune.py at 32 × 256 tokens, and albert-base-v2 at 8 × 256.
Timings alternate between the three so that a busy machine slows them alike; medians are reported, with the largest
logit difference from transformers.

    python benchmarks/classifier_step.py [--repeats 7]

Writes benchmarks/results/classifier_step.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import albert  # noqa: E402
from albert.cliflags import COUNT  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = {  # name: (config overrides of albert-base-v2's, batch, tokens)
    "4-layer H=256 (finetune benchmark)": (
        dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
        32,
        256,
    ),
    "albert-base-v2": ({}, 8, 256),
}


def full_pass_logits(model: albert.AlbertForSequenceClassification, batch: dict) -> torch.Tensor:
    """The head's forward with the encoder's full pass (what it computed before pooled_only)."""
    pooled = model.albert(batch["input_ids"], batch["attention_mask"], pooled_only=False).pooler_output
    return model.classifier(model.dropout(pooled))


def measure(overrides: dict, B: int, T: int, repeats: int) -> dict:
    import transformers

    config = transformers.AlbertConfig(**{**albert.AlbertConfig.from_name("albert-base-v2").to_dict(), **overrides})
    config.num_labels = 2
    torch.manual_seed(0)
    theirs = transformers.AlbertForSequenceClassification(config)
    with tempfile.TemporaryDirectory() as d:
        theirs.save_pretrained(d)
        ours = albert.AlbertForSequenceClassification.from_pretrained(d)
    g = torch.Generator().manual_seed(0)
    batch = {
        "input_ids": torch.randint(5, config.vocab_size, (B, T), generator=g),
        "attention_mask": torch.ones(B, T, dtype=torch.long),
    }
    labels = torch.randint(0, 2, (B,), generator=g)
    contenders = {
        "ours": (ours, lambda: ours(**batch).logits),
        "ours, full pass": (ours, lambda: full_pass_logits(ours, batch)),
        "transformers": (theirs, lambda: theirs(**batch).logits),
    }
    optimizers = {m: torch.optim.AdamW(m.parameters(), lr=1e-5) for m in (ours, theirs)}

    def train_step(model, logits_of):
        model.train()
        F.cross_entropy(logits_of(), labels).backward()
        optimizers[model].step()
        optimizers[model].zero_grad()

    def predict(model, logits_of):
        model.eval()
        with torch.inference_mode():
            logits_of()

    entry = {"batch": B, "tokens": T, "layers": config.num_hidden_layers, "hidden": config.hidden_size}
    with torch.inference_mode():  # before any step: the same weights in all three
        ours.eval()
        theirs.eval()
        reference = theirs(**batch).logits
        entry["max_abs_logit_diff"] = {
            k: float((fn() - reference).abs().max()) for k, (_, fn) in contenders.items() if k != "transformers"
        }
    for what, run in (("train_step_s", train_step), ("predict_s", predict)):
        times: dict[str, list[float]] = {k: [] for k in contenders}
        for model, fn in contenders.values():  # one warm-up each
            run(model, fn)
        for _ in range(repeats):
            for k, (model, fn) in contenders.items():
                start = time.perf_counter()
                run(model, fn)
                times[k].append(time.perf_counter() - start)
        entry[what] = {k: statistics.median(v) for k, v in times.items()}
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=COUNT, default=7)
    parser.add_argument("--out", default=str(RESULTS / "classifier_step.json"))
    args = parser.parse_args()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # before the measurements, not after them
    torch.set_num_threads(os.cpu_count() or 1)
    results = {"threads": torch.get_num_threads(), "repeats": args.repeats, "shapes": {}}
    for name, (overrides, B, T) in SHAPES.items():
        results["shapes"][name] = measure(overrides, B, T, args.repeats)
        print(name, json.dumps(results["shapes"][name]), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(
        "\n| model, batch × tokens | step: ours | full pass | transformers | step: full / ours, transformers / ours "
        "| predict: full / ours, transformers / ours |"
    )
    print("|---|---|---|---|---|---|")
    for name, e in results["shapes"].items():
        s, p = e["train_step_s"], e["predict_s"]
        full, hf = s["ours, full pass"] / s["ours"], s["transformers"] / s["ours"]
        print(
            f"| {name}, {e['batch']} × {e['tokens']} | {s['ours']:.3f} s | {s['ours, full pass']:.3f} s | "
            f"{s['transformers']:.3f} s | {full:.2f}× / {hf:.2f}× "
            f"| {p['ours, full pass'] / p['ours']:.2f}× / {p['transformers'] / p['ours']:.2f}× |"
        )


if __name__ == "__main__":
    main()
