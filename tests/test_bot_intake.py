"""Intake: every acknowledged question is queued once, or its asker is told why not.

Each test builds the Bolt app in this process on real Redis (the shared one, or a
private ``redis-server`` it may break) and dispatches signed requests into it; no worker
runs, so the tests read what intake queued straight from the Redis stream. The real
``WebClient`` talks to the Slack stand-in, scripted to fail where a test says so.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from slack_bolt import App, BoltResponse
from slack_bolt.request import BoltRequest

from bot.app import build_app, build_intake_client, build_web_client
from bot.intake import (
    BUSY_TEXT,
    EMPTY_QUESTION_TEXT,
    FILES_ONLY_TEXT,
    QUEUE_DOWN_TEXT,
    Intake,
)
from bot.jobs import AskJob, Job, NoticeJob, ReindexJob, job_from_json
from bot.listeners.commands.reindex import ALREADY_RUNNING_TEXT, NOT_ADMIN_TEXT
from bot.queue import InMemoryJobLedger, RedisJobQueue
from bot.runtime import Runtime, build_services
from bot.serve import drain_app
from bot.services import BotServices
from bot.settings import BotSettings
from tests.fixtures.bot_stack import ADMIN_USER
from tests.fixtures.redis_db import RedisServerProcess, _free_port, delete_prefix
from tests.fixtures.slack_api import (
    BOT_TOKEN,
    BOT_USER_ID,
    SIGNING_SECRET,
    SlackApiStandIn,
    event_callback_body,
    sign_request,
    slash_command_body,
)

EVENT_KINDS = ("app_mention", "message")
A_FILE = {"id": "F1", "name": "screenshot.png", "mimetype": "image/png"}


@dataclass(frozen=True, slots=True)
class Mention:
    """An ``app_mention`` as sent, so a test can send it again as Slack's retry."""

    event: dict[str, Any]
    event_id: str

    @property
    def ts(self) -> str:
        return str(self.event["ts"])


@dataclass
class LocalBot:
    """The app, its services and its Redis; ``jobs()`` reads the queue without taking."""

    app: App
    services: BotServices
    intake: Intake
    listeners: ThreadPoolExecutor
    redis: redis.Redis
    prefix: str
    clock: list[float]
    sent: int = 0

    @property
    def stream(self) -> str:
        return f"{self.prefix}jobs"

    def jobs(self) -> list[Job]:
        return [job_from_json(fields[b"job"]) for _, fields in self.redis.xrange(self.stream)]

    def metric(self, name: str, **labels: str) -> float:
        return self.services.metrics.registry.get_sample_value(name, labels) or 0.0

    def idle(self) -> None:
        """Wait until every event sent reached its listener (Bolt runs listeners on its
        own threads after the ack) and intake handled everything handed to it."""
        name = "ragbot_events_received_total"
        eventually(lambda: sum(self.metric(name, kind=k) for k in EVENT_KINDS) >= self.sent)
        time.sleep(0.05)  # from the listener's count to its hand-over
        assert self.intake.wait_idle(timeout_s=15)

    def dispatch(self, body: str, content_type: str) -> BoltResponse:
        """Sign and dispatch one request; its latency is appended to ``clock``."""
        headers = {"content-type": content_type}
        headers.update({k.lower(): v for k, v in sign_request(body, SIGNING_SECRET).items()})
        started = time.perf_counter()
        response = self.app.dispatch(BoltRequest(body=body, headers=headers))
        self.clock.append(time.perf_counter() - started)
        return response

    def mention(self, text: str, *, user: str = "U1", channel: str = "C1", **extra: Any) -> Mention:
        """Send ``@bot text`` (``extra``: more event fields, such as ``files``)."""
        ts = f"{time.time():.6f}"
        event = {"type": "app_mention", "user": user, "channel": channel, "ts": ts}
        event.update(text=f"<@{BOT_USER_ID}> {text}".rstrip(), event_ts=ts, **extra)
        sent = Mention(event, f"Ev{uuid.uuid4().hex[:12]}")
        self.event(sent.event, event_id=sent.event_id)
        return sent

    def retry(self, sent: Mention) -> None:
        """Slack's retry of ``sent``: the same event id and payload."""
        self.event(sent.event, event_id=sent.event_id)

    def event(self, event: dict[str, Any], *, event_id: str) -> None:
        self.sent += 1
        response = self.dispatch(event_callback_body(event, event_id=event_id), "application/json")
        assert response.status == 200, response.body


