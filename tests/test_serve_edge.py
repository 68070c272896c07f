"""`albert serve` at its HTTP edge, as a real uvicorn process: every client gets the 413 of an oversized body (curl,
requests, urllib, httpx), slow bodies get 408, too many requests at once and a full queue get 503 with Retry-After,
and GET /metrics is Prometheus text that prometheus-client's own parser reads."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from servers import Server

pytest.importorskip("fastapi")
prometheus_parser = pytest.importorskip("prometheus_client.parser")

LIMIT = 100_000


@pytest.fixture(scope="module")
def server(models):
    srv = Server(
        models["clf"],
        "--max-body-bytes",
        str(LIMIT),
        "--body-timeout",
        "1.5",
        "--max-connections",
        "3",
        "--max-queue",
        "4",
    )
    yield srv
    srv.stop()


def _big_body(megabytes: float) -> bytes:
    return json.dumps({"texts": ["spam " * 200] * int(megabytes * 1000)}).encode()


def _urllib(url: str, body: bytes):
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read()), reply.headers
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), err.headers  # case-insensitive get


def _requests(url: str, body: bytes):
    import requests

    reply = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
    return reply.status_code, reply.json(), reply.headers


def _httpx(url: str, body: bytes):
    import httpx

    reply = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=60)
    return reply.status_code, reply.json(), reply.headers


def _curl(url: str, body: bytes):
    done = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
            url,
        ],
        input=body,
        capture_output=True,
        timeout=60,
    )
    text, _, code = done.stdout.decode().rpartition("\n")
    return int(code), json.loads(text), {}


CLIENTS = {"urllib": _urllib, "requests": _requests, "httpx": _httpx, "curl": _curl}


@pytest.mark.parametrize("client", list(CLIENTS))
def test_every_client_reads_the_413_of_an_oversized_body(server, client):
    if client == "curl" and subprocess.run(["which", "curl"], capture_output=True).returncode != 0:
        pytest.skip("curl is not installed")
    for megabytes in (5, 5, 5, 20):  # the reported failure: 5 of 5 tries at 5 MB and up
        code, reply, _ = CLIENTS[client](server.url + "/predict", _big_body(megabytes))
        assert code == 413 and reply["error"] == f"request body over {LIMIT} bytes", (megabytes, code, reply)
    assert server.post("/predict", {"texts": ["still serving"]})[0] == 200


def _slow_request(server: Server, sent: bytes = b'{"texts": [') -> socket.socket:
    """A client that declares a body and sends only its start."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    head = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    sock.sendall(head.encode() + sent)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], dict]:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_a_slow_body_gets_408_and_holds_nothing_else(server):
    started = time.time()
    sock = _slow_request(server)
    assert server.post("/predict", {"texts": ["others are served meanwhile"]})[0] == 200
    code, headers, reply = _read_response(sock)
    sock.close()
    assert code == 408 and "not received within 1.5 s" in reply["error"], reply
    assert 1.4 < time.time() - started < 10 and headers["connection"] == "close"


def test_too_many_requests_at_once_get_503_with_retry_after(server):
    slow = [_slow_request(server) for _ in range(3)]  # --max-connections 3, all held by slow clients
    time.sleep(0.2)
    code, reply, headers = _urllib(server.url + "/predict", b'{"texts": ["one too many"]}')
    assert code == 503 and "at capacity" in reply["error"] and headers.get("Retry-After") == "1", (code, reply)
    for sock in slow:
        assert _read_response(sock)[0] == 408
        sock.close()
    assert server.post("/predict", {"texts": ["served again"]})[0] == 200


def test_a_full_queue_gets_503_with_retry_after(server):
    code, reply, headers = _urllib(server.url + "/predict", json.dumps({"texts": ["a"] * 5}).encode())  # queue 4
    assert code == 503 and "at capacity" in reply["error"] and headers.get("Retry-After") == "1", (code, reply)


def test_metrics_are_prometheus_text(server):
    for _ in range(3):
        assert server.post("/predict", {"texts": ["cheap meds now", "the meeting notes"]})[0] == 200
    server.post("/predict", b"{")  # a 400
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    families = {f.name: f for f in prometheus_parser.text_string_to_metric_families(text)}

    def value(family: str, sample: str, **labels: str) -> float:
        return sum(s.value for s in families[family].samples if s.name == sample and labels.items() <= s.labels.items())

    assert value("albert_requests", "albert_requests_total", route="/predict", status="200") >= 3
    assert value("albert_requests", "albert_requests_total", route="/predict", status="400") >= 1
    assert value("albert_request_seconds", "albert_request_seconds_count", route="/predict") >= 4
    assert value("albert_texts", "albert_texts_total") >= 6
    assert value("albert_batch_texts", "albert_batch_texts_count") >= 3
    rows = value("albert_model_call_rows", "albert_model_call_rows_sum")
    tokens = value("albert_model_call_tokens", "albert_model_call_tokens_sum")
    assert rows >= 6 and tokens > 2 * rows  # every text reached the model, with [CLS], [SEP] and its pieces
    assert value("albert_model_padded_tokens", "albert_model_padded_tokens_total") >= tokens
    assert value("albert_queue_texts", "albert_queue_texts") == 0
    unknown = urllib.request.Request(server.url + "/no/such/path/123")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(unknown, timeout=10)
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as reply:
        text = reply.read().decode()
    assert 'route="other"' in text and "/no/such/path" not in text  # labels stay bounded
