"""A worker process answering several questions at once keeps the queue's promises for
every job in flight: each is answered once, none is lost when the process dies or pauses,
and a drain that runs out of time hands every one back. Each job in flight has a consumer
name, a lease and a fence token of its own (the process' workers ``name``, ``name-2``...)."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import pytest

from bot.jobs import JobState
from bot.metrics import BotMetrics
from bot.settings import BotSettings
from bot.worker import Worker
from bot.worker_pool import WorkerPool
from tests.fixtures.worker_parts import (
    CountingPipeline,
    bot_replies,
    build_worker,
    counter,
    question,
    redis_parts,
    wait_until,
)

IN_FLIGHT = 3


class GatedPipeline:
    """Answers as :class:`CountingPipeline` does, once ``gate`` is open and ``delay_s``
    has passed; counts the questions in flight (thread-safe)."""

    def __init__(self, *, gate: threading.Event | None = None, delay_s: float = 0.0) -> None:
        self._answer = CountingPipeline()
        self._gate = gate
        self._delay_s = delay_s
        self._lock = threading.Lock()
        self.running = self.most = self.asked = self.finished = 0

    def ask(self, question: str, **options: Any) -> Any:
        with self._lock:
            self.running += 1
            self.asked += 1
            self.most = max(self.most, self.running)
        try:
            if self._gate is not None:
                self._gate.wait(30)
            time.sleep(self._delay_s)
            return self._answer.ask(question, **options)
        finally:
            with self._lock:
                self.running -= 1
                self.finished += 1


class FrozenLeases:
    """The queue of a process that has stopped renewing its leases (paused, or cut off
    from Redis for a while): ``touch`` reports success and does nothing."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def touch(self, delivery: Any) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


def enqueued(slack_api: Any, queue: Any, count: int) -> list[Any]:
    """``count`` questions asked in Slack and queued, in order."""
    jobs = [question(slack_api, f"question {n}") for n in range(count)]
    for job in jobs:
        queue.enqueue(job)
    return jobs


def all_done(ledger: Any, jobs: list[Any]) -> bool:
    return all(ledger.record(job.job_id).state is JobState.DONE for job in jobs)


def process(
    slack_api, queue, ledger, pipeline, *, name: str, metrics: BotMetrics | None = None
) -> list[Worker]:
    """The workers of one process answering :data:`IN_FLIGHT` questions at once: one set
    of handlers shared, one consumer name each, as ``bot.worker_setup`` builds them."""
    first = build_worker(
        slack_api, queue=queue, ledger=ledger, pipeline=pipeline, name=name, metrics=metrics
    )
    return [first] + [
        dataclasses.replace(first, name=f"{name}-{n}") for n in range(2, IN_FLIGHT + 1)
    ]


def test_every_job_in_flight_is_answered_once(slack_api, redis_client, redis_prefix) -> None:
    queue, ledger = redis_parts(redis_client, redis_prefix, stale_after_ms=5_000)
    pipeline = GatedPipeline(delay_s=0.3)
    jobs = enqueued(slack_api, queue, 4 * IN_FLIGHT)
    pool = WorkerPool(process(slack_api, queue, ledger, pipeline, name="p")).start()
    try:
        wait_until(lambda: all_done(ledger, jobs), timeout_s=30)
    finally:
        assert pool.drain(10)

    assert [len(bot_replies(slack_api, job)) for job in jobs] == [1] * len(jobs)
    assert pipeline.most == IN_FLIGHT and pipeline.asked == len(jobs)
    assert queue.depth() == 0 and queue.stats().pending == 0