@pytest.fixture
def local_bot(
    slack_api: SlackApiStandIn, redis_url: str, tmp_path: Path
) -> Iterator[Callable[..., LocalBot]]:
    """Builds a :class:`LocalBot` on ``redis_url=`` (default: the shared Redis) with
    settings changed by keyword; stops its intake and deletes its keys afterwards."""
    built: list[LocalBot] = []

    def build(
        *,
        url: str = redis_url,
        threads: int = 2,
        backlog: int = 100,
        listener_threads: int = 4,
        **overrides: Any,
    ) -> LocalBot:
        prefix = f"ragbot-test:{time.perf_counter_ns():x}:"
        values: dict[str, Any] = {
            "slack_bot_token": BOT_TOKEN,
            "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": slack_api.base_url,
            "redis_url": url,
            "redis_prefix": prefix,
            "admin_user_ids": ADMIN_USER,
            "docs_path": tmp_path,
            "rate_limit": 0,
            **overrides,
        }
        settings = BotSettings(_env_file=None, **values)  # type: ignore[call-arg]
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=0.5)
        services = build_services(settings, client, RedisJobQueue(client, prefix=prefix))
        intake = Intake(
            services,
            build_intake_client(settings, services.metrics),
            threads=threads,
            backlog=backlog,
        )
        listeners = ThreadPoolExecutor(max_workers=listener_threads)
        app = build_app(
            settings,
            services,
            client=build_web_client(settings, services.metrics),
            intake=intake,
            listener_executor=listeners,
        )
        bot = LocalBot(app, services, intake, listeners, client, prefix, [])
        built.append(bot)
        return bot

    yield build
    for bot in built:
        bot.listeners.shutdown(wait=True)
        bot.intake.shutdown(timeout_s=10)
        with contextlib.suppress(redis.RedisError):  # a private Redis refusing writes
            delete_prefix(bot.redis, bot.prefix)
        bot.redis.close()


def eventually(check: Callable[[], Any], *, timeout_s: float = 10.0) -> Any:
    """``check()``'s first truthy result, polling; fails with the last one."""
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, f"still {result!r} after {timeout_s} s"
        time.sleep(0.02)
    return result


def posted_texts(slack_api: SlackApiStandIn) -> list[str]:
    return [c.args["text"] for c in slack_api.calls_for("chat.postMessage") if c.status == 200]


def slack_calls(slack_api: SlackApiStandIn) -> list[str]:
    """The methods called, less the app's start-up ``auth.test``."""
    return [call.method for call in slack_api.calls if call.method != "auth.test"]


# ---- questions ------------------------------------------------------------------------
def test_mention_is_queued_once_then_marked_with_eyes(local_bot, slack_api):
    bot = local_bot()
    sent = bot.mention("How do I connect to Milvus Lite?")
    bot.retry(sent)
    bot.retry(sent)

    [reaction] = slack_api.wait_for("reactions.add")
    bot.idle()
    [job] = bot.jobs()
    assert isinstance(job, AskJob)
    assert (job.channel, job.message_ts, job.thread_ts) == ("C1", sent.ts, sent.ts)
    assert job.text == "How do I connect to Milvus Lite?"
    assert reaction.args["timestamp"] == sent.ts and reaction.args["name"] == "eyes"
    assert slack_calls(slack_api) == ["reactions.add"]  # no placeholder message
    assert bot.metric("ragbot_jobs_enqueued_total", kind="ask") == 1
    assert bot.metric("ragbot_events_duplicate_total") == 2
    assert bot.metric("ragbot_events_received_total", kind="app_mention") == 3
    assert max(bot.clock) < 1.0


