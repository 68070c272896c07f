"""Parity at a glance: preset parameter counts and the same logits as transformers (`python examples/parity.py`).

1. Build every released ALBERT shape and print its parameter count next to the paper's Table 1.
2. Build albert-base-v2 with a pretraining head, save it in transformers' layout.
3. Load that directory with transformers and show that both libraries give the same logits, and how fast each is.

Random weights: no pretrained weights can be downloaded here.
"""

from __future__ import annotations

import tempfile
import time

import torch

import albert

PAPER = {"albert-base-v2": "12M", "albert-large-v2": "18M", "albert-xlarge-v2": "60M", "albert-xxlarge-v2": "235M"}


def main() -> None:
    print("1. Parameter counts (encoder + pooler, counted on the meta device)\n")
    print(f"   {'model':<18} {'albert-lite':>12} {'paper':>6}")
    for name, paper in PAPER.items():
        with torch.device("meta"):
            count = albert.AlbertModel(albert.AlbertConfig.from_name(name)).num_parameters()
        print(f"   {name:<18} {count:>12,} {paper:>6}")
    print("   (the paper rounds; its 235M for xxlarge does not match the released graph, which has 222.6M)\n")

    torch.manual_seed(0)
    cfg = albert.AlbertConfig.from_name("albert-base-v2")
    model = albert.AlbertForPreTraining(cfg).eval()
    ids = torch.randint(5, cfg.vocab_size, (4, 128))
    mask = torch.ones_like(ids)
    mask[1:, 100:] = 0
    with tempfile.TemporaryDirectory() as out:
        model.save_pretrained(out)
        print(
            "2. Saved albert-base-v2 (AlbertForPreTraining) to a transformers-layout directory: config.json + "
            "model.safetensors\n"
        )
        try:
            import transformers
        except ImportError:
            print("   transformers is not installed (pip install 'albert-lite[hf]'): skipping the comparison")
            return
        theirs = transformers.AlbertForPreTraining.from_pretrained(out).eval()
    with torch.inference_mode():
        t0 = time.perf_counter()
        ours_out = model(ids, attention_mask=mask)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        their_out = theirs(input_ids=ids, attention_mask=mask)
        t_theirs = time.perf_counter() - t0
    mlm = (ours_out.prediction_logits - their_out.prediction_logits).abs().max().item()
    sop = (ours_out.sop_logits - their_out.sop_logits).abs().max().item()
    print(f"3. transformers {transformers.__version__} loaded it. Same input (4 × 128, with padding):")
    print(f"   max |MLM logits difference| = {mlm:.2e}, max |SOP logits difference| = {sop:.2e}")
    print(
        f"   one forward: albert-lite {t_ours * 1000:.0f} ms, transformers {t_theirs * 1000:.0f} ms "
        f"(a single timing; benchmarks/forward.py measures properly)"
    )
    assert mlm < 1e-4 and sop < 1e-4, "the two libraries disagree"


if __name__ == "__main__":
    main()
