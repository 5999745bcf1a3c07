"""The HTTP front of the Slack app: the Bolt app served by uvicorn and Starlette.

Routes: ``POST /slack/events`` (events, slash commands and interactivity; Bolt checks the
signature), ``GET /healthz`` (liveness), ``GET /readyz`` (readiness, JSON details) and
``GET /metrics`` (the process' Prometheus registry).

Limits, and where each is enforced:

- request head: complete within ``head_timeout_s`` of the connection opening or of the
  previous response (:class:`HeadTimedH11Protocol`; uvicorn itself never times out a
  half-sent head), at most 16 KiB (h11's default, answered 400);
- body: at most :data:`MAX_BODY_BYTES`, refused 413 from ``Content-Length`` before any of
  it is read, and counted while a chunked body is read; complete within
  ``body_timeout_s`` or answered 408 (:func:`read_body`);
- connections: past ``max_connections`` open connections (or running requests) uvicorn
  answers 503; the listen backlog absorbs bursts; idle keep-alive connections close after
  :data:`KEEP_ALIVE_S`;
- shutdown: stop accepting, finish in-flight requests (at most ``graceful_s``), return.

Bolt's ``App.dispatch`` is synchronous, so it runs in Starlette's thread pool: the event
loop keeps accepting and timing out connections while a request is dispatched.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

import h11
import uvicorn
from prometheus_client.exposition import choose_encoder
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from bot.health import Health
from bot.lifecycle import wait_for_termination
from bot.metrics import BotMetrics

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
MAX_BODY_BYTES = 1_000_000  # Slack payloads are a few KB
HEAD_TIMEOUT_S = 5.0
BODY_TIMEOUT_S = 5.0
KEEP_ALIVE_S = 5
MAX_CONNECTIONS = 1000
LISTEN_BACKLOG = 2048  # the kernel caps it at net.core.somaxconn
GRACEFUL_S = 10.0
START_TIMEOUT_S = 10.0


class RequestRefused(Exception):
    """A request answered without reaching Bolt; the connection is closed after it."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error

    def response(self) -> JSONResponse:
        body = {"ok": False, "error": self.error}
        return JSONResponse(body, status_code=self.status, headers={"Connection": "close"})


