"""`albert serve` as a real uvicorn process on a loopback port: errors, agreement with offline prediction under
concurrent load, micro-batching, the OpenAPI contract (schemathesis), graceful shutdown and the access log."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from servers import Server

from albert import infer

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


@pytest.fixture(scope="module")
def server(models):
    srv = Server(models["clf"], "--max-request-texts", "16", "--max-text-chars", "2000", "--max-body-bytes", "100000")
    yield srv
    srv.stop()


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b'{"texts": ["a"', 400, "malformed JSON"),
        ('{"texts": ["caf\xe9"]}'.encode("latin-1"), 400, "not UTF-8"),
        (b'{"texts": "just one string"}', 422, "texts: Input should be a valid list"),
        (b'{"texts": [1, 2]}', 422, "texts.0: Input should be a valid string"),
        (b'{"texts": []}', 422, "texts: List should have at least 1 item"),
        (json.dumps({"texts": ["x"] * 17}).encode(), 422, "texts: List should have at most 16 items"),
        (json.dumps({"texts": ["long " * 500]}).encode(), 422, "String should have at most 2000 characters"),
        (json.dumps({"texts": ["y" * 1000] * 16 * 7}).encode(), 413, "request body over 100000 bytes"),
        (b'{"text": ["a"]}', 422, "texts: Field required"),
        (b"[]", 422, "Input should be a valid dictionary"),
    ],
    ids=[
        "malformed",
        "latin1",
        "str",
        "ints",
        "empty",
        "too-many",
        "huge-text",
        "huge-body",
        "wrong-key",
        "array",
    ],
)
def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(server, body, status, message):
    code, reply = server.post("/predict", body)
    assert code == status and message in reply["error"], reply
    assert server.get("/health")[1]["status"] == "ok"


def test_a_blank_text_is_a_text_as_in_albert_predict(server):
    """One rule for blank texts everywhere: predicted like any other (`albert predict` answers a blank input line with
    a prediction too, so output line n answers input line n)."""
    code, reply = server.post("/predict", {"texts": ["", "   ", "a real text"]})
    assert code == 200 and len(reply["predictions"]) == 3, reply


def test_unknown_route_and_health(server):
    assert server.post("/ner", {"texts": ["a"]})[0] == 404  # a classifier serves /predict only
    code, health = server.get("/health")
    assert code == 200 and health["routes"] == ["predict"] and health["labels"] == ["neg", "pos", "neutral"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_openapi_pages_load_everything_from_this_server(server, page):
    """/docs (Swagger UI) and /redoc work offline: every script, style, icon and spec they reference is a path on
    this server, and it answers."""
    with urllib.request.urlopen(server.url + page, timeout=30) as resp:
        html = resp.read().decode()
    urls = re.findall(r'(?:src|href|spec-url)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
    assert len(urls) >= 3 and "/openapi.json" in urls, urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url  # nothing from a CDN
        with urllib.request.urlopen(server.url + url, timeout=30) as resp:
            assert resp.status == 200 and len(resp.read()) > 100, url


def _same(got: dict, want: dict) -> bool:
    close = all(abs(got["probabilities"][k] - want["probabilities"][k]) <= 1e-5 for k in want["probabilities"])
    ranked = sorted(want["probabilities"].values())
    return close and (got["label"] == want["label"] or ranked[-1] - ranked[-2] <= 1e-5)


def test_load_test_answers_equal_offline_predictions(server, models, brown_texts):
    """32 concurrent clients, 1,600 requests of 1-3 texts: no errors, every answer equals the offline one, and the
    server actually batched requests together."""
    offline = dict(zip(brown_texts, infer.Predictor(models["clf"]).classify(brown_texts), strict=True))
    rng = np.random.default_rng(0)
    requests = [[brown_texts[i] for i in rng.integers(0, len(brown_texts), rng.integers(1, 4))] for _ in range(1600)]
    batches_before = server.get("/health")[1]["batches"]

    def call(texts):
        code, reply = server.post("/predict", {"texts": texts})
        return code, texts, reply

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(call, requests))
    assert all(code == 200 for code, _, _ in results), [r for r in results if r[0] != 200][:2]
    for _, texts, reply in results:
        assert len(reply["predictions"]) == len(texts)
        for text, got in zip(texts, reply["predictions"], strict=True):
            assert _same(got, offline[text]), (text, got, offline[text])
    batches = server.get("/health")[1]["batches"] - batches_before
    assert batches < len(requests), "concurrent requests were never batched together"


def test_curl_style_form_content_type_is_read_as_json(server):
    req = urllib.request.Request(
        server.url + "/predict",
        data=b'{"texts": ["good"]}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200 and json.loads(resp.read())["predictions"][0]["label"] in ("neg", "pos", "neutral")


def test_openapi_contract_has_no_server_errors(server):
    """A short schemathesis run over every operation of the published OpenAPI: no 5xx."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/health"}
    for operation in operations:

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def run(case):
            case.call_and_validate(base_url=server.url, checks=[not_a_server_error])

        run()