@pytest.mark.parametrize("failure", ["drop", "http_500", "http_429", "error"])
def test_a_failing_reaction_still_queues_exactly_one_job(local_bot, slack_api, failure):
    script = {
        "drop": lambda: slack_api.drop("reactions.add"),
        "http_500": lambda: slack_api.fail_http("reactions.add", 500),
        "http_429": lambda: slack_api.fail_http("reactions.add", 429),
        "error": lambda: slack_api.fail_with("reactions.add", "channel_not_found"),
    }
    script[failure]()
    bot = local_bot()
    sent = bot.mention("What does hybrid search fuse?")
    slack_api.wait_for("reactions.add")
    bot.retry(sent)  # still a duplicate: the keys stay claimed once the job is queued

    bot.idle()
    assert [type(job) for job in bot.jobs()] == [AskJob]
    assert slack_calls(slack_api) == ["reactions.add"]  # one try, no retries, no reply


def test_a_rate_limited_channel_does_not_hold_up_the_others(local_bot, slack_api):
    slack_api.fail_http("reactions.add", 429, times=None, match={"channel": "CSLOW"})
    bot = local_bot(threads=1)
    started = time.monotonic()
    for n in range(3):
        bot.mention(f"Slow channel question {n}?", channel="CSLOW", user=f"U{n}")
    fast = bot.mention("Fast channel question?", channel="CFAST")

    eventually(lambda: slack_api.reactions("CFAST", fast.ts))
    assert time.monotonic() - started < 1.0  # no Retry-After sleep on the one intake thread
    bot.idle()
    assert sorted(job.channel for job in bot.jobs()) == ["CFAST", "CSLOW", "CSLOW", "CSLOW"]
    assert len(slack_api.calls_for("reactions.add")) == 4


@pytest.mark.parametrize(
    ("text", "extra", "reply", "reason"),
    [
        ("x" * 40_000, {}, "That message is 40,000 characters long.", "too_long"),
        ("", {}, EMPTY_QUESTION_TEXT, "empty"),
        ("", {"files": [A_FILE]}, FILES_ONLY_TEXT, "files_only"),
    ],
    ids=["too_long", "empty", "files_only"],
)
def test_refused_questions_get_one_notice_and_no_answer(
    local_bot, slack_api, text, extra, reply, reason
):
    bot = local_bot()
    sent = bot.mention(text, **extra)
    bot.retry(sent)

    bot.idle()
    [notice] = bot.jobs()
    assert isinstance(notice, NoticeJob)
    assert notice.text.startswith(reply)
    assert (notice.channel, notice.thread_ts, notice.user) == ("C1", sent.ts, "U1")
    assert not notice.ephemeral
    assert slack_calls(slack_api) == []  # a worker posts it; intake neither replies nor reacts
    assert bot.metric("ragbot_jobs_enqueued_total", kind="notice") == 1
    assert bot.metric("ragbot_intake_refused_total", reason=reason) == 1


def test_a_file_only_dm_gets_a_notice(local_bot, slack_api):
    bot = local_bot()
    ts = f"{time.time():.6f}"
    event = {"type": "message", "subtype": "file_share", "channel_type": "im", "text": ""}
    event.update(user="U1", channel="D1", ts=ts, event_ts=ts, files=[A_FILE])
    bot.event(event, event_id="EvDmFile")

    bot.idle()
    [notice] = bot.jobs()
    assert isinstance(notice, NoticeJob) and notice.text == FILES_ONLY_TEXT
    assert notice.channel == "D1"
    assert bot.metric("ragbot_events_received_total", kind="message") == 1


def test_a_rate_limited_asker_gets_a_private_notice(local_bot, slack_api):
    bot = local_bot(rate_limit=1)
    bot.mention("First question?")
    bot.idle()
    bot.mention("Second question?")

    bot.idle()
    jobs = bot.jobs()
    assert [type(job) for job in jobs] == [AskJob, NoticeJob]
    assert jobs[1].ephemeral and jobs[1].user == "U1"
    assert jobs[1].text.startswith("You're asking faster than I can keep up.")
    assert bot.metric("ragbot_rate_limited_total") == 1
    assert slack_calls(slack_api) == ["reactions.add"]


