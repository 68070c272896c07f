"""The HTTP edge of `albert serve`: an ASGI middleware in front of the FastAPI app, and the Prometheus metrics.

BodyGuard reads each request body itself, before the app sees it, so that every client gets an answer it can read:
- over ``max_body_bytes``: 413. A client that asked ``Expect: 100-continue`` (curl, for bodies over 1 MB) is answered
  before it sends anything. Any other client sends its whole body before it reads a response (urllib, requests,
  httpx): the rest of the body is read and thrown away, up to ``drain_bytes``, then the 413 goes out with
  ``Connection: close``; answering while it still sends would reset the connection under it (what nginx's lingering
  close avoids too). Past ``drain_bytes`` the 413 goes out at once.
- not received within ``body_timeout`` seconds: 408 (a slow client holds its own request only, never the model).
- more than ``max_connections`` requests at once: 503 with ``Retry-After``, after the body is drained as above.
- not UTF-8: 400. Whatever the Content-Type, the body is handed on as JSON (``curl -d`` says form data).
- an exception the app did not answer: JSON 500 ``internal error (request id X)``; the traceback goes to the server
  log (``albert.serve``) under the same id, never into the body. Every answer carries its id in ``X-Request-ID``.
- still running when uvicorn gives up waiting after SIGTERM (``--graceful-timeout``): 503 with ``Retry-After``.
``GET /health`` and ``GET /metrics`` are outside the ``max_connections`` count: a busy model never makes a probe fail.
It also writes the structured access log and counts requests, latency and statuses for ``GET /metrics``.

``header_timeout_protocol`` bounds the time a client takes to send its request head, which uvicorn does not.
"""

# No `from __future__ import annotations`: this module is imported with FastAPI's runtime-read routes.

import asyncio
import json
import logging
import time
import uuid

from albert.extras import require

access_log = logging.getLogger("albert.access")
server_log = logging.getLogger("albert.serve")  # model loading, readiness, and the tracebacks of 500s

RETRY_AFTER_SECONDS = 1  # what a 503 tells the client: the queue drains in well under a second at normal load
UNCAPPED = ("/health", "/metrics")  # probes: cheap, and must not fail because the model is busy


def log_access(client, method: str, path: str, status: int, seconds: float, bytes_in: int, **more) -> None:
    """One JSON line on the access log."""
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
        "client": (client or ["-"])[0],
        "method": method,
        "path": path,
        "status": status,
        "ms": round(seconds * 1000, 2),
        "bytes_in": bytes_in,
    }
    access_log.info(json.dumps({**entry, **more}))


