"""`albert serve`: a FastAPI app around a Predictor, for production traffic.

- One route, the model's task's (albert/tasks): ``POST /predict`` (classification: label and probabilities), ``/ner``
  (entity spans), ``/qa`` (answer spans), ``/choose`` (multiple choice), ``/summarize`` (extractive summaries),
  ``/similarity`` (sentence pairs), ``/fill-mask`` (a masked LM's fills: ``--top-k``, ``--targets``), ``/embed`` (an
  encoder's vectors; a masked LM's with ``--task embedding``); ``GET /health``; OpenAPI at
  ``/openapi.json``, browsable at ``/docs`` (Swagger UI) and ``/redoc``, whose scripts and styles come from the
  fastapi-offline package and are served by this server: the pages work with no network.
- Micro-batching: concurrent requests wait in a short queue; one worker thread takes up to ``max_batch`` texts and
  runs them as one call, its texts sorted by length and cut into forward passes where that saves padding
  (engines.plan_passes). Requests that queued while the model ran go at once; only when the model was idle does the
  first request wait up to ``max_wait_ms`` for company. A full queue answers 503.
- Limits: body size (413), texts per request, characters per text, empty lists, wrong types (422), malformed JSON
  or non-UTF-8 bodies (400); every error the app or BodyGuard answers has the body ``{"error": ..., "details":
  [...]}`` (bytes that are not HTTP at all get uvicorn's plain-text 400) and the server keeps serving.
  An oversized body is read and thrown away (up to ``drain_bytes``) before the 413, so a client that sends its whole
  body before reading (urllib, most) gets the answer instead of a reset; a client that asked ``Expect:
  100-continue`` (curl) gets it before sending anything. A request head (request line and headers) not received
  within ``header_timeout`` seconds gets 408 and the connection closes (a connection that sends nothing is closed);
  a body not received within ``body_timeout`` seconds gets 408.
- Overload: more than ``max_connections`` requests at once get 503, as does a full queue and a request still running
  when ``graceful_timeout`` has passed after SIGTERM; every 503 is JSON with ``Retry-After``. ``GET /health`` and
  ``GET /metrics`` are not counted, so a probe never fails because the model is busy. uvicorn's own
  ``limit_concurrency`` is not used: it answered plain-text 503s without Retry-After, and counted idle connections.
- An unexpected error (a bug, a predictor that raises) is a JSON 500 ``internal error (request id X)``; the
  traceback is on the server log under the same id, and every answer carries its id in ``X-Request-ID``.
- The port is bound before the model loads: a busy port is one line (``--port N on HOST: already in use``), at once.
  The log says where the model loads from, then ``ready on http://HOST:PORT``.
- ``GET /``: a playground page (albert/playground.html: plain HTML and JavaScript, nothing fetched from elsewhere) with
  a form for the model's task and its answer drawn: label probabilities as bars, entities marked in the text, the
  answer marked in the context, an encoder's nearest texts. ``--no-playground`` leaves it out.
- ``GET /metrics``: Prometheus text format (prometheus-client): requests by route and status, latency, texts per
  batch, rows and tokens per model call, queue depth, texts predicted.
- Bodies are read as JSON whatever their Content-Type, so ``curl -d '{"texts": [...]}'`` works as written.
- Graceful shutdown: on SIGTERM uvicorn stops accepting, in-flight requests finish (the batcher drains), then exit.
- A structured access log: one JSON line per request on the ``albert.access`` logger (stderr).
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at runtime, with local models.

import asyncio
import errno
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any, ClassVar

from albert.errors import AlbertError
from albert.extras import installed_version, require
from albert.fields import AT_LEAST_1, NON_NEGATIVE, PORT, POSITIVE, THREADS, Range, coerce_fields
from albert.hub import HubOptions
from albert.infer import Predictor
from albert.servehttp import (
    RETRY_AFTER_SECONDS,
    BodyGuard,
    CountingForward,
    ServeMetrics,
    access_log,
    header_timeout_protocol,
    server_log,
)


@dataclass
class ServeConfig:
    model: str = ""  # a fine-tuned model directory (required)
    onnx: str | None = None  # run this `albert export` file with onnxruntime instead of PyTorch
    host: str = "127.0.0.1"  # interface to listen on (0.0.0.0 for every interface)
    port: int = 8000  # TCP port (0: any free port)
    max_batch: int = 64  # texts per model call, gathered from concurrent requests
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for company
    max_queue: int = 4096  # texts waiting; beyond this requests get 503
    max_request_texts: int = 256  # most texts in one request (more: 422)
    max_text_chars: int = 20000  # most characters per text (more: 422)
    max_body_bytes: int = 2_000_000  # largest request body (more: 413)
    drain_bytes: int = 128_000_000  # an oversized body is read and discarded up to this size, so the client gets 413
    header_timeout: float = 10.0  # seconds a client gets to send its request line and headers (slower: 408, closed)
    body_timeout: float = 30.0  # seconds a client gets to send its request body (slower: 408)
    max_connections: int = 256  # requests handled at once (more: 503 with Retry-After)
    max_length: int | None = None  # tokens per text, longer ones are cut (default: 128 or the model's positions)
    threads: int | None = None  # CPU threads for the model (default: the engine's own choice)
    graceful_timeout: float = 30.0  # seconds in-flight requests get after SIGTERM
    revision: str | None = None  # hub: branch, tag or commit of the model
    cache_dir: str | None = None  # hub: cache folder (default: HF_HUB_CACHE)
    local_files_only: bool = False  # hub: use the cache only, no network
    playground: bool = True  # serve the try-the-model page at GET /
    task: str | None = None  # a masked LM's other task: embedding (POST /embed) instead of fill_mask (/fill-mask)
    top_k: int = 5  # fill-mask: candidates per [MASK]
    targets: list[str] | None = None  # fill-mask: score only these tokens

    LIMITS: ClassVar[dict] = {
        "port": PORT,
        "max_batch": AT_LEAST_1,
        "max_wait_ms": NON_NEGATIVE,
        "max_queue": AT_LEAST_1,
        "max_request_texts": AT_LEAST_1,
        "max_text_chars": AT_LEAST_1,
        "max_body_bytes": AT_LEAST_1,
        "drain_bytes": NON_NEGATIVE,
        "header_timeout": POSITIVE,
        "body_timeout": POSITIVE,
        "max_connections": AT_LEAST_1,
        "max_length": Range(4),
        "threads": THREADS,
        "graceful_timeout": NON_NEGATIVE,
        "top_k": AT_LEAST_1,
    }

    def __post_init__(self) -> None:
        coerce_fields(self)  # YAML, flags and Python callers alike: each field as its declared type


# the playground's scripts and styles are inline; it talks to this server only and loads nothing from elsewhere
PLAYGROUND_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'"


class QueueFull(Exception):
    pass


class ShuttingDown(Exception):
    """The batcher has been told to stop: new requests are refused (503), queued ones are still answered."""


class MicroBatcher:
    """Gathers concurrent requests of one kind into single calls of ``run(kind, items) -> results``."""

    def __init__(self, run, max_batch: int, max_wait_ms: float, max_queue: int, metrics: ServeMetrics | None = None):
        self.run, self.max_batch, self.max_wait, self.metrics = run, max_batch, max_wait_ms / 1000, metrics
        self.max_queue, self.waiting = max_queue, 0
        self.queue: asyncio.Queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="albert-model")
        self.task: asyncio.Task | None = None
        self.batches = 0
        self.pending: set[asyncio.Future] = set()  # every request not yet answered
        self.failure: BaseException | None = None  # why the batching loop stopped, if it did
        self.stopping = False

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def submit(self, kind: str, items: list) -> list:
        if self.failure is not None:
            raise RuntimeError(f"the batching loop has stopped ({self.failure!r})")
        if self.stopping:  # the loop is about to be cancelled: a request queued now would wait forever
            raise ShuttingDown
        if self.waiting + len(items) > self.max_queue:
            raise QueueFull
        future = asyncio.get_running_loop().create_future()
        self.pending.add(future)
        future.add_done_callback(self.pending.discard)
        self.waiting += len(items)
        await self.queue.put((kind, items, future))
        return await future

    async def _loop(self) -> None:
        try:
            await self._batches()
        except asyncio.CancelledError:
            raise
        except BaseException as err:  # a bug here must not leave requests waiting forever: fail them, and refuse new
            self.failure = err
            for future in list(self.pending):
                if not future.done():
                    future.set_exception(RuntimeError(f"the batching loop has stopped ({err!r})"))
            raise

    async def _batches(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Requests that arrived while the model ran go at once: waiting for company only pays when the model
            # was idle (under load the queue fills during each call, and a wait would leave the model idle).
            busy = not self.queue.empty()
            batch = [await self.queue.get()]
            size, deadline = len(batch[0][1]), loop.time() + (0.0 if busy else self.max_wait)
            while size < self.max_batch:
                if not self.queue.empty():
                    nxt = self.queue.get_nowait()
                else:
                    try:
                        nxt = await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time()))
                    except (TimeoutError, asyncio.TimeoutError):  # distinct classes before Python 3.11
                        break
                batch.append(nxt)
                size += len(nxt[1])
            for kind in dict.fromkeys(k for k, _, _ in batch):  # one model call per kind, in arrival order
                group = [(items, future) for k, items, future in batch if k == kind]
                flat = [item for items, _ in group for item in items]
                if self.metrics is not None:
                    self.metrics.batch_texts.observe(len(flat))
                try:
                    results = await loop.run_in_executor(self.executor, self.run, kind, flat)
                except Exception as err:  # noqa: BLE001 - handed to the waiting requests, which answer 500
                    for _, future in group:
                        if not future.done():
                            future.set_exception(err)
                else:
                    start = 0
                    for items, future in group:
                        if not future.done():
                            future.set_result(results[start : start + len(items)])
                        start += len(items)
                self.waiting -= len(flat)
                self.batches += 1
                if self.metrics is not None:
                    self.metrics.texts.inc(len(flat))

    async def stop(self) -> None:
        self.stopping = True
        while not self.queue.empty() and self.failure is None:  # anything queued is still answered
            await asyncio.sleep(0.01)
        if self.task is not None:
            self.task.cancel()
        self.executor.shutdown(wait=True)


def create_app(cfg: ServeConfig, predictor: Predictor | None = None):
    from contextlib import asynccontextmanager

    require("fastapi", "serving")
    from fastapi.responses import HTMLResponse, PlainTextResponse

    try:  # /docs and /redoc with their scripts and styles from this package, not from a CDN: they work offline
        from fastapi_offline import FastAPIOffline
    except ImportError:
        raise AlbertError("serving needs fastapi-offline (the /docs page): pip install 'albert-lite[serve]'") from None

    predictor = predictor or Predictor(
        cfg.model,
        cfg.onnx,
        cfg.max_length,
        threads=cfg.threads,
        hub_options=HubOptions(cfg.revision, cfg.cache_dir, None, cfg.local_files_only),
        length_flag="--max-length",
        model_flag="--model",
        task=cfg.task,
        top_k=cfg.top_k,
        targets=cfg.targets,
    )
    metrics = ServeMetrics()
    predictor.forward = CountingForward(predictor.forward, metrics)
    batcher = MicroBatcher(
        lambda route, items: predictor.predict(items), cfg.max_batch, cfg.max_wait_ms, cfg.max_queue, metrics
    )
    metrics.queue.set_function(lambda: batcher.waiting)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPIOffline(
        title="albert-lite",
        version=installed_version(),
        description=f"{predictor.architecture} from {cfg.model} ({'onnxruntime' if cfg.onnx else 'PyTorch'})",
        lifespan=lifespan,
    )
    _add_task_route(app, cfg, predictor.family, batcher)

    @app.get("/health", summary="Liveness, model and queue")
    async def health():
        return {
            "status": "ok",
            "model": cfg.model,
            "class": predictor.architecture,
            "task": predictor.task,
            "engine": "onnxruntime" if cfg.onnx else "pytorch",
            "routes": predictor.routes,
            "labels": predictor.labels if predictor.family.named_labels else None,
            "queued_texts": batcher.waiting,
            "batches": batcher.batches,
        }

    if cfg.playground:
        page = (resources.files("albert") / "playground.html").read_text(encoding="utf-8")

        @app.get("/", summary="A page to try the model", response_class=HTMLResponse, include_in_schema=False)
        async def playground():
            return HTMLResponse(page, headers={"Content-Security-Policy": PLAYGROUND_CSP})

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus_metrics():
        payload, content_type = metrics.exposition()
        return PlainTextResponse(payload, media_type=content_type)

    _add_error_handlers(app)
    return BodyGuard(app, cfg, metrics)


def _request_model(cfg: ServeConfig, task):
    """The route's request body: {"texts": [...]} where an item is a text, else {"items": [{field: ...}, ...]} with
    the fields of the task's item; strings within --max-text-chars, lists within --max-request-texts."""
    from typing import get_type_hints

    from pydantic import Field, create_model

    Text = Annotated[str, Field(max_length=cfg.max_text_chars)]  # a blank text is a text, as in `albert predict`
    strict = {"extra": "forbid"}
    if task.item is str:
        return create_model("TextsRequest", __config__=strict, texts=(_bounded(Text, cfg), ...))
    fields = {
        name: ((_bounded(Text, cfg) if hint == list[str] else Text), ...)
        for name, hint in get_type_hints(task.item).items()
    }
    item = create_model(f"{task.item.__name__}Item", __config__=strict, **fields)
    return create_model(f"{task.item.__name__}Request", __config__=strict, items=(_bounded(item, cfg), ...))


