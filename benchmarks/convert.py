"""Converting an albert-base-sized TensorFlow checkpoint: time, memory, and agreement with TensorFlow's outputs.

The checkpoint is written by TensorFlow itself in a throwaway venv (TensorFlow is not our dependency):

    /tmp/tfvenv/bin/python scripts/make_tf_fixtures.py --base /tmp/albert_base_tf
    python benchmarks/convert.py /tmp/albert_base_tf     # writes benchmarks/results/convert.json

It has albert-base-v2's shapes (30,000 × 128 embeddings, H = 768, 12 layers sharing one group), its MLM and SOP
heads, and LAMB/Adam slots for every weight, as a pretraining checkpoint from the official code has (~140 MB). We
time `albert convert` end to end (read with CRC checks, map, build the model, write model.safetensors), report peak
RSS, then load the output with transformers' AlbertForPreTraining and compare its logits with the ones TensorFlow
computed for the same inputs when it wrote the checkpoint (reference.npz).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="directory written by make_tf_fixtures.py --base")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "convert.json"))
    args = parser.parse_args()

    import torch
    import transformers

    from albert import importers
    from albert.tfcheckpoint import TFCheckpoint

    source = Path(args.checkpoint)
    ckpt = TFCheckpoint(source)
    size = sum(p.stat().st_size for p in source.glob("model.ckpt.*"))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = importers.convert(source, tmp)
        seconds = time.perf_counter() - start
        rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        model = transformers.AlbertForPreTraining.from_pretrained(tmp).eval()
        ref = np.load(source / "reference.npz")
        inputs = {  # what make_tf_fixtures.py fed TensorFlow
            "input_ids": torch.tensor([[2, 17, 9, 33, 41, 3, 25, 8, 3], [2, 5, 60, 12, 3, 44, 3, 0, 0]]),
            "attention_mask": torch.tensor([[1] * 9, [1] * 7 + [0] * 2]),
            "token_type_ids": torch.tensor([[0] * 6 + [1] * 3, [0] * 5 + [1] * 2 + [0] * 2]),
        }
        real = inputs["attention_mask"].bool().numpy()
        with torch.no_grad():
            out = model(**inputs)
        mlm_diff = float(np.abs(out.prediction_logits.numpy() - ref["mlm_logits"])[real].max())
        mlm_scale = float(np.abs(ref["mlm_logits"])[real].max())
        sop_diff = float(np.abs(out.sop_logits.numpy() - ref["sop_logits"]).max())
    result = {
        "checkpoint_mb": round(size / 2**20, 1),
        "variables": len(ckpt),
        "converted": len(report.converted),
        "optimizer_slots_skipped": len(report.optimizer),
        "unknown": len(report.unknown),
        "seconds": round(seconds, 2),
        "mb_per_second": round(size / 2**20 / seconds, 1),
        "peak_rss_gib": round(rss_gib, 2),
        "transformers_vs_tensorflow_mlm_max_abs_diff": mlm_diff,
        "tensorflow_mlm_logits_max_abs": mlm_scale,
        "transformers_vs_tensorflow_sop_max_abs_diff": sop_diff,
        "transformers": transformers.__version__,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
