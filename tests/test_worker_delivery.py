"""One post per job: metadata-tagged answers, DONE jobs skipped, fencing, and a worker
dying between its post and its acknowledgement. Real Redis, the Slack stand-in."""

from __future__ import annotations

import threading
import time

import pytest
from slack_sdk import WebClient

from bot.jobs import JobState
from bot.metrics import BotMetrics
from bot.posting import ANSWER_EVENT_TYPE
from tests.fixtures.slack_api import BOT_TOKEN
from tests.fixtures.worker_parts import (
    CountingPipeline,
    bot_replies,
    build_worker,
    counter,
    memory_parts,
    question,
    redis_parts,
    tagged,
)


class Crash(BaseException):
    """Stands for the process dying: nothing in the worker catches it."""


@pytest.fixture(params=["redis", "memory"])
def parts(request: pytest.FixtureRequest):
    if request.param == "memory":
        return memory_parts(stale_after_ms=60_000)
    client = request.getfixturevalue("redis_client")
    return redis_parts(client, request.getfixturevalue("redis_prefix"), stale_after_ms=60_000)


def test_answer_is_one_tagged_message_and_the_eyes_come_off(slack_api, parts) -> None:
    queue, ledger = parts
    metrics = BotMetrics()
    pipeline = CountingPipeline()
    worker = build_worker(slack_api, queue=queue, ledger=ledger, pipeline=pipeline, metrics=metrics)
    job = question(slack_api)
    queue.enqueue(job)

    assert worker.run(stop=_never(), burst=True) == 1

    [message] = bot_replies(slack_api, job)
    assert message["metadata"]["event_type"] == ANSWER_EVENT_TYPE
    assert tagged(message) == job.job_id
    assert "Answer to: How do I install it?" in message["text"]
    assert slack_api.reactions(job.channel, job.message_ts) == set()
    assert ledger.state(job.job_id) is JobState.DONE
    assert ledger.posted_ts(job.job_id) == message["ts"]
    assert queue.depth() == 0 and pipeline.runs == 1
    assert counter(metrics.jobs_finished, outcome="done") == 1
    assert counter(metrics.cache_misses, cache="answer") == 1
    for stage in ("queue_wait", "embed", "generate", "total"):
        labels = {"stage": stage}
        assert metrics.registry.get_sample_value("ragbot_answer_seconds_count", labels) == 1


def test_a_job_already_done_is_acknowledged_without_running(slack_api, parts) -> None:
    queue, ledger = parts
    metrics = BotMetrics()
    pipeline = CountingPipeline()
    worker = build_worker(slack_api, queue=queue, ledger=ledger, pipeline=pipeline, metrics=metrics)
    job = question(slack_api)
    queue.enqueue(job)
    ledger.mark_done(job.job_id)

    worker.run(stop=_never(), burst=True)

    assert pipeline.runs == 0 and queue.depth() == 0
    assert bot_replies(slack_api, job) == []
    assert counter(metrics.jobs_finished, outcome="skipped") == 1


def test_a_worker_whose_job_was_claimed_by_another_does_not_post(slack_api, parts) -> None:
    queue, ledger = parts
    metrics = BotMetrics()
    job = question(slack_api)
    queue.enqueue(job)
    first = queue.take("w1", block_ms=100)
    claimed = []

    class StolenMidway(CountingPipeline):
        def ask(self, text, *, history=None):  # type: ignore[no-untyped-def]
            claimed.extend(queue.claim_stale("w2", min_idle_ms=0))
            return CountingPipeline.ask(self, text, history=history)

    loser = build_worker(
        slack_api, queue=queue, ledger=ledger, pipeline=StolenMidway(), metrics=metrics
    )
    loser.process(first)

    assert bot_replies(slack_api, job) == []
    assert counter(metrics.jobs_finished, outcome="lease_lost") == 1
    assert queue.depth() == 1, "not acknowledged: the job is the other worker's now"
    winner = build_worker(slack_api, queue=queue, ledger=ledger, name="w2")
    winner.process(claimed[0])
    assert len(bot_replies(slack_api, job)) == 1
    assert queue.depth() == 0


def test_a_newer_fence_token_stops_the_older_delivery(slack_api, parts) -> None:
    queue, ledger = parts
    metrics = BotMetrics()
    job = question(slack_api)
    queue.enqueue(job)

    class Overtaken(CountingPipeline):
        def ask(self, text, *, history=None):  # type: ignore[no-untyped-def]
            ledger.mark_running(job.job_id, "a-newer-delivery")
            return CountingPipeline.ask(self, text, history=history)

    worker = build_worker(
        slack_api, queue=queue, ledger=ledger, pipeline=Overtaken(), metrics=metrics
    )
    worker.run(stop=_never(), burst=True)

    assert bot_replies(slack_api, job) == []
    assert counter(metrics.jobs_finished, outcome="lease_lost") == 1


@pytest.mark.parametrize("dies_in", ["record_posted", "unreact"])
def test_a_worker_dying_between_post_and_ack_leaves_one_updated_message(
    slack_api, redis_client, redis_prefix, dies_in: str
) -> None:
    queue, ledger = redis_parts(redis_client, redis_prefix, stale_after_ms=200)
    job = question(slack_api)
    queue.enqueue(job)
    doomed = build_worker(slack_api, queue=queue, ledger=ledger, name="doomed")

    if dies_in == "record_posted":  # posted, but its ts never reached the ledger
        doomed.poster.ledger = _LedgerCrashingOn(ledger, "record_posted")  # type: ignore[assignment]
    else:  # posted and recorded, not yet DONE
        doomed.poster.client = _ClientCrashingOnUnreact(
            token=BOT_TOKEN, base_url=slack_api.base_url, retry_handlers=[]
        )
    with pytest.raises(Crash):
        doomed.run(stop=_never(), burst=True)
    [first] = bot_replies(slack_api, job)

    pipeline = CountingPipeline()
    survivor = build_worker(slack_api, queue=queue, ledger=ledger, pipeline=pipeline, name="s")
    second = _take_when_stale(queue, "s")
    assert second.attempts == 2
    survivor.process(second)

    assert bot_replies(slack_api, job) == [slack_api.message(job.channel, first["ts"])]
    assert len(slack_api.calls_for("chat.postMessage")) == 1
    updates = slack_api.calls_for("chat.update")
    assert [u.args["ts"] for u in updates] == [first["ts"]]
    if dies_in == "record_posted":
        [lookup] = slack_api.calls_for("conversations.replies")
        assert lookup.args["include_all_metadata"] in (True, "true", "1")
    assert ledger.state(job.job_id) is JobState.DONE and queue.depth() == 0


class _LedgerCrashingOn:
    def __init__(self, ledger, method: str) -> None:
        self._ledger, self._method = ledger, method

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        if name == self._method:
            raise Crash
        return getattr(self._ledger, name)


class _ClientCrashingOnUnreact(WebClient):
    def reactions_remove(self, **kwargs: object):  # type: ignore[override]
        raise Crash


def _take_when_stale(queue, consumer: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 5
    while (delivery := queue.take(consumer, block_ms=50)) is None:
        assert time.monotonic() < deadline
    return delivery


def _never() -> threading.Event:
    return threading.Event()
