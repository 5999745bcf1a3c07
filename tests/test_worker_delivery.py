"""One post per job: metadata-tagged answers, DONE jobs skipped, fencing, and a worker
dying between its post and its acknowledgement. Real Redis, the Slack stand-in."""

from __future__ import annotations

import threading
import time

import pytest
from slack_sdk import WebClient

from bot.jobs import JobState, QueueUnavailableError, ReindexJob, new_job_id
from bot.ledger import JobLedger
from bot.metrics import BotMetrics
from bot.posting import ANSWER_EVENT_TYPE
from bot.worker import DeliveryGuard
from rag_core.docset_index import DocSetBuild
from rag_core.docsets import DocSet
from rag_core.ingest.index_run import IndexProgress, IndexSummary
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
    assert ledger.record(job.job_id).state is JobState.DONE
    assert ledger.record(job.job_id).posted_ts == message["ts"]
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
        def ask(self, text, *, history=None, **streaming):  # type: ignore[no-untyped-def]
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
        def ask(self, text, *, history=None, **streaming):  # type: ignore[no-untyped-def]
            ledger.mark_running(job.job_id, "a-newer-delivery")
            return CountingPipeline.ask(self, text, history=history)

    worker = build_worker(
        slack_api, queue=queue, ledger=ledger, pipeline=Overtaken(), metrics=metrics
    )
    worker.run(stop=_never(), burst=True)

    assert bot_replies(slack_api, job) == []
    assert counter(metrics.jobs_finished, outcome="lease_lost") == 1


DOCS = DocSet("docs", "folder", "docs", "c_docs")


class OneDocSet:
    """The doc sets of the re-index handler: one, whose store is never reached here."""

    docsets = (DOCS,)

    def select(self, names):  # type: ignore[no-untyped-def]
        return [(DOCS, None)]


class OvertakenIndexer:
    """Reports progress, meanwhile another delivery of the job starts, then finishes."""

    def __init__(self, ledger: JobLedger, job_id: str) -> None:
        self.ledger, self.job_id, self.finished = ledger, job_id, False

    def index(self, docset: DocSet, store, *, recreate: bool, progress) -> DocSetBuild:  # type: ignore[no-untyped-def]
        progress(IndexProgress(stage="loading", done=0, total=2))
        self.ledger.mark_running(self.job_id, "a-newer-delivery")
        progress(IndexProgress(stage="loading", done=2, total=2))
        self.finished = True
        return DocSetBuild(docset, IndexSummary(2, 0, [], 4, 4, 0, 0, 0.1, "v1"))


def test_a_reindex_taken_over_stops_and_keeps_the_lock(slack_api, parts) -> None:
    queue, ledger = parts
    metrics = BotMetrics()
    job = ReindexJob(job_id=new_job_id(), user="U1", channel="C1", docset="docs")
    worker = build_worker(slack_api, queue=queue, ledger=ledger, metrics=metrics)
    indexer = OvertakenIndexer(ledger, job.job_id)
    worker.reindex.indexer = indexer  # type: ignore[assignment]
    worker.reindex.stores = OneDocSet()  # type: ignore[assignment]
    assert worker.reindex.lock.acquire(job.job_id)
    queue.enqueue(job)

    worker.run(stop=_never(), burst=True)

    assert not indexer.finished, "the first worker stopped at its next heartbeat"
    assert counter(metrics.jobs_finished, outcome="lease_lost") == 1
    assert worker.reindex.lock.acquire("another-reindex") is False, "the lock is the new owner's"
    assert ledger.record(job.job_id).state is JobState.RUNNING
    assert queue.depth() == 1, "not acknowledged: the newer delivery finishes it"


class LedgerDownOnce:
    """The ledger, except that its first ``record`` read fails like Redis going away."""

    def __init__(self, ledger: JobLedger) -> None:
        self._ledger, self.failed = ledger, False

    def record(self, job_id: str):  # type: ignore[no-untyped-def]
        if not self.failed:
            self.failed = True
            raise QueueUnavailableError("The job queue is unavailable: could not read.")
        return self._ledger.record(job_id)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._ledger, name)


@pytest.mark.parametrize("done_already", [False, True])
def test_a_redis_failure_before_the_job_starts_spends_no_attempt(
    slack_api, parts, done_already: bool
) -> None:
    queue, ledger = parts
    job = question(slack_api)
    queue.enqueue(job)
    if done_already:
        ledger.mark_done(job.job_id)
    flaky = LedgerDownOnce(ledger)
    worker = build_worker(slack_api, queue=queue, ledger=flaky)  # type: ignore[arg-type]
    first = queue.take("w1", block_ms=100)
    assert first is not None

    with pytest.raises(QueueUnavailableError):
        worker.process(first)

    again = queue.take("w2", block_ms=0)
    assert again is not None and again.attempts == 1, "put back at once, no attempt spent"


def test_a_hand_back_of_a_job_finished_meanwhile_counts_nothing(slack_api, parts) -> None:
    queue, ledger = parts
    metrics = BotMetrics()
    job = question(slack_api)
    queue.enqueue(job)
    worker = build_worker(slack_api, queue=queue, ledger=ledger, metrics=metrics)
    delivery = queue.take("w1", block_ms=100)
    assert delivery is not None
    worker._current = DeliveryGuard(worker, delivery, 1, redelivered=False)
    queue.ack(delivery)  # the job ended just before the grace period did

    assert worker.hand_back("stopping") is False

    assert counter(metrics.jobs_finished, outcome="retried") == 0
    assert queue.take("w2", block_ms=0) is None


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
    assert ledger.record(job.job_id).state is JobState.DONE and queue.depth() == 0


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