def json_error(code: int, message: str, retry_after: bool = False, close: bool = False) -> tuple[list, bytes]:
    """The headers and body of an error answer, {"error": message, "details": []}."""
    payload = json.dumps({"error": message, "details": []}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    if retry_after:
        headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    return headers, payload


class ServeMetrics:
    """The server's Prometheus metrics, in a registry of its own (two apps in one process do not collide)."""

    def __init__(self):
        prometheus = require("prometheus_client", "GET /metrics")
        self.registry = prometheus.CollectorRegistry()
        r = self.registry
        self.requests = prometheus.Counter(
            "albert_requests", "HTTP requests answered, by route and status", ["route", "status"], registry=r
        )
        self.latency = prometheus.Histogram(
            "albert_request_seconds",
            "time from the request's arrival to its answer",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.batch_texts = prometheus.Histogram(
            "albert_batch_texts",
            "texts per batch taken from the queue (one call of the predictor)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.call_rows = prometheus.Histogram(
            "albert_model_call_rows", "rows per model call", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r
        )
        self.call_tokens = prometheus.Histogram(
            "albert_model_call_tokens",
            "real (unpadded) tokens per model call",
            buckets=(16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768),
            registry=r,
        )
        self.padded_tokens = prometheus.Counter(
            "albert_model_padded_tokens", "tokens the model computed, padding included", registry=r
        )
        self.texts = prometheus.Counter(
            "albert_texts", "texts (items) predicted; rate() of it is texts per second", registry=r
        )
        self.queue = prometheus.Gauge("albert_queue_texts", "texts waiting for the model", registry=r)
        self._prometheus = prometheus

    def exposition(self) -> tuple[bytes, str]:
        return self._prometheus.generate_latest(self.registry), self._prometheus.CONTENT_TYPE_LATEST


class CountingForward:
    """A model backend (TorchForward, OnnxForward) that also reports rows and tokens of each call to the metrics."""

    def __init__(self, inner, metrics: ServeMetrics):
        self.inner, self.metrics = inner, metrics

    def __call__(self, inputs):
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        self.metrics.call_rows.observe(ids.shape[0])
        self.metrics.call_tokens.observe(int(mask.sum()) if mask is not None else ids.size)
        self.metrics.padded_tokens.inc(ids.size)
        return self.inner(inputs)

    def __getattr__(self, name):  # .model, .device, .kind, ... of the backend
        return getattr(self.inner, name)


class BodyGuard:
    """ASGI middleware: the request limits above, the access log and the request metrics."""

    def __init__(self, app, cfg, metrics: ServeMetrics | None = None):
        self.app, self.limit, self.metrics = app, cfg.max_body_bytes, metrics
        self.drain_bytes, self.body_timeout, self.max_in_flight = cfg.drain_bytes, cfg.body_timeout, cfg.max_connections
        self.in_flight = 0
        self.routes: set[str] | None = None  # the app's paths, learnt on first use (metrics labels stay bounded)

    def __getattr__(self, name):  # e.g. .routes, .openapi for tests and tools
        return getattr(self.app, name)

    def _route(self, path: str) -> str:
        if self.routes is None:
            self.routes = {getattr(r, "path", None) for r in self.app.routes} - {None}
        return path if path in self.routes else "other"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), {"code": 500, "sent": False}
        deadline = started + self.body_timeout
        request_id = uuid.uuid4().hex[:12]
        scope.setdefault("state", {})["request_id"] = request_id  # for the app's 500 handler

        async def logged_send(message):
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        body, size = b"", 0
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        declared = int(declared) if declared is not None and declared.isdigit() else None
        waits = headers.get(b"expect", b"").lower() == b"100-continue"  # the client sends only once we read
        capped = scope["path"] not in UNCAPPED
        self.in_flight += capped
        try:
            reading = scope["method"] in ("POST", "PUT", "PATCH")
            if capped and self.in_flight > self.max_in_flight:
                if reading and not waits:
                    await self._drain(receive, 0, deadline)
                return await self._reject(
                    logged_send, 503, "the server is at capacity; retry shortly", retry_after=True
                )
            if declared is not None and declared > self.limit:
                if not waits and declared <= self.drain_bytes:
                    await self._drain(receive, 0, deadline)
                return await self._reject(logged_send, 413, f"request body over {self.limit} bytes")
            if reading:
                more = True
                while more:
                    message = await self._receive(receive, deadline)
                    if message is None:
                        return await self._reject(
                            logged_send, 408, f"request body not received within {self.body_timeout:g} s"
                        )
                    if message["type"] == "http.disconnect":
                        return
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > self.limit:
                        if more:
                            await self._drain(receive, len(body), deadline)
                        return await self._reject(logged_send, 413, f"request body over {self.limit} bytes")
                size = len(body)
                try:
                    body.decode("utf-8")
                except UnicodeDecodeError as err:
                    return await self._reject(logged_send, 400, f"request body is not UTF-8 (byte {err.start})")
                scope = dict(scope)  # read JSON whatever the client said the body was (curl -d says form data)
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
                scope["headers"].append((b"content-type", b"application/json"))
                replayed = False

                async def replay():
                    nonlocal replayed
                    if not replayed:
                        replayed = True
                        return {"type": "http.request", "body": body, "more_body": False}
                    return await receive()

                await self.app(scope, replay, logged_send)
            else:
                await self.app(scope, receive, logged_send)
        except asyncio.CancelledError:
            # uvicorn cancels what still runs once --graceful-timeout has passed after SIGTERM. The client gets told
            # to retry (elsewhere); the request ends here, answered, so the cancellation has done its work.
            if not status["sent"]:
                await self._reject(logged_send, 503, "the server is shutting down; retry shortly", retry_after=True)
        except Exception:  # noqa: BLE001 - a bug: logged with its traceback and id; the client gets the id only
            # The app's own handler has usually answered 500 already (Starlette answers, then re-raises to the
            # server); answering here too covers errors outside it. Not re-raised: uvicorn would log it twice.
            server_log.exception("request %s (%s %s) failed", request_id, scope["method"], scope["path"])
            if not status["sent"]:
                await self._reject(logged_send, 500, f"internal error (request id {request_id})")
        finally:
            self.in_flight -= capped
            seconds = time.perf_counter() - started
            if self.metrics is not None:
                route = self._route(scope["path"])
                self.metrics.requests.labels(route, str(status["code"])).inc()
                self.metrics.latency.labels(route).observe(seconds)
            items = (scope.get("state") or {}).get("items")
            log_access(
                scope.get("client"),
                scope["method"],
                scope["path"],
                status["code"],
                seconds,
                size,
                items=items,
                request_id=request_id,
            )

    @staticmethod
    async def _receive(receive, deadline: float):
        """The next body message, or None once the deadline has passed."""
        try:
            return await asyncio.wait_for(receive(), max(0.0, deadline - time.perf_counter()))
        except (TimeoutError, asyncio.TimeoutError):  # distinct classes before Python 3.11
            return None

    async def _drain(self, receive, read: int, deadline: float) -> None:
        """Read and discard the rest of a body we will refuse, up to drain_bytes and the body deadline, so that a
        client still sending gets to read the answer."""
        while read <= self.drain_bytes:
            message = await self._receive(receive, deadline)
            if message is None or message["type"] == "http.disconnect":
                return
            read += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    @staticmethod
    async def _reject(send, code: int, message: str, retry_after: bool = False) -> None:
        # 408 and 413: the rest of the body (if any) will not be read, so the connection cannot be reused
        headers, payload = json_error(code, message, retry_after=retry_after, close=code in (408, 413))
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def header_timeout_protocol(seconds: float) -> type:
    """uvicorn's HTTP protocol (h11, or httptools where installed) with a bound on the time a client takes to send
    its request head: the request line and headers. uvicorn has none (h11 waits for the rest of a head forever, and
    its keep-alive timer starts only after a first response), so a client that opens connections and trickles bytes
    would hold them for as long as it likes. The clock starts when a connection opens and at the first byte of each
    further request on it, and stops once the head is complete; the body has BodyGuard's ``body_timeout``. Past
    ``seconds`` a client that sent part of a head gets a JSON 408 and the connection closes; one that sent nothing
    is closed without a word, as uvicorn closes an idle keep-alive connection."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class HeaderTimeoutProtocol(AutoHTTPProtocol):
        head_timer: asyncio.TimerHandle | None = None
        head_bytes = 0  # of the head being received

        def connection_made(self, transport):
            super().connection_made(transport)
            self._start_clock()

        def data_received(self, data: bytes) -> None:
            if self._awaiting_head():
                self.head_bytes += len(data)
                self._start_clock()
            super().data_received(data)
            if not self._awaiting_head():  # the head is in: a request is being answered
                self._stop_clock()
                self.head_bytes = 0

        def connection_lost(self, exc):
            self._stop_clock()
            super().connection_lost(exc)

        def _awaiting_head(self) -> bool:  # no request yet, or the last one answered
            return self.cycle is None or self.cycle.response_complete

        def _start_clock(self) -> None:
            if self.head_timer is None:
                self.head_timer = self.loop.call_later(seconds, self._head_timeout)

        def _stop_clock(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def _head_timeout(self) -> None:
            self.head_timer = None
            if not self._awaiting_head() or self.transport.is_closing():
                return
            if self.head_bytes:  # the parser holds a partial head: answer in raw bytes, then close
                message = f"request head not received within {seconds:g} s"
                headers, payload = json_error(408, message, close=True)
                head = b"HTTP/1.1 408 Request Timeout\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
                self.transport.write(head + b"\r\n" + payload)
                log_access(self.client, "-", "-", 408, seconds, self.head_bytes, error=message)
            self.transport.close()

    return HeaderTimeoutProtocol