# ---- the queue down -----------------------------------------------------------------
def test_queue_down_tells_the_asker_and_frees_the_event_for_slacks_retry(local_bot, slack_api):
    bot = local_bot()
    bot.redis.set(bot.stream, "not a stream")  # XADD fails while de-duplication still works
    sent = bot.mention("What does BM25 match?")

    bot.idle()
    assert posted_texts(slack_api) == [QUEUE_DOWN_TEXT]
    assert bot.redis.keys(f"{bot.prefix}dedup:*") == []
    bot.redis.delete(bot.stream)
    bot.retry(sent)

    bot.idle()
    [job] = bot.jobs()
    assert isinstance(job, AskJob) and job.message_ts == sent.ts
    assert posted_texts(slack_api) == [QUEUE_DOWN_TEXT]
    assert bot.metric("ragbot_intake_refused_total", reason="queue_down") == 1
    assert bot.metric("ragbot_jobs_enqueued_total", kind="ask") == 1


def test_a_network_error_on_the_queue_down_reply_is_contained(local_bot, slack_api):
    slack_api.drop("chat.postMessage")
    bot = local_bot()
    bot.redis.set(bot.stream, "not a stream")
    sent = bot.mention("What does BM25 match?")

    bot.idle()
    assert slack_calls(slack_api) == ["chat.postMessage"]  # tried once, the error caught
    assert bot.redis.keys(f"{bot.prefix}dedup:*") == []
    bot.redis.delete(bot.stream)
    bot.retry(sent)
    bot.idle()
    assert [type(job) for job in bot.jobs()] == [AskJob]


def test_redis_down_tells_the_asker_and_the_retry_is_queued_once_it_is_back(
    local_bot, slack_api, redis_server: RedisServerProcess
):
    bot = local_bot(url=redis_server.url)
    redis_server.stop()
    try:
        sent = bot.mention("How do I install Milvus Lite?")
        bot.idle()
        assert posted_texts(slack_api) == [QUEUE_DOWN_TEXT]
    finally:
        redis_server.start()
    bot.retry(sent)

    bot.idle()
    assert [type(job) for job in bot.jobs()] == [AskJob]
    assert posted_texts(slack_api) == [QUEUE_DOWN_TEXT]


def fill_until_oom(client: redis.Redis) -> None:
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1mb")
    for n in range(10_000):
        try:
            client.set(f"ballast:{n}", b"x" * 10_000)
        except redis.exceptions.OutOfMemoryError:
            return
    raise AssertionError("Redis never ran out of memory")


def make_read_only(client: redis.Redis) -> None:
    """A failover's leftover: a replica of a primary that is gone."""
    client.execute_command("REPLICAOF", "127.0.0.1", str(_free_port()))
    with pytest.raises(redis.exceptions.ReadOnlyError):
        client.set("probe", 1)


@pytest.mark.parametrize("refuse_writes", [fill_until_oom, make_read_only], ids=["oom", "readonly"])
def test_redis_refusing_writes_tells_the_asker_in_words(
    local_bot, slack_api, redis_server: RedisServerProcess, refuse_writes
):
    bot = local_bot(url=redis_server.url, rate_limit=5)
    admin = redis.Redis.from_url(redis_server.url)
    try:
        refuse_writes(admin)
        bot.mention("What is Milvus Lite?")
        bot.idle()
    finally:
        admin.close()

    assert posted_texts(slack_api) == [QUEUE_DOWN_TEXT]
    assert slack_calls(slack_api) == ["chat.postMessage"]
    assert bot.metric("ragbot_intake_refused_total", reason="queue_down") == 1


# ---- a full backlog -----------------------------------------------------------------
def test_a_full_intake_backlog_tells_the_asker_to_ask_again(local_bot, slack_api):
    held = slack_api.hold("reactions.add")  # keeps the only intake thread busy
    bot = local_bot(threads=1, backlog=1)
    bot.mention("First?", channel="C1")
    held.wait_arrived()
    bot.mention("Second?", channel="C2")  # waits in the backlog
    third = bot.mention("Third?", channel="C3")  # no room: told to ask again

    eventually(lambda: BUSY_TEXT in posted_texts(slack_api))
    held.release()
    bot.idle()
    assert sorted(job.channel for job in bot.jobs()) == ["C1", "C2"]
    [busy] = [c for c in slack_api.calls_for("chat.postMessage") if c.args["text"] == BUSY_TEXT]
    assert (busy.args["channel"], busy.args["thread_ts"]) == ("C3", third.ts)
    assert bot.metric("ragbot_intake_refused_total", reason="overloaded") == 1
    assert max(bot.clock) < 1.0