async def read_body(request: Request, *, limit: int, timeout_s: float) -> bytes:
    """The request body, at most ``limit`` bytes, arriving within ``timeout_s`` seconds.

    A declared ``Content-Length`` over the limit is refused before a byte is read (a
    client waiting on ``Expect: 100-continue`` never sends it); a chunked body is cut off
    as soon as it passes the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > limit:  # h11 has checked it is a number
        raise RequestRefused(413, "payload_too_large")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestRefused(413, "payload_too_large")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestRefused(408, "body_timeout") from None
    except ClientDisconnect:
        raise RequestRefused(400, "client_disconnected") from None
    return b"".join(chunks)


class HeadTimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request head and support for
    clients that half-close after sending their request.

    uvicorn times out only an idle keep-alive connection, and only until its first byte
    arrives: a client that opens a connection and sends part of a head (or nothing) holds
    it, and a slot of ``limit_concurrency``, for ever. Here the head must be complete
    within ``config.head_timeout_s`` of the connection opening or of the previous response.
    """

    config: FrontConfig
    _head_deadline: asyncio.TimerHandle | None = None
    _peer_done = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._cancel_head_deadline()

    def eof_received(self) -> bool | None:
        """Keep writing after the client's EOF if its request is complete (a half-close);
        an EOF inside a head or body ends the connection, without a log line."""
        if self.conn.their_state is h11.DONE and self.cycle and not self.cycle.response_complete:
            self._peer_done = True
            return True
        return None

    def on_response_complete(self) -> None:
        if self._peer_done:
            self.transport.close()
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        self._cancel_head_deadline()
        self._head_deadline = self.loop.call_later(self.config.head_timeout_s, self._head_late)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_late(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.debug("closing a connection whose request head did not arrive in time")
            self.transport.close()


class FrontConfig(uvicorn.Config):
    """uvicorn's settings plus the head deadline :class:`HeadTimedH11Protocol` reads."""

    def __init__(self, app: Any, *, head_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.head_timeout_s = head_timeout_s


def build_asgi_app(
    app: App | None, *, health: Health, metrics: BotMetrics, body_timeout_s: float
) -> Starlette:
    """The Starlette app behind the server; without a Bolt ``app`` it serves only
    health and metrics."""

    async def slack_events(request: Request) -> Response:
        assert app is not None
        started = time.perf_counter()
        try:
            body = await read_body(request, limit=MAX_BODY_BYTES, timeout_s=body_timeout_s)
            bolt_request = to_bolt_request(request, body)
        except RequestRefused as refused:
            return refused.response()
        except UnicodeDecodeError:
            return RequestRefused(400, "body_not_utf8").response()
        response = await run_in_threadpool(app.dispatch, bolt_request)
        # Slack's clock: from the request's arrival to Bolt's answer (refusals excluded).
        metrics.ack_seconds.observe(time.perf_counter() - started)
        return to_starlette_response(response)

    async def healthz(request: Request) -> Response:
        ok, body = await run_in_threadpool(health.live)
        return JSONResponse(body, status_code=200 if ok else 503)

    async def readyz(request: Request) -> Response:
        ok, body = await run_in_threadpool(health.ready)
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics_text(request: Request) -> Response:
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        # Collectors may read Redis at scrape time: keep that off the event loop.
        payload = await run_in_threadpool(encode, metrics.registry)
        return Response(payload, headers={"Content-Type": content_type})

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
    ]
    if app is not None:
        routes.append(Route(EVENTS_PATH, slack_events, methods=["POST"]))
    return Starlette(routes=routes)


class HttpFront:
    """Serves the Bolt ``app`` (or, with ``app=None``, health and metrics only) on
    ``host:port``; port 0 picks a free one. The socket is bound here, so a busy port
    fails in the caller."""

    def __init__(
        self,
        app: App | None,
        *,
        health: Health,
        metrics: BotMetrics,
        host: str,
        port: int,
        head_timeout_s: float | None = None,
        body_timeout_s: float | None = None,
        max_connections: int | None = None,
        graceful_s: float | None = None,
    ) -> None:
        self.health = health
        self.graceful_s = GRACEFUL_S if graceful_s is None else graceful_s
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
        asgi = build_asgi_app(
            app,
            health=health,
            metrics=metrics,
            body_timeout_s=BODY_TIMEOUT_S if body_timeout_s is None else body_timeout_s,
        )
        self._config = FrontConfig(
            asgi,
            head_timeout_s=HEAD_TIMEOUT_S if head_timeout_s is None else head_timeout_s,
            http=HeadTimedH11Protocol,
            ws="none",
            lifespan="off",
            log_config=None,  # the process configures logging
            access_log=False,
            server_header=False,
            backlog=LISTEN_BACKLOG,
            timeout_keep_alive=KEEP_ALIVE_S,
            limit_concurrency=MAX_CONNECTIONS if max_connections is None else max_connections,
            timeout_graceful_shutdown=max(1, round(self.graceful_s)),
        )
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def start_in_thread(self) -> None:
        """Serve from a daemon thread; returns once connections are accepted."""
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="http-front"
        )
        self._thread.daemon = True
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP front did not start")
            time.sleep(0.01)
        host, port = self._socket.getsockname()[:2]
        log.info("serving HTTP on %s:%d", host, port)

    def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, then return."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=self.graceful_s + 5)
        self._socket.close()

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT (main thread only): ready once listening,
        draining on the signal, returns after the graceful stop."""
        self.start_in_thread()
        self.health.set_ready()
        wait_for_termination(alive=lambda: self._thread is not None and self._thread.is_alive())
        self.health.set_draining()
        log.info("draining: finishing in-flight requests")
        self.stop()
