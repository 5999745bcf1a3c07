"""The HTTP front over real sockets: signed requests reach Bolt, and slow, stalled, huge or
half-closed clients are refused or dropped without holding the server up."""

from __future__ import annotations

import json
import logging
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.health import CheckResult, Health
from bot.http_front import MAX_BODY_BYTES, HttpFront
from bot.metrics import BotMetrics
from tests.fixtures.bot_stack import REPO_ROOT
from tests.fixtures.slack_api import (
    BOT_USER_ID,
    SIGNING_SECRET,
    event_callback_body,
    sign_request,
    slash_command_body,
)

TIMEOUT_S = 1.0  # head and body deadlines of the fronts under test
STALLED = 150


class Recorder:
    """What the Bolt app under test received, and a slow slash command to keep a request
    in flight."""

    def __init__(self) -> None:
        self.mentions: list[dict[str, Any]] = []
        self.mentioned = threading.Event()
        self.slow_started = threading.Event()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def bolt_app(slack_client: WebClient, recorder: Recorder) -> App:
    app = App(client=slack_client, signing_secret=SIGNING_SECRET)

    @app.event("app_mention")
    def on_mention(event: dict[str, Any]) -> None:
        recorder.mentions.append(event)
        recorder.mentioned.set()

    @app.command("/slow")
    def slow(ack: Ack) -> None:
        recorder.slow_started.set()
        time.sleep(1.0)
        ack("done")

    return app


@pytest.fixture
def start_front(bolt_app: App) -> Iterator[Callable[..., HttpFront]]:
    fronts: list[HttpFront] = []

    def start(**options: Any) -> HttpFront:
        options = {"head_timeout_s": TIMEOUT_S, "body_timeout_s": TIMEOUT_S, **options}
        front = HttpFront(
            bolt_app,
            health=options.pop("health", Health()),
            metrics=options.pop("metrics", BotMetrics()),
            host="127.0.0.1",
            port=0,
            **options,
        )
        front.start_in_thread()
        fronts.append(front)
        return front

    yield start
    for front in fronts:
        front.stop()


def mention_body(event_id: str = "Ev1") -> str:
    event = {
        "type": "app_mention",
        "user": "U1",
        "text": f"<@{BOT_USER_ID}> hello",
        "channel": "C1",
        "ts": "1.0",
        "event_ts": "1.0",
    }
    return event_callback_body(event, event_id=event_id)