# ---- shutdown -----------------------------------------------------------------------
def test_events_acknowledged_before_shutdown_are_all_queued(local_bot, caplog):
    """Bolt acks first and runs listeners later: draining waits for the listeners before
    it shuts intake, so no acknowledged event is lost or blamed on overload."""
    bot = local_bot(listener_threads=1)
    gate = threading.Event()
    bot.listeners.submit(gate.wait, 10)  # the only listener thread is busy
    for n in range(3):
        bot.mention(f"Question {n}?", channel=f"C{n}")  # acknowledged; listener still queued
    threading.Timer(0.2, gate.set).start()
    runtime = Runtime(redis=bot.redis, services=bot.services, ledger=InMemoryJobLedger())

    with caplog.at_level(logging.WARNING, logger="bot"):
        assert drain_app(bot.listeners, bot.intake, runtime, grace_s=10)

    assert sorted(job.channel for job in bot.jobs()) == ["C0", "C1", "C2"]
    assert bot.metric("ragbot_intake_refused_total", reason="overloaded") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_an_event_after_shutdown_is_logged_as_such(local_bot, caplog):
    bot = local_bot()
    assert bot.intake.shutdown(timeout_s=5)
    event = {"channel": "C9", "ts": "1700000000.000100", "user": "U9"}

    with caplog.at_level(logging.ERROR, logger="bot.intake"):
        bot.intake.submit(lambda: None, bot_user_id=BOT_USER_ID, event=event)

    [record] = [r for r in caplog.records if r.name == "bot.intake"]
    message = record.getMessage()
    assert "shut down" in message and "overloaded" not in message
    assert all(value in message for value in event.values())
    assert bot.metric("ragbot_intake_refused_total", reason="shut_down") == 1
    assert bot.metric("ragbot_intake_refused_total", reason="overloaded") == 0


# ---- /reindex -----------------------------------------------------------------------
def reindex(bot: LocalBot, slack_api: SlackApiStandIn, user: str, text: str = "") -> float:
    """Send ``/reindex text``; returns the acknowledgement's latency (its body is empty)."""
    body = slash_command_body(
        "/reindex", text, user_id=user, channel_id="C1", response_url=slack_api.response_url()
    )
    response = bot.dispatch(body, "application/x-www-form-urlencoded")
    assert response.status == 200 and response.body == ""
    return bot.clock[-1]


def responses(slack_api: SlackApiStandIn, count: int) -> list[dict[str, Any]]:
    return [call.args for call in slack_api.wait_for("response_url", count)]


def test_reindex_acks_before_asking_slack_who_the_caller_is(local_bot, slack_api):
    held = slack_api.hold("users.info")
    bot = local_bot()
    latency = reindex(bot, slack_api, "USTRANGER")

    held.wait_arrived()
    assert latency < 1.0 and slack_api.calls_for("response_url") == []
    held.release()
    [reply] = responses(slack_api, 1)
    assert reply["text"] == NOT_ADMIN_TEXT and reply["response_type"] == "ephemeral"
    assert bot.jobs() == []
    assert bot.metric("ragbot_events_received_total", kind="command") == 1


def test_reindex_by_an_admin_is_queued_and_a_second_one_refused(local_bot, slack_api):
    held = slack_api.hold("chat.postMessage")  # the progress DM: the ack must not wait
    bot = local_bot()
    latency = reindex(bot, slack_api, ADMIN_USER)
    held.wait_arrived()
    held.release()
    [started] = responses(slack_api, 1)
    reindex(bot, slack_api, ADMIN_USER)
    reindex(bot, slack_api, ADMIN_USER, "../..")

    texts = {reply["text"] for reply in responses(slack_api, 3)[1:]}
    assert latency < 1.0
    assert started["text"].startswith("Re-indexing the docs.")
    assert ALREADY_RUNNING_TEXT in texts
    assert any(text.startswith("There is no doc set named `../..`") for text in texts)
    [job] = bot.jobs()
    assert isinstance(job, ReindexJob) and job.user == ADMIN_USER
    assert bot.metric("ragbot_jobs_enqueued_total", kind="reindex") == 1
