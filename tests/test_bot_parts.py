"""The bot's pure pieces: reading a question out of a message, deciding which messages are
questions, which folders ``/reindex`` may touch, and the lease that keeps a running job
from being claimed twice."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bot.conversation_state import thread_registry
from bot.jobs import AskJob
from bot.listeners.events.message import is_question
from bot.local_queue import InMemoryJobQueue
from bot.text import mentions, question_from_text
from bot.worker import JobLease


class _Services:
    """Just what ``is_question`` reads."""

    def __init__(self) -> None:
        self.threads = thread_registry(None, prefix="t:")


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("<@UBOT> how do I index?", "how do I index?"),
        ("<@UBOT|ragbot>   what is   BM25?", "what is BM25?"),
        (
            "ask <@U2> about <https://milvus.io/docs|the docs> &amp; <#C1|general>",
            "ask <@U2> about the docs & #general",
        ),
        ("<!here> <@UBOT> is <mailto:a@b.c> right?", "is mailto:a@b.c right?"),
        ("<@UBOT>", ""),
    ],
)
def test_question_from_text_strips_the_bot_and_slack_markup(text: str, question: str):
    assert question_from_text(text, bot_user_id="UBOT") == question


def test_mentions_finds_only_that_user():
    assert mentions("hi <@UBOT|bot>", "UBOT")
    assert not mentions("hi <@U2>", "UBOT")


def _event(**fields: object) -> dict:
    return {"type": "message", "user": "U1", "channel": "C1", "ts": "2.0", "text": "hi", **fields}


def test_is_question_takes_dms_and_replies_in_threads_the_bot_answered():
    services = _Services()
    services.threads.remember("C1", "1.0")
    ask = lambda event: is_question(event, bot_user_id="UBOT", services=services)  # noqa: E731

    assert ask(_event(channel_type="im"))
    assert ask(_event(thread_ts="1.0"))
    assert ask(_event(thread_ts="1.0", subtype="file_share"))
    assert not ask(_event())  # a channel message that starts no known thread
    assert not ask(_event(thread_ts="9.0"))  # a thread the bot never joined
    assert not ask(_event(thread_ts="1.0", text="<@UBOT> again"))  # app_mention handles it
    assert not ask(_event(thread_ts="1.0", subtype="message_changed"))
    assert not ask(_event(channel_type="im", bot_id="B2"))
    assert not ask(_event(channel_type="im", user="UBOT"))


def test_job_lease_keeps_a_slow_job_from_being_claimed():
    queue = InMemoryJobQueue(stale_after_ms=300)
    queue.enqueue(AskJob("j1", "C1", "1.0", "1.0", "U1", "q"))
    delivery = queue.take("w1", block_ms=0)
    assert delivery is not None

    with JobLease(queue, delivery, interval_s=0.1):
        time.sleep(0.6)
        assert queue.claim_stale("w2") == []
    time.sleep(0.4)
    [claimed] = queue.claim_stale("w2")
    assert claimed.job.job_id == "j1" and claimed.attempts == 2


def test_the_slack_app_process_never_loads_the_engine() -> None:
    """With Redis, ``ragbot serve`` only acknowledges and queues: importing everything it
    runs must not pull in the model libraries or Milvus (seconds of start-up and memory)."""
    code = (
        "import sys, bot.cli, bot.serve, bot.app, bot.intake, bot.http_front, bot.jobs_cli\n"
        "heavy = {'torch', 'transformers', 'sentence_transformers', 'pymilvus'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()
    assert loaded == "[]"