def _bounded(kind, cfg: ServeConfig):
    from pydantic import Field

    return Annotated[list[kind], Field(min_length=1, max_length=cfg.max_request_texts)]


def _add_task_route(app, cfg: ServeConfig, task, batcher: MicroBatcher) -> None:
    """POST /<task.route>: the request's items, micro-batched, through the task's predict; {response: results}."""
    from fastapi import Request
    from pydantic import BaseModel, create_model
    from starlette.exceptions import HTTPException as StarletteHTTPException

    class Error(BaseModel):
        error: str
        details: list[dict[str, Any]] = []

    request_model = _request_model(cfg, task)
    response_model = create_model(f"{task.route.title()}Response", **{task.response: (list[task.result], ...)})
    errors = {code: {"model": Error} for code in (400, 408, 413, 422, 500, 503)}

    async def endpoint(body: request_model, request: Request):  # FastAPI reads the annotation at runtime
        items = body.texts if task.item is str else [item.model_dump() for item in body.items]
        request.scope.setdefault("state", {})["items"] = len(items)
        try:
            results = await batcher.submit(task.route, items)
        except QueueFull:
            raise StarletteHTTPException(
                503, "the server is at capacity; retry shortly", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
            ) from None
        except ShuttingDown:
            raise StarletteHTTPException(
                503, "the server is shutting down; retry shortly", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
            ) from None
        return {task.response: results}

    app.post(
        f"/{task.route}",
        response_model=response_model,
        responses=errors,
        response_model_exclude_unset=True,  # a field a result does not have is left out; one it has as null stays
        summary=task.summary,
        name=task.route,
    )(endpoint)