def post(
    front: HttpFront, body: str, *, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    signed = sign_request(body, SIGNING_SECRET) if headers is None else headers
    request = urllib.request.Request(
        f"http://127.0.0.1:{front.port}/slack/events",
        data=body.encode(),
        headers={"Content-Type": "application/json", **signed},
    )
    return _open(request, timeout)


def get(front: HttpFront, path: str) -> tuple[int, bytes]:
    return _open(urllib.request.Request(f"http://127.0.0.1:{front.port}{path}"), 5.0)


def _open(request: urllib.request.Request, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def connect(front: HttpFront) -> socket.socket:
    return socket.create_connection(("127.0.0.1", front.port), timeout=5)


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_signed_event_is_acked_dispatched_and_timed(start_front, recorder):
    metrics = BotMetrics()
    front = start_front(metrics=metrics)

    status, _ = post(front, mention_body())

    assert status == 200
    assert recorder.mentioned.wait(5)
    assert recorder.mentions[0]["text"].endswith("hello")
    status, text = get(front, "/metrics")
    assert status == 200
    assert "ragbot_ack_seconds_count 1.0" in text.decode()


def test_bad_signature_is_refused(start_front, recorder):
    front = start_front()
    body = mention_body()
    forged = sign_request(body, "another-secret")

    assert post(front, body, headers=forged)[0] == 401
    assert post(front, body, headers={})[0] == 401
    assert not recorder.mentioned.wait(0.3)


def test_a_huge_body_is_refused_before_it_is_read(start_front):
    front = start_front()
    size = 5 * 1024 * 1024
    with connect(front) as sock:
        head = f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"
        sock.sendall(head.encode() + bytes(65536))
        started = time.monotonic()
        answer = read_until_closed(sock)
        assert time.monotonic() - started < 1.0
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert b"payload_too_large" in answer
        with pytest.raises(OSError):  # nobody reads the rest
            for _ in range(size // 65536):
                sock.sendall(bytes(65536))


def test_a_chunked_body_is_cut_off_at_the_limit(start_front):
    front = start_front(body_timeout_s=10.0)
    chunk = b"x" * 65536
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    with connect(front) as sock:
        sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n")
        sock.sendall(b"\r\n")
        sent = 0
        # One chunk at a time, as a streaming client would, until the server answers.
        while not select.select([sock], [], [], 0.05)[0]:
            sock.sendall(framed)
            sent += len(chunk)
            assert sent < 2 * MAX_BODY_BYTES
        answer = read_until_closed(sock)

    assert answer.startswith(b"HTTP/1.1 413 ")
    assert sent > MAX_BODY_BYTES


def test_a_slow_body_gets_408(start_front):
    front = start_front()
    with connect(front) as sock:
        sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        answer = read_until_closed(sock)

    assert answer.startswith(b"HTTP/1.1 408 ")
    assert TIMEOUT_S * 0.9 < time.monotonic() - started < TIMEOUT_S + 2


def test_stalled_connections_do_not_hold_up_signed_requests(start_front, recorder):
    front = start_front()
    stalled = [connect(front) for _ in range(STALLED)]
    try:
        for sock in stalled:
            sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-")
        opened = time.monotonic()
        for number in range(5):
            started = time.monotonic()
            assert post(front, mention_body(f"Ev{number}"))[0] == 200
            assert time.monotonic() - started < 0.5

        for sock in stalled:
            sock.settimeout(max(0.1, opened + TIMEOUT_S + 3 - time.monotonic()))
            assert read_until_closed(sock) == b""  # closed by the head deadline
        assert time.monotonic() - opened < TIMEOUT_S + 3
    finally:
        for sock in stalled:
            sock.close()


def test_a_silent_connection_is_closed_by_the_head_deadline(start_front):
    front = start_front()
    with connect(front) as sock:
        started = time.monotonic()
        assert read_until_closed(sock) == b""
    assert TIMEOUT_S * 0.9 < time.monotonic() - started < TIMEOUT_S + 2


def test_half_closed_and_dropped_connections_log_no_traceback(start_front, caplog):
    front = start_front()
    caplog.set_level(logging.DEBUG)
    body = mention_body().encode()
    signed = sign_request(body.decode(), SIGNING_SECRET)
    head = "".join(f"{k}: {v}\r\n" for k, v in signed.items())
    request = (
        f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{head}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    for partial in (request[:20], request[:-10], b""):
        with connect(front) as sock:
            sock.sendall(partial)
            sock.shutdown(socket.SHUT_WR)
            assert read_until_closed(sock) == b""
    with connect(front) as sock:  # the whole request, then a half-close: still answered
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        assert read_until_closed(sock).startswith(b"HTTP/1.1 200 ")
    with connect(front) as sock:  # reset mid-body
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.sendall(request[:-10])
    time.sleep(0.3)

    assert get(front, "/healthz")[0] == 200
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert "Traceback" not in caplog.text


def test_healthz_and_readyz_follow_health(start_front):
    health = Health(check_timeout_s=0.3)
    health.add_check("redis", lambda: CheckResult(True, "ping 0.1 ms"))
    health.add_check("milvus", lambda: time.sleep(2) or CheckResult(True))
    front = start_front(health=health)

    assert get(front, "/healthz")[0] == 200
    started = time.monotonic()
    status, body = get(front, "/readyz")
    assert status == 503 and time.monotonic() - started < 1.5
    details = json.loads(body)
    assert details["state"] == "starting"
    assert details["checks"]["redis"] == {"ok": True, "detail": "ping 0.1 ms"}
    assert details["checks"]["milvus"]["ok"] is False  # hung: reported, not waited for

    health.set_ready()
    status, body = get(front, "/readyz")
    assert status == 200 and json.loads(body)["ready"] is True

    health.add_check("workers", lambda: CheckResult(False, "all dead"), liveness=True)
    assert get(front, "/healthz")[0] == 503
    assert get(front, "/readyz")[0] == 503
    health.set_draining()
    assert json.loads(get(front, "/readyz")[1])["state"] == "draining"


def test_other_paths_and_methods(start_front):
    front = start_front()

    assert get(front, "/slack/events")[0] == 405
    assert get(front, "/nothing")[0] == 404


def test_stop_lets_an_in_flight_request_finish(start_front, recorder):
    front = start_front()
    body = slash_command_body("/slow", "", user_id="U1", channel_id="C1")
    answer: list[tuple[int, bytes]] = []
    signed = sign_request(body, SIGNING_SECRET)
    headers = {**signed, "Content-Type": "application/x-www-form-urlencoded"}
    client = threading.Thread(target=lambda: answer.append(post(front, body, headers=headers)))
    client.start()
    assert recorder.slow_started.wait(5)

    front.stop()
    client.join(5)

    assert answer and answer[0][0] == 200 and b"done" in answer[0][1]
    with pytest.raises(OSError):
        connect(front)


SERVE_SCRIPT = """
import logging, sys
from bot.health import Health
from bot.http_front import HttpFront
from bot.metrics import BotMetrics
logging.basicConfig(level=logging.INFO)
front = HttpFront(None, health=Health(), metrics=BotMetrics(), host="127.0.0.1", port=0)
print(front.port, flush=True)
front.run()
print("returned", flush=True)
"""


def test_run_serves_until_sigterm_then_returns():
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        url = f"http://127.0.0.1:{port}/readyz"
        deadline = time.monotonic() + 10
        while _open(urllib.request.Request(url), 2)[0] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)

        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()

    assert process.returncode == 0, err
    assert "returned" in out
    assert "Traceback" not in err
