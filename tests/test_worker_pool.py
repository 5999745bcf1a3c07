"""Supervised worker threads: a dying worker is restarted while the ``workers`` liveness
check reports it, and ``drain`` finishes queued in-memory questions or hands a job back
when the grace period runs out."""

from __future__ import annotations

import logging
import time

import pytest

from bot.health import Health
from bot.worker_pool import WorkerPool
from tests.fixtures.worker_parts import (
    CountingPipeline,
    bot_replies,
    build_worker,
    memory_parts,
    question,
    redis_parts,
    wait_until,
)


class FlakyQueue:
    """The in-memory queue, except that the first ``failures`` takes raise a bug."""

    def __init__(self, queue, failures: int) -> None:  # type: ignore[no-untyped-def]
        self._queue, self.failures = queue, failures

    def take(self, consumer: str, *, block_ms: int):  # type: ignore[no-untyped-def]
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("a bug in the loop")
        return self._queue.take(consumer, block_ms=min(block_ms, 100))

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._queue, name)


def test_a_dying_worker_is_restarted_and_liveness_fails_meanwhile(slack_api) -> None:
    queue, ledger = memory_parts()
    flaky = FlakyQueue(queue, failures=2)
    worker = build_worker(slack_api, queue=flaky, ledger=ledger)  # type: ignore[arg-type]
    pool = WorkerPool([worker], restart_backoff_s=(0.5, 1.0))
    health = Health()
    pool.register(health)

    pool.start()
    try:
        failing: list[dict] = []
        wait_until(lambda: not (live := health.live())[0] and not failing.append(live[1]))
        assert "restarting" in str(failing[0]["checks"])
        wait_until(lambda: flaky.failures == 0 and health.live()[0], timeout_s=10)
        job = question(slack_api)
        queue.enqueue(job)
        wait_until(lambda: len(bot_replies(slack_api, job)) == 1)
        assert "2 restarts" in pool.check().detail
    finally:
        assert pool.drain(5)


def test_a_stalled_worker_fails_the_liveness_check(slack_api) -> None:
    queue, ledger = memory_parts()
    pipeline = CountingPipeline(delay_s=1.5)
    worker = build_worker(slack_api, queue=queue, ledger=ledger, pipeline=pipeline)
    pool = WorkerPool([worker], stall_after_s=0.5).start()
    try:
        assert pool.check().ok
        queue.enqueue(question(slack_api))
        wait_until(lambda: not pool.check().ok)
        assert "stalled" in pool.check().detail
        wait_until(lambda: pool.check().ok, timeout_s=5)
    finally:
        pool.drain(5)


def test_drain_finishes_the_queued_in_memory_questions(slack_api) -> None:
    queue, ledger = memory_parts()
    pipeline = CountingPipeline(delay_s=0.1)
    first = build_worker(slack_api, queue=queue, ledger=ledger, pipeline=pipeline, name="a")
    second = build_worker(slack_api, queue=queue, ledger=ledger, pipeline=pipeline, name="b")
    jobs = [question(slack_api, f"question {i}") for i in range(6)]
    for job in jobs:
        queue.enqueue(job)
    pool = WorkerPool([first, second], finish_queue=True).start()

    started = time.monotonic()
    assert pool.drain(10) is True

    assert time.monotonic() - started < 5
    assert [len(bot_replies(slack_api, job)) for job in jobs] == [1] * 6
    assert queue.depth() == 0 and pipeline.runs == 6
    assert not any(t.is_alive() for t in [s.thread for s in pool._slots] if t)


def test_drain_hands_back_a_job_that_outlasts_the_grace_period(
    slack_api, redis_client, redis_prefix
) -> None:
    queue, ledger = redis_parts(redis_client, redis_prefix, stale_after_ms=60_000)
    pipeline = CountingPipeline(delay_s=1.5)
    worker = build_worker(slack_api, queue=queue, ledger=ledger, pipeline=pipeline)
    job = question(slack_api)
    queue.enqueue(job)
    waiting = question(slack_api, "asked later")
    pool = WorkerPool([worker]).start()
    pipeline.started.wait(5)
    queue.enqueue(waiting)

    assert pool.drain(0.3) is False

    again = queue.take("w2", block_ms=0)
    assert again is not None and again.job == job
    assert again.attempts == 1, "a hand-back spends none of the job's attempts"
    time.sleep(1.5)  # the old worker's pipeline ends: it must not post any more
    assert bot_replies(slack_api, job) == []
    assert queue.take("w2", block_ms=0).job == waiting  # type: ignore[union-attr]


def test_drain_answers_in_memory_questions_waiting_out_a_retry_delay(slack_api) -> None:
    queue, ledger = memory_parts(stale_after_ms=60_000)
    worker = build_worker(slack_api, queue=queue, ledger=ledger)
    job = question(slack_api)
    queue.enqueue(job)
    delivery = queue.take("earlier", block_ms=0)
    assert delivery is not None
    queue.retry(delivery, "Slack was down", delay_ms=30_000)
    pool = WorkerPool([worker], finish_queue=True).start()

    started = time.monotonic()
    assert pool.drain(10) is True

    assert time.monotonic() - started < 5, "the retry delay is not waited out"
    assert len(bot_replies(slack_api, job)) == 1
    assert queue.depth() == 0


def test_drain_logs_the_in_memory_jobs_it_leaves_behind(
    slack_api, caplog: pytest.LogCaptureFixture
) -> None:
    queue, ledger = memory_parts()
    pipeline = CountingPipeline(delay_s=1.0)
    worker = build_worker(slack_api, queue=queue, ledger=ledger, pipeline=pipeline)
    running, waiting = question(slack_api), question(slack_api, "asked later")
    queue.enqueue(running)
    pool = WorkerPool([worker], finish_queue=True).start()
    pipeline.started.wait(5)
    queue.enqueue(waiting)

    with caplog.at_level(logging.ERROR, logger="bot.worker_pool"):
        assert pool.drain(0.3) is False

    [lost] = [r.getMessage() for r in caplog.records if "lost on exit" in r.getMessage()]
    assert running.job_id in lost and waiting.job_id in lost
    time.sleep(1.0)  # the old worker's pipeline ends: it must not post any more
    assert bot_replies(slack_api, running) == []


def test_the_refresher_runs_beside_the_workers_and_stops_before_the_drain(slack_api) -> None:
    from bot.conversation_state import reindex_lock
    from bot.refresher import DocSetRefresher, refresh_schedule
    from rag_core.docsets import DocSet

    refreshes, _ = memory_parts()  # where the refresher queues (no worker takes from it here)
    queue, ledger = memory_parts()
    refresher = DocSetRefresher(
        [DocSet("wiki", "git", "repo", "c_wiki", refresh_s=3600.0)],
        queue=refreshes,
        lock=reindex_lock(None, prefix="t:"),
        schedule=refresh_schedule(None, prefix="t:"),
        tick_s=0.05,
    )
    worker = build_worker(slack_api, queue=queue, ledger=ledger, name="a")
    pool = WorkerPool([worker], companions=[refresher]).start()

    wait_until(lambda: refreshes.depth() == 1)
    pool.drain(2)

    [delivery] = [refreshes.take("test", block_ms=10)]
    assert delivery is not None and delivery.job.docset == "wiki"
    assert refresher._thread is not None and not refresher._thread.is_alive()
