"""``ragbot serve`` in Socket Mode (the default), end to end, without Redis.

The app process asks the Slack stand-in for a WebSocket URL with its ``xapp-`` token,
connects to the loopback Socket Mode server, acknowledges a pushed ``app_mention``
envelope on the socket and answers in the thread from its in-process worker, using the
session's indexed Milvus Lite collection, tiny models and the loopback OpenAI server.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.bot_stack import START_TIMEOUT_S, process_env
from tests.fixtures.processes import stop_process
from tests.fixtures.slack_api import BOT_USER_ID, SlackApiStandIn
from tests.fixtures.slack_events import Ack, Sent, bot_messages, wait_for_answer, wait_quiet
from tests.fixtures.socket_mode import SocketModeServer

APP_TOKEN = "xapp-test"


@pytest.fixture
def socket_app(
    bot_index: dict[str, str], socket_mode: SocketModeServer, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``python -m bot.cli serve`` with an app token and no Redis, once it has connected."""
    variables = {
        **bot_index,
        "RAGBOT_REDIS_URL": "",
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_SIGNING_SECRET": "",  # Socket Mode apps have none
        "RAGBOT_METRICS_PORT": "0",  # no fixed exporter port on a shared machine
    }
    env = {k: v for k, v in process_env(variables).items() if not k.lower().endswith("_proxy")}
    log_path = tmp_path / "app.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve"],
            env=env,
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not socket_mode.wait_connected(timeout_s=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                log = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
                raise RuntimeError(f"the app never connected over Socket Mode:\n{log}")
        yield process, log_path
    finally:
        stop_process(process)


def test_socket_mode_app_acks_a_mention_and_answers_in_thread(
    socket_app: tuple[subprocess.Popen[bytes], Path],
    socket_mode: SocketModeServer,
    slack_api: SlackApiStandIn,
    openai_server: object,
    new_user,
):
    process, log_path = socket_app
    user, channel, ts = new_user(), "C1", f"{time.time():.6f}"
    text = f"<@{BOT_USER_ID}> How do I install Milvus Lite?"
    slack_api.seed_message(channel, ts, text, user=user)
    event = {"type": "app_mention", "user": user, "text": text, "ts": ts, "channel": channel}

    started = time.perf_counter()
    envelope_id = socket_mode.push_event({**event, "event_ts": ts})
    ack = socket_mode.wait_for_ack(envelope_id)
    acked_s = time.perf_counter() - started

    sent = Sent(Ack(200, str(ack), acked_s), channel, ts, ts)
    answer = wait_for_answer(slack_api, sent, timeout_s=120)
    wait_quiet(slack_api)

    opened = slack_api.calls_for("apps.connections.open")
    assert opened and opened[0].headers["Authorization"] == f"Bearer {APP_TOKEN}"
    assert acked_s < 3.0
    assert len(socket_mode.acks(envelope_id)) == 1
    assert "Sources: [1]" in answer["text"]
    assert answer.get("thread_ts") == ts
    assert bot_messages(slack_api, channel, ts) == [answer]
    assert process.poll() is None
    assert "Traceback" not in log_path.read_text(encoding="utf-8", errors="replace")
