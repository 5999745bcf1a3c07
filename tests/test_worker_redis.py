"""Redis answering errors (OOM, READONLY after a failover, WRONGTYPE) instead of going
away: the worker pauses, never dies, and answers once Redis recovers. Each test runs a
private redis-server it may break."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

import pytest
import redis

from bot.jobs import JobState
from tests.fixtures.redis_db import RedisServerProcess, _free_port
from tests.fixtures.worker_parts import (
    CountingPipeline,
    bot_replies,
    build_worker,
    question,
    redis_parts,
    wait_until,
)

PREFIX = "ragbot-test:redis-errors:"


@contextlib.contextmanager
def broken(admin: redis.Redis, failure: str) -> Iterator[None]:
    """Redis answering ``failure`` errors to the worker's commands inside the block."""
    stream = f"{PREFIX}jobs"
    if failure == "oom":
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
    elif failure == "readonly":
        admin.execute_command("REPLICAOF", "127.0.0.1", str(_free_port()))
    else:  # the stream key holds a string: WRONGTYPE on every stream command
        admin.rename(stream, f"{stream}:aside")
        admin.set(stream, "not a stream")
    try:
        yield
    finally:
        if failure == "oom":
            admin.config_set("maxmemory", 0)
        elif failure == "readonly":
            admin.execute_command("REPLICAOF", "NO", "ONE")
        else:
            admin.delete(stream)
            admin.rename(f"{stream}:aside", stream)


@pytest.fixture
def clients(redis_server: RedisServerProcess) -> Iterator[tuple[redis.Redis, redis.Redis]]:
    worker_client = redis.Redis.from_url(redis_server.url, socket_timeout=10)
    admin = redis.Redis.from_url(redis_server.url)
    yield worker_client, admin
    worker_client.close()
    admin.close()


def start(worker) -> tuple[threading.Thread, threading.Event]:  # type: ignore[no-untyped-def]
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, kwargs={"stop": stop}, daemon=True)
    thread.start()
    return thread, stop


@pytest.mark.parametrize("failure", ["oom", "readonly", "wrongtype"])
def test_redis_errors_while_taking_pause_the_worker_until_redis_recovers(
    clients, slack_api, caplog: pytest.LogCaptureFixture, failure: str
) -> None:
    client, admin = clients
    queue, ledger = redis_parts(client, PREFIX, stale_after_ms=500)
    pipeline = CountingPipeline()
    worker = build_worker(slack_api, queue=queue, ledger=ledger, pipeline=pipeline)
    queue.take("w0", block_ms=0)  # creates the consumer group
    job = question(slack_api)
    queue.enqueue(job)
    caplog.set_level(logging.WARNING, logger="bot.worker")

    with broken(admin, failure):
        thread, stop = start(worker)
        wait_until(lambda: "queue unavailable" in caplog.text)
        assert thread.is_alive()
        assert bot_replies(slack_api, job) == []
    try:
        wait_until(lambda: ledger.record(job.job_id).state is JobState.DONE, timeout_s=20)
    finally:
        stop.set()
        thread.join(10)

    assert len(bot_replies(slack_api, job)) == 1
    assert queue.depth() == 0


def test_redis_turning_read_only_mid_job_leaves_one_answer_after_recovery(
    clients, slack_api
) -> None:
    client, admin = clients
    queue, ledger = redis_parts(client, PREFIX, stale_after_ms=500)
    failover = contextlib.ExitStack()

    class FailoverMidway(CountingPipeline):
        def ask(self, text, *, history=None, **streaming):  # type: ignore[no-untyped-def]
            if self.runs == 0:
                failover.enter_context(broken(admin, "readonly"))
                threading.Timer(1.0, failover.close).start()
            return CountingPipeline.ask(self, text, history=history)

    pipeline = FailoverMidway()
    worker = build_worker(slack_api, queue=queue, ledger=ledger, pipeline=pipeline)
    job = question(slack_api)
    queue.enqueue(job)

    thread, stop = start(worker)
    try:
        wait_until(lambda: ledger.record(job.job_id).state is JobState.DONE, timeout_s=20)
    finally:
        stop.set()
        thread.join(10)
        failover.close()

    assert len(bot_replies(slack_api, job)) == 1
    assert pipeline.runs == 2, "the job stayed pending and was answered on recovery"
    assert queue.depth() == 0


def test_a_long_out_of_memory_spell_spends_none_of_the_jobs_attempts(clients, slack_api) -> None:
    """Taking a job still works under OOM (a claim is not a denied write) while every
    ledger write fails: two workers would otherwise pass the job back and forth until
    its attempts ran out. Released jobs keep their count, so it is answered afterwards."""
    client, admin = clients
    queue, ledger = redis_parts(client, PREFIX, stale_after_ms=300, max_attempts=2)
    pipeline = CountingPipeline()
    workers = [
        build_worker(slack_api, queue=queue, ledger=ledger, pipeline=pipeline, name=name)
        for name in ("w1", "w2")
    ]
    queue.take("w0", block_ms=0)  # creates the consumer group
    job = question(slack_api)
    queue.enqueue(job)

    with broken(admin, "oom"):
        running = [start(worker) for worker in workers]
        wait_until(lambda: queue.stats().pending == 1, timeout_s=10)
        threading.Event().wait(4.0)  # many times stale_after_ms × max_attempts
        assert queue.dead_letters() == []
    try:
        wait_until(lambda: ledger.record(job.job_id).state is JobState.DONE, timeout_s=20)
    finally:
        for thread, stop in running:
            stop.set()
            thread.join(10)

    assert queue.dead_letters() == []
    assert len(bot_replies(slack_api, job)) == 1 and pipeline.runs == 1
