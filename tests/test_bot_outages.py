"""Milvus and Redis going away under a running bot: what users read, and the recovery.

Each test runs its own bot in this process (the app on its real HTTP server, one
worker thread) so it can point it at a Milvus or a Redis it is allowed to stop.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from bot.answering import SEARCH_DOWN_FINAL, SEARCH_DOWN_RETRYING
from bot.intake import QUEUE_DOWN_TEXT
from tests.fixtures.bot_stack import MilvusLiteServer, bot_settings, index_docs
from tests.fixtures.slack_events import ACK_BUDGET_S, bot_messages, wait_for_answer


@pytest.fixture(scope="module")
def milvus_to_stop(
    tmp_path_factory: pytest.TempPathFactory, bot_config: dict[str, str]
) -> Iterator[MilvusLiteServer]:
    """A Milvus server of this module's own, holding the docs' index."""
    folder = tmp_path_factory.mktemp("milvus-to-stop")
    server = MilvusLiteServer(folder / "data", log_path=folder / "milvus.log")
    server.start()
    try:
        index_docs(bot_settings({**bot_config, "RAGBOT_MILVUS_URI": server.uri}))
        yield server
    finally:
        server.stop()


def wait_for_text(slack_api, sent, text: str, *, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in [m.get("text") for m in bot_messages(slack_api, sent.channel, sent.ts)]:
        assert time.monotonic() < deadline, bot_messages(slack_api, sent.channel, sent.ts)
        time.sleep(0.05)


def readiness(url: str) -> tuple[int, bool]:
    """``/readyz``'s status and whether its Redis check passed."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    return status, bool(json.loads(body)["checks"]["redis"]["ok"])


def test_search_index_outage_is_announced_and_answered_on_recovery(
    milvus_to_stop, in_thread_bot, events_to, slack_api, new_user
):
    bot = in_thread_bot(milvus_uri=milvus_to_stop.uri, job_max_attempts=6)
    events = events_to(bot.url)

    milvus_to_stop.stop()
    try:
        sent = events.mention("How do I install Milvus Lite?", user=new_user())
        wait_for_text(slack_api, sent, SEARCH_DOWN_RETRYING)
    finally:
        milvus_to_stop.start()
    answer = wait_for_answer(slack_api, sent, timeout_s=40)

    assert "Sources: [1]" in answer["text"]
    assert bot_messages(slack_api, sent.channel, sent.ts) == [answer]


def test_search_index_outage_past_the_last_attempt_gets_a_final_message(
    milvus_to_stop, in_thread_bot, events_to, slack_api, new_user
):
    bot = in_thread_bot(milvus_uri=milvus_to_stop.uri, job_max_attempts=2)
    events = events_to(bot.url)

    milvus_to_stop.stop()
    try:
        sent = events.mention("How do I install Milvus Lite?", user=new_user())
        reply = wait_for_answer(slack_api, sent, timeout_s=30)
    finally:
        milvus_to_stop.start()

    assert reply["text"] == SEARCH_DOWN_FINAL
    assert len(bot_messages(slack_api, sent.channel, sent.ts)) == 1


def test_redis_outage_tells_the_asker_and_the_bot_recovers_when_it_returns(
    redis_server, milvus_to_stop, in_thread_bot, events_to, slack_api, new_user
):
    bot = in_thread_bot(redis_url=redis_server.url, milvus_uri=milvus_to_stop.uri)
    events = events_to(bot.url)
    user = new_user()

    redis_server.stop()
    try:
        sent = events.mention("What does hybrid search combine?", user=user)
        assert sent.ack.status == 200 and sent.ack.seconds < ACK_BUDGET_S
        assert wait_for_answer(slack_api, sent, timeout_s=30)["text"] == QUEUE_DOWN_TEXT
        assert readiness(bot.url) == (200, False)  # still takes events; Redis shown down
    finally:
        redis_server.start()

    assert readiness(bot.url) == (200, True)
    again = events.mention("What does hybrid search combine?", user=user)
    answer = wait_for_answer(slack_api, again, timeout_s=40)
    assert "Sources: [1]" in answer["text"]
    assert len(bot_messages(slack_api, sent.channel, sent.ts)) == 1