def _add_error_handlers(app) -> None:
    """Every error is {"error": ..., "details": [...]}: malformed JSON 400, invalid fields 422, AlbertError 422, any
    other exception 500 with the request's id (BodyGuard logs its traceback under that id)."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            where = next(p for p in problems if p.get("type") == "json_invalid")
            message = (
                f"malformed JSON: {where.get('ctx', {}).get('error', 'decode error')} at position {where['loc'][-1]}"
            )
            return JSONResponse({"error": message, "details": []}, status_code=400)
        details = [
            {"field": ".".join(str(x) for x in p["loc"] if x != "body") or "body", "message": p["msg"]}
            for p in problems
        ]
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:3])
        return JSONResponse({"error": f"invalid request: {summary}", "details": details}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail), "details": []}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(AlbertError)
    async def albert_error(request: Request, exc: AlbertError):
        return JSONResponse({"error": str(exc), "details": []}, status_code=422)

    @app.exception_handler(Exception)  # Starlette answers with this, then re-raises to BodyGuard, which logs it
    async def internal_error(request: Request, exc: Exception):
        request_id = (request.scope.get("state") or {}).get("request_id", "-")
        return JSONResponse({"error": f"internal error (request id {request_id})", "details": []}, status_code=500)


def listen(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address ``host`` resolves to, as asyncio's create_server would bind them for
    uvicorn. Bound before the model loads, so that a busy port is one clear line at once, not uvicorn's log line
    after a minute of loading."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise AlbertError(f"--host {host}: cannot be resolved ({err.strerror})") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait out TIME_WAIT
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio does: "::" is IPv6 only
            sock.bind(address)
            sock.listen(2048)  # uvicorn's backlog; clients that connect while the model loads wait for it
    except OSError as err:
        for sock in sockets:
            sock.close()
        what = "already in use" if err.errno == errno.EADDRINUSE else "cannot listen"
        raise AlbertError(f"--port {port} on {host}: {what} ({err.strerror})") from None
    return sockets


def serve(cfg: ServeConfig) -> None:
    """Run uvicorn until SIGINT/SIGTERM; in-flight requests get ``graceful_timeout`` seconds to finish."""
    try:
        import uvicorn
        from uvicorn.logging import DefaultFormatter
    except ImportError:
        raise AlbertError("serving needs FastAPI and uvicorn: pip install 'albert-lite[serve]'") from None
    if not cfg.model:
        raise AlbertError("--model is required: a fine-tuned model directory")
    sockets = listen(cfg.host, cfg.port)
    handler = logging.StreamHandler()  # stderr; removed again when serve() returns (it may be called again)
    handler.setFormatter(logging.Formatter("%(message)s"))
    progress = logging.StreamHandler()
    progress.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s"))  # uvicorn's own look
    try:
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False
        server_log.addHandler(progress)
        server_log.setLevel(logging.INFO)
        server_log.propagate = False
        engine = f"onnxruntime, {cfg.onnx}" if cfg.onnx else "PyTorch"
        server_log.info("loading the model from %s (%s)", cfg.model, engine)
        app = create_app(cfg)
        port = sockets[0].getsockname()[1]  # the one the system chose, with --port 0
        url = f"http://{f'[{cfg.host}]' if ':' in cfg.host else cfg.host}:{port}"

        class Server(uvicorn.Server):
            async def startup(self, sockets=None):
                await super().startup(sockets)
                if self.started:  # uvicorn says nothing of sockets it did not bind itself
                    server_log.info("ready on %s", url)

            async def shutdown(self, sockets=None):
                await super().shutdown(sockets)
                # Requests still running at --graceful-timeout were cancelled, and answer 503 as they unwind
                # (BodyGuard); let them, before uvicorn re-raises SIGTERM and the process is gone.
                running = [task for task in self.server_state.tasks if not task.done()]
                if running:
                    await asyncio.wait(running, timeout=1)

        config = uvicorn.Config(
            app,
            access_log=False,  # ours is structured
            timeout_graceful_shutdown=cfg.graceful_timeout,
            # No limit_concurrency: BodyGuard counts requests and answers 503 in JSON with Retry-After; uvicorn's
            # answered in plain text and counted idle keep-alive connections and /health alike.
            http=header_timeout_protocol(cfg.header_timeout),
            ws="none",  # no WebSocket routes; an upgrade request is answered as plain HTTP
            log_level="info",
        )
        server = Server(config)
        server.run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()
        access_log.removeHandler(handler)
        server_log.removeHandler(progress)
    if not server.started:  # as uvicorn.run: the app's startup failed, and uvicorn has logged why
        raise SystemExit(3)