def test_the_jobs_in_flight_of_a_dead_process_are_each_answered_once(
    slack_api, redis_client, redis_prefix
) -> None:
    queue, ledger = redis_parts(redis_client, redis_prefix, stale_after_ms=300)
    jobs = enqueued(slack_api, queue, IN_FLIGHT)
    for number in range(1, IN_FLIGHT + 1):  # taken by a process that then died
        assert queue.take("dead" if number == 1 else f"dead-{number}", block_ms=0) is not None
    assert queue.stats().pending == IN_FLIGHT

    pipeline = GatedPipeline()
    pool = WorkerPool(process(slack_api, queue, ledger, pipeline, name="live")).start()
    try:
        wait_until(lambda: all_done(ledger, jobs), timeout_s=30)
    finally:
        assert pool.drain(10)

    assert [len(bot_replies(slack_api, job)) for job in jobs] == [1] * IN_FLIGHT
    assert pipeline.asked == IN_FLIGHT
    assert queue.depth() == 0 and queue.dead_letters() == []


def test_a_paused_process_posts_none_of_the_jobs_taken_over_meanwhile(
    slack_api, redis_client, redis_prefix
) -> None:
    queue, ledger = redis_parts(redis_client, redis_prefix, stale_after_ms=300)
    jobs = enqueued(slack_api, queue, IN_FLIGHT)
    gate, paused_metrics = threading.Event(), BotMetrics()
    paused = GatedPipeline(gate=gate)
    frozen = FrozenLeases(queue)
    first = WorkerPool(
        process(slack_api, frozen, ledger, paused, name="paused", metrics=paused_metrics)
    ).start()
    wait_until(lambda: paused.running == IN_FLIGHT)

    second = WorkerPool(process(slack_api, queue, ledger, GatedPipeline(), name="other")).start()
    try:
        wait_until(lambda: all_done(ledger, jobs), timeout_s=30)
        gate.set()  # the paused process wakes up and would post its answers now
        lost = paused_metrics.jobs_finished
        wait_until(lambda: counter(lost, outcome="lease_lost") == IN_FLIGHT, timeout_s=15)
    finally:
        gate.set()
        first.drain(5)
        second.drain(5)

    assert [len(bot_replies(slack_api, job)) for job in jobs] == [1] * IN_FLIGHT
    assert counter(paused_metrics.jobs_finished, outcome="done") == 0
    assert queue.depth() == 0


def test_a_drain_out_of_time_hands_back_every_job_in_flight(
    slack_api, redis_client, redis_prefix
) -> None:
    queue, ledger = redis_parts(redis_client, redis_prefix, stale_after_ms=60_000)
    jobs = enqueued(slack_api, queue, IN_FLIGHT)
    pipeline = GatedPipeline(delay_s=1.5)
    stopped: list[bool] = []
    workers = process(slack_api, queue, ledger, pipeline, name="p")
    pool = WorkerPool(workers, after_drain=[lambda: stopped.append(True)]).start()
    wait_until(lambda: pipeline.running == IN_FLIGHT)

    assert pool.drain(0.3) is False

    assert stopped == [True], "what the workers shared is stopped after the drain"
    again = [queue.take("next", block_ms=0) for _ in jobs]
    assert sorted(d.job.job_id for d in again if d) == sorted(j.job_id for j in jobs)
    assert all(d is not None and d.attempts == 1 for d in again), "no attempt spent"
    wait_until(lambda: pipeline.finished == IN_FLIGHT, timeout_s=10)
    time.sleep(0.2)  # the old workers' pipelines ended: they must not post
    assert [bot_replies(slack_api, job) for job in jobs] == [[]] * IN_FLIGHT


@pytest.mark.parametrize("variable", ["RAGBOT_WORKER_CONCURRENCY", "RAGBOT_WORKER_THREADS"])
def test_concurrency_is_read_under_its_former_name_too(monkeypatch, variable: str) -> None:
    monkeypatch.setenv(variable, "16")
    assert BotSettings(_env_file=None).worker_concurrency == 16
    monkeypatch.setenv("RAGBOT_WORKER_CONCURRENCY", "8")
    assert BotSettings(_env_file=None).worker_concurrency == 8, "the current name wins"