def test_graceful_shutdown_finishes_in_flight_requests(models, brown_texts):
    """SIGTERM while 32 requests of 100 texts each are queued or running: every accepted request is answered in
    full (some after the signal), then the process exits."""
    srv = Server(models["clf"], "--max-batch", "100", "--max-request-texts", "256")
    replies, signalled = [], {}

    def call():
        try:
            replies.append((srv.post("/predict", {"texts": brown_texts}), time.perf_counter()))
        except OSError as err:  # connected too late: refused once shutdown began
            replies.append((("refused", str(err)), time.perf_counter()))

    threads = [threading.Thread(target=call) for _ in range(32)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    signalled["at"] = time.perf_counter()
    code = srv.stop()
    for t in threads:
        t.join(timeout=120)
    answered = [(r, at) for r, at in replies if r[0] != "refused"]
    assert answered and all(r[0] == 200 and len(r[1]["predictions"]) == 100 for r, _ in answered)
    late = sum(at > signalled["at"] for _, at in answered)
    print(f"{len(answered)} answered, {late} after SIGTERM")
    assert late, "no request was still in flight at SIGTERM"
    # uvicorn finishes the requests, shuts down, then re-raises SIGTERM so the exit status says why it stopped.
    assert code == -signal.SIGTERM and any("Finished server process" in line for line in srv.lines)
    log = [json.loads(line) for line in srv.lines if line.startswith("{")]
    assert sum(e["path"] == "/predict" and e["status"] == 200 and e["items"] == 100 for e in log) == len(answered)
    assert all({"time", "client", "method", "path", "status", "ms", "bytes_in"} <= e.keys() for e in log)


def test_onnx_engine_serves_what_the_onnx_predictor_predicts(models, brown_texts, tmp_path):
    from albert.export import export_onnx

    export_onnx(models["clf"], tmp_path / "m.onnx")
    srv = Server(models["clf"], "--onnx", str(tmp_path / "m.onnx"))
    try:
        assert srv.get("/health")[1]["engine"] == "onnxruntime"
        code, reply = srv.post("/predict", {"texts": brown_texts[:16]})
        offline = infer.Predictor(models["clf"], onnx=tmp_path / "m.onnx").classify(brown_texts[:16])
        assert code == 200 and all(_same(g, w) for g, w in zip(reply["predictions"], offline, strict=True))
    finally:
        srv.stop()


@pytest.mark.parametrize("kind", ["ner", "qa", "mc", "summ", "encoder"])
def test_each_head_gets_its_route_and_offline_answers(models, brown_texts, kind):
    srv = Server(models[kind])
    try:
        offline = infer.Predictor(models[kind])
        routes = srv.get("/health")[1]["routes"]
        if kind == "ner":
            assert routes == ["ner"]
            code, reply = srv.post("/ner", {"texts": brown_texts[:8]})
            assert code == 200 and reply["entities"] == offline.tag(brown_texts[:8])
        elif kind == "qa":
            assert routes == ["qa"]
            contexts = [" ".join(brown_texts[i : i + 4]) for i in range(0, 12, 4)]
            items = [{"question": "what happened?", "context": c} for c in contexts]
            code, reply = srv.post("/qa", {"items": items})
            want = offline.answer(["what happened?"] * 3, contexts)
            assert code == 200 and [a["answer"] for a in reply["answers"]] == [w["answer"] for w in want]
            assert [set(a) for a in reply["answers"]] == [set(w) for w in want]  # one spelling, null score included
            assert srv.post("/qa", {"items": [{"question": "x"}]})[0] == 422  # context missing
        elif kind == "mc":
            assert routes == ["choose"]
            items = [
                {
                    "passage": " ".join(brown_texts[i : i + 3]),
                    "question": "What next?",
                    "options": brown_texts[i + 3 : i + 3 + c],
                }
                for i, c in ((0, 4), (10, 2), (20, 4), (30, 3))  # as many options as each question has
            ]
            code, reply = srv.post("/choose", {"items": items})
            want = offline.predict(items)
            assert code == 200 and [r["choice"] for r in reply["choices"]] == [w["choice"] for w in want]
            assert [len(r["probabilities"]) for r in reply["choices"]] == [4, 2, 4, 3]
            assert all(r["answer"] == i["options"][r["choice"]] for r, i in zip(reply["choices"], items, strict=True))
            bad = {"items": [{"passage": "p", "question": "q", "options": "not a list"}]}
            assert srv.post("/choose", bad)[0] == 422
        elif kind == "summ":
            assert routes == ["summarize"]
            documents = [" ".join(brown_texts[i : i + 6]) for i in (0, 6, 12)]
            code, reply = srv.post("/summarize", {"texts": documents})
            want = offline.predict(documents)
            assert code == 200 and [r["sentences"] for r in reply["summaries"]] == [w["sentences"] for w in want]
            assert all(len(r["sentences"]) == 3 and r["summary"] for r in reply["summaries"])
        else:
            assert routes == ["embed"]
            code, reply = srv.post("/embed", {"texts": brown_texts[:4]})
            np.testing.assert_allclose(reply["embeddings"], offline.embed(brown_texts[:4]), rtol=0, atol=1e-5)
        assert srv.post("/predict", {"texts": ["a"]})[0] == 404
    finally:
        srv.stop()


def test_micro_batcher_merges_requests_keeps_their_order_and_refuses_past_its_queue():
    import asyncio

    from albert.serve import MicroBatcher, QueueFull, ShuttingDown

    calls = []

    def run(kind, items):
        calls.append((kind, list(items)))
        return [f"{kind}:{x}" for x in items]

    async def scenario():
        batcher = MicroBatcher(run, max_batch=8, max_wait_ms=50, max_queue=6)
        batcher.start()
        results = await asyncio.gather(
            batcher.submit("predict", [1, 2]), batcher.submit("predict", [3]), batcher.submit("embed", [4, 5])
        )
        with pytest.raises(QueueFull):
            await batcher.submit("predict", list(range(7)))  # more than the queue may hold
        await batcher.stop()
        with pytest.raises(ShuttingDown):  # refused at once, not queued where nobody will take it
            await batcher.submit("predict", [8])
        return results

    results = asyncio.run(scenario())
    assert results == [["predict:1", "predict:2"], ["predict:3"], ["embed:4", "embed:5"]]
    assert calls == [("predict", [1, 2, 3]), ("embed", [4, 5])]  # one model call per kind for the gathered window


def test_micro_batcher_waits_for_company_only_when_the_model_was_idle():
    """Requests that queued while the model ran go into the next call at once, however long --max-wait-ms is."""
    import asyncio
    import time

    from albert.serve import MicroBatcher

    calls = []

    def run(kind, items):
        calls.append(list(items))
        time.sleep(0.3)  # the model at work
        return items

    async def scenario():
        batcher = MicroBatcher(run, max_batch=2, max_wait_ms=3000, max_queue=64)
        batcher.start()
        start = time.perf_counter()
        first = asyncio.ensure_future(batcher.submit("predict", [1, 2]))  # a full batch: no wait
        await asyncio.sleep(0.1)
        second = await batcher.submit("predict", [3])  # queued while the model runs: no 3 s wait either
        waited = time.perf_counter() - start
        await first
        await batcher.stop()
        return second, waited

    second, waited = asyncio.run(scenario())
    assert calls == [[1, 2], [3]] and second == [3]
    assert waited < 1.5  # two calls of 0.3 s, no 3 s wait for company


def test_micro_batcher_survives_python_310_timeouts_and_fails_requests_if_its_loop_dies(monkeypatch):
    """On Python 3.10 asyncio.wait_for raises asyncio.TimeoutError, which is not the builtin TimeoutError: emulate
    that here (this interpreter may be newer), then kill the loop outright and check nobody waits forever."""
    import asyncio
    import types

    from albert import serve

    class AsyncioTimeout310(Exception):  # 3.10's asyncio.exceptions.TimeoutError: an Exception, not TimeoutError
        pass

    async def wait_for_310(awaitable, timeout):
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except (TimeoutError, asyncio.TimeoutError):  # the real module's class, when this interpreter is 3.10 itself
            raise AsyncioTimeout310 from None

    class Asyncio310(types.ModuleType):
        def __getattr__(self, name):
            return getattr(asyncio, name)

    old = Asyncio310("asyncio")
    old.TimeoutError, old.wait_for = AsyncioTimeout310, wait_for_310
    monkeypatch.setattr(serve, "asyncio", old)

    async def first_request_is_answered():
        batcher = serve.MicroBatcher(lambda kind, items: items, max_batch=8, max_wait_ms=5, max_queue=64)
        batcher.start()
        result = await asyncio.wait_for(batcher.submit("predict", [1]), 5)
        await asyncio.wait_for(batcher.stop(), 5)
        return result

    assert asyncio.run(first_request_is_answered()) == [1]

    async def broken_wait_for(awaitable, timeout):
        awaitable.close()
        raise KeyError("a bug in the batching loop")

    old.wait_for = broken_wait_for

    async def loop_dies():
        batcher = serve.MicroBatcher(lambda kind, items: items, max_batch=8, max_wait_ms=5, max_queue=64)
        batcher.start()
        with pytest.raises(RuntimeError, match="the batching loop has stopped"):
            await asyncio.wait_for(batcher.submit("predict", [1]), 5)  # failed, not left hanging
        with pytest.raises(RuntimeError, match="the batching loop has stopped"):
            await batcher.submit("predict", [2])  # refused at once
        await asyncio.wait_for(batcher.stop(), 5)  # and shutdown does not spin

    asyncio.run(loop_dies())
