"""A threaded HTTP front for the Bolt app: ``POST /slack/events`` and ``GET /healthz``.

Bolt's own development server handles one request at a time; Slack sends bursts
(retries, many mentions at once) and expects every answer within 3 seconds, so each
request here gets its own thread. Events, slash commands and interactivity all
arrive on the one path; Bolt tells them apart and checks the signature.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from slack_bolt import App, BoltRequest, BoltResponse

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
MAX_BODY_BYTES = 1_000_000  # Slack payloads are far smaller; refuse anything huge.
LISTEN_BACKLOG = 256  # connections waiting for accept(); the stdlib's 5 drops bursts


class _BurstTolerantServer(ThreadingHTTPServer):
    """A thread per connection and a deep accept queue, so a burst of events is not
    left waiting on TCP retransmits (a full backlog costs a client a whole second)."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG


def content_length(header: str | None) -> int:
    """The request body's size in bytes; -1 when the header is not a number."""
    try:
        return int(header or 0)
    except ValueError:
        return -1


def refuse_post(path: str, length: int) -> tuple[int, dict[str, object]] | None:
    """The HTTP status and JSON body refusing a POST, or None to hand it to Bolt."""
    if path != EVENTS_PATH:
        return 404, {"ok": False, "error": "not_found"}
    if length < 0:
        return 400, {"ok": False, "error": "bad_content_length"}
    if length > MAX_BODY_BYTES:
        return 413, {"ok": False, "error": "payload_too_large"}
    return None


def make_handler(
    app: App, *, healthy: Callable[[], bool] = lambda: True
) -> type[BaseHTTPRequestHandler]:
    class SlackEventsHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes; with Nagle's algorithm on, the body
        # waits for the client's delayed ACK (40 ms on Linux) before it is sent.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http %s", format % args)

        def do_GET(self) -> None:
            if self.path.partition("?")[0] == "/healthz":
                ok = healthy()
                self._send(200 if ok else 503, {"ok": ok})
            else:
                self._send(404, {"ok": False, "error": "not_found"})

        def do_POST(self) -> None:
            path, _, query = self.path.partition("?")
            length = content_length(self.headers.get("Content-Length"))
            refusal = refuse_post(path, length)
            if refusal is not None:
                self.close_connection = True  # the unread body would spoil the next request
                self._send(*refusal)
                return
            body = self.rfile.read(length).decode("utf-8", errors="replace")
            request = BoltRequest(body=body, query=query, headers=dict(self.headers.items()))
            response: BoltResponse = app.dispatch(request)
            headers = {k: v for k, vs in response.headers.items() for v in vs}
            self._send(response.status, response.body, headers=headers)

        def _send(
            self,
            status: int,
            body: str | dict[str, object],
            *,
            headers: dict[str, str] | None = None,
        ) -> None:
            payload = (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
            self.send_response(status)
            for name, value in (headers or {"Content-Type": "application/json"}).items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return SlackEventsHandler


class SlackHttpServer:
    """Serves the Bolt app on ``host:port`` until :meth:`shutdown`; port 0 picks a free one."""

    def __init__(
        self, app: App, *, host: str, port: int, healthy: Callable[[], bool] = lambda: True
    ) -> None:
        self._server = _BurstTolerantServer((host, port), make_handler(app, healthy=healthy))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def serve_forever(self) -> None:
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._server.server_close()

    def start_in_thread(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="slack-http", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
