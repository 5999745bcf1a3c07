"""The job queue and ledger: one contract suite run against Redis and the in-memory twin."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
import redis

from bot.jobs import (
    AskJob,
    JobState,
    ReindexJob,
    job_from_json,
    job_to_json,
    new_job_id,
)
from bot.queue import (
    InMemoryJobLedger,
    InMemoryJobQueue,
    JobLedger,
    JobQueue,
    JobRecord,
    QueueUnavailableError,
    RedisJobLedger,
    RedisJobQueue,
)
from rag_core.errors import ConfigError, RagbotError
from tests.fixtures.redis_db import RedisServerProcess

QueueFactory = Callable[..., JobQueue]


def ask(text: str = "How do I deploy?") -> AskJob:
    return AskJob(
        job_id=new_job_id(),
        channel="C1",
        thread_ts="1700000000.000100",
        message_ts="1700000000.000100",
        user="U1",
        text=text,
    )


@pytest.fixture(params=["redis", "memory"])
def make_queue(request: pytest.FixtureRequest) -> QueueFactory:
    if request.param == "memory":
        return InMemoryJobQueue
    client = request.getfixturevalue("redis_client")
    prefix = request.getfixturevalue("redis_prefix")
    return lambda **kw: RedisJobQueue(client, prefix=prefix, **kw)


@pytest.fixture(params=["redis", "memory"])
def ledger(request: pytest.FixtureRequest) -> JobLedger:
    if request.param == "memory":
        return InMemoryJobLedger()
    client = request.getfixturevalue("redis_client")
    return RedisJobLedger(client, prefix=request.getfixturevalue("redis_prefix"))


# -- jobs and their JSON ---------------------------------------------------------------


def test_ask_job_json_round_trip() -> None:
    job = AskJob(
        job_id="j1",
        channel="C1",
        thread_ts="1.1",
        message_ts="1.2",
        user="U1",
        text="Ünïcode — question?",
        team="T1",
        is_followup=True,
        enqueued_at=1700000000.5,
    )
    payload = job_to_json(job)
    assert json.loads(payload)["kind"] == "ask"
    assert job_from_json(payload) == job
    assert job_from_json(payload.encode("utf-8")) == job


def test_reindex_job_json_round_trip() -> None:
    job = ReindexJob(
        job_id=new_job_id(),
        user="U2",
        channel="C2",
        docset="handbook",
        recreate=True,
        response_url="https://hooks.example/1",
    )
    restored = job_from_json(job_to_json(job))
    assert isinstance(restored, ReindexJob)
    assert restored == job
    assert restored.progress_ts is None
    # A job queued by an older version named a folder: it now re-indexes every doc set.
    old = json.loads(job_to_json(job))
    del old["docset"]
    old["path"] = "docs/"
    assert job_from_json(json.dumps(old)) == ReindexJob(
        job_id=job.job_id,
        user="U2",
        channel="C2",
        recreate=True,
        response_url="https://hooks.example/1",
        enqueued_at=job.enqueued_at,
    )


def test_job_json_rejects_unknown_kind_and_missing_fields_but_ignores_extras() -> None:
    with pytest.raises(ValueError, match="unknown job kind 'summarise'"):
        job_from_json('{"kind": "summarise", "job_id": "x"}')
    with pytest.raises(ValueError, match="incomplete ask job"):
        job_from_json('{"kind": "ask", "job_id": "x"}')
    with pytest.raises(ValueError, match="not JSON"):
        job_from_json("{oops")
    data = json.loads(job_to_json(ask()))
    data["added_by_a_newer_app"] = 1
    assert job_from_json(json.dumps(data)).job_id == data["job_id"]


def test_bad_queue_limits_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_attempts"):
        InMemoryJobQueue(max_attempts=0)
    with pytest.raises(ConfigError, match="stale_after_ms"):
        RedisJobQueue(redis.Redis(), stale_after_ms=0)


# -- the queue contract, both backends -------------------------------------------------


@pytest.mark.parametrize("kind", ["ask", "reindex"])
def test_enqueue_take_ack_round_trip(make_queue: QueueFactory, kind: str) -> None:
    q = make_queue()
    job = (
        ask()
        if kind == "ask"
        else ReindexJob(job_id=new_job_id(), user="U1", channel="C1", docset="docs")
    )
    message_id = q.enqueue(job)
    assert q.depth() == 1
    delivery = q.take("w1", block_ms=100)
    assert delivery is not None
    assert (delivery.job, delivery.message_id, delivery.attempts) == (job, message_id, 1)
    assert delivery.consumer == "w1" and not delivery.exhausted
    assert q.depth() == 1, "a running job still counts until it is acknowledged"
    q.ack(delivery)
    assert q.depth() == 0
    assert q.take("w1", block_ms=0) is None


def test_take_blocks_up_to_block_ms_and_wakes_for_a_new_job(make_queue: QueueFactory) -> None:
    q = make_queue()
    started = time.monotonic()
    assert q.take("w1", block_ms=200) is None
    assert 0.15 <= time.monotonic() - started < 2.0
    job = ask()
    timer = threading.Timer(0.1, q.enqueue, args=(job,))
    timer.start()
    delivery = q.take("w1", block_ms=3000)
    timer.join()
    assert delivery is not None and delivery.job == job


def test_two_consumers_never_get_the_same_job(make_queue: QueueFactory) -> None:
    q = make_queue()
    jobs = [ask(f"question {i}") for i in range(30)]
    for job in jobs:
        q.enqueue(job)
    taken: dict[str, list[str]] = {"w1": [], "w2": []}
    barrier = threading.Barrier(2)

    def work(consumer: str) -> None:
        barrier.wait()
        while (delivery := q.take(consumer, block_ms=50)) is not None:
            taken[consumer].append(delivery.job.job_id)
            q.ack(delivery)

    threads = [threading.Thread(target=work, args=(name,)) for name in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not set(taken["w1"]) & set(taken["w2"])
    assert sorted(taken["w1"] + taken["w2"]) == sorted(job.job_id for job in jobs)
    assert q.depth() == 0


def test_a_dead_workers_job_is_claimed_by_another_after_stale_after_ms(
    make_queue: QueueFactory,
) -> None:
    q = make_queue(stale_after_ms=150)
    job = ask()
    q.enqueue(job)
    first = q.take("doomed", block_ms=100)
    assert first is not None and first.attempts == 1
    assert q.take("survivor", block_ms=0) is None, "not stale yet"
    time.sleep(0.2)
    second = q.take("survivor", block_ms=0)
    assert second is not None
    assert (second.job, second.message_id, second.attempts) == (job, first.message_id, 2)
    assert second.consumer == "survivor"
    assert not q.touch(first), "the dead worker no longer owns the job"
    q.ack(second)
    assert q.depth() == 0


def test_touch_keeps_a_long_job_from_being_stolen(make_queue: QueueFactory) -> None:
    q = make_queue(stale_after_ms=300)
    q.enqueue(ask())
    delivery = q.take("slow", block_ms=100)
    assert delivery is not None
    for _ in range(6):  # 6 x 80 ms: well past the stale time in all
        time.sleep(0.08)
        assert q.touch(delivery)
        assert q.take("thief", block_ms=0) is None
    time.sleep(0.35)
    stolen = q.take("thief", block_ms=0)
    assert stolen is not None and stolen.attempts == 2
    assert not q.touch(delivery)


def test_claim_stale_takes_several_and_counts_attempts(make_queue: QueueFactory) -> None:
    q = make_queue(stale_after_ms=10_000)
    for i in range(3):
        q.enqueue(ask(f"q{i}"))
    for _ in range(3):
        assert q.take("dead", block_ms=100) is not None
    assert q.claim_stale("alive") == []
    time.sleep(0.06)
    claimed = q.claim_stale("alive", min_idle_ms=50, count=2)
    assert [d.attempts for d in claimed] == [2, 2]
    assert {d.consumer for d in claimed} == {"alive"}
    assert len(q.claim_stale("alive", min_idle_ms=50)) == 1


def test_a_job_delivered_more_than_max_attempts_goes_to_the_dead_letters(
    make_queue: QueueFactory,
) -> None:
    q = make_queue(max_attempts=2, stale_after_ms=50)
    job = ask()
    q.enqueue(job)
    for attempt, consumer in enumerate(["w1", "w2"], start=1):
        delivery = q.take(consumer, block_ms=100)
        assert delivery is not None and delivery.attempts == attempt
        assert not delivery.exhausted
        time.sleep(0.08)  # the worker dies
    last = q.take("w3", block_ms=0)
    assert last is not None
    assert last.exhausted and last.attempts == 3 and last.job == job
    assert "2 attempts" in last.last_error
    q.ack(last)  # harmless
    assert q.depth() == 0
    assert q.take("w3", block_ms=0) is None
    [dead] = q.dead_letters()
    assert job_from_json(dead.payload) == job
    assert dead.attempts == 3 and dead.message_id == last.message_id
    assert dead.failed_at == pytest.approx(time.time(), abs=30)


def test_retry_offers_the_job_again_with_its_error_until_the_cap(
    make_queue: QueueFactory,
) -> None:
    q = make_queue(max_attempts=2, stale_after_ms=60_000)
    job = ask()
    q.enqueue(job)
    first = q.take("w1", block_ms=100)
    assert first is not None
    assert q.retry(first, "model server restarting") is True
    second = q.take("w2", block_ms=0)
    assert second is not None
    assert (second.job, second.attempts, second.last_error) == (job, 2, "model server restarting")
    assert q.retry(second, "still restarting") is False, "the cap is reached"
    assert q.depth() == 0
    assert q.take("w1", block_ms=0) is None
    [dead] = q.dead_letters()
    assert (dead.error, dead.attempts) == ("still restarting", 2)


def test_retry_with_a_delay_holds_the_job_back(make_queue: QueueFactory) -> None:
    q = make_queue(stale_after_ms=60_000)
    q.enqueue(ask())
    delivery = q.take("w1", block_ms=100)
    assert delivery is not None
    assert q.retry(delivery, "busy", delay_ms=300)
    assert q.take("w2", block_ms=0) is None
    time.sleep(0.35)
    again = q.take("w2", block_ms=0)
    assert again is not None and again.attempts == 2


def test_release_puts_a_job_back_at_once_without_spending_an_attempt(
    make_queue: QueueFactory,
) -> None:
    q = make_queue(max_attempts=1, stale_after_ms=60_000)
    job = ask()
    q.enqueue(job)
    first = q.take("stopping", block_ms=100)
    assert first is not None and first.attempts == 1
    assert q.release(first) is True  # its worker is shutting down, on its last attempt
    second = q.take("w2", block_ms=0)
    assert second is not None, "released jobs are taken again at once"
    assert (second.job, second.attempts, second.exhausted) == (job, 1, False)
    assert q.dead_letters() == []
    assert q.touch(first) is False, "the released delivery belongs to w2 now"
    assert q.release(first) is False, "nothing of w1's to put back"
    q.ack(second)
    assert q.release(second) is False, "a finished job is not put back"


def test_fail_moves_the_job_to_the_dead_letters(make_queue: QueueFactory) -> None:
    q = make_queue()
    kept, failed = ask("kept"), ask("failed")
    q.enqueue(failed)
    q.enqueue(kept)
    delivery = q.take("w1", block_ms=100)
    assert delivery is not None and delivery.job == failed
    q.fail(delivery, "The path docs/missing does not exist.")
    assert q.depth() == 1
    [dead] = q.dead_letters()
    assert dead.error == "The path docs/missing does not exist."
    assert job_from_json(dead.payload) == failed
    nxt = q.take("w1", block_ms=100)
    assert nxt is not None and nxt.job == kept


# -- Redis specifics --------------------------------------------------------------------


def test_an_unreadable_payload_is_dead_lettered_and_the_next_job_taken(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    q = RedisJobQueue(redis_client, prefix=redis_prefix)
    redis_client.xadd(q.stream_key, {"job": '{"kind": "summarise"}'})
    good = ask()
    q.enqueue(good)
    delivery = q.take("w1", block_ms=0)  # a burst worker must not stop here
    assert delivery is not None and delivery.job == good
    assert q.take("w1", block_ms=0) is None
    [dead] = q.dead_letters()
    assert "unknown job kind" in dead.error
    assert redis_client.xlen(q.dead_letter_key) == 1


def test_redis_queue_works_with_decoded_responses(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        q = RedisJobQueue(client, prefix=redis_prefix)
        job = ask()
        q.enqueue(job)
        delivery = q.take("w1", block_ms=100)
        assert delivery is not None and delivery.job == job
        q.ack(delivery)
        assert q.depth() == 0
    finally:
        client.delete(f"{redis_prefix}jobs")
        client.close()


def test_unreachable_redis_raises_queue_unavailable_in_queue_and_ledger(
    unreachable_redis_url: str,
) -> None:
    client = redis.Redis.from_url(unreachable_redis_url)
    q = RedisJobQueue(client)
    with pytest.raises(QueueUnavailableError, match="could not enqueue the job") as info:
        q.enqueue(ask())
    assert isinstance(info.value, RagbotError)
    assert "\n" not in str(info.value)
    with pytest.raises(QueueUnavailableError, match="could not take a job"):
        q.take("w1", block_ms=10)
    assert q.ping() is False
    ledger = RedisJobLedger(client)
    with pytest.raises(QueueUnavailableError, match="read the job state"):
        ledger.record("j1")
    with pytest.raises(QueueUnavailableError, match="record the job state"):
        ledger.mark_running("j1", "w1")


def test_a_worker_survives_a_redis_restart(redis_server: RedisServerProcess) -> None:
    client = redis.Redis.from_url(redis_server.url)
    q = RedisJobQueue(client)
    try:
        assert q.take("w1", block_ms=10) is None
        redis_server.stop()
        with pytest.raises(QueueUnavailableError):
            q.take("w1", block_ms=10)
        assert not q.ping()
        redis_server.start()  # it comes back empty
        job = ask()
        q.enqueue(job)
        delivery = q.take("w1", block_ms=100)  # the consumer group is recreated
        assert delivery is not None and delivery.job == job
        q.ack(delivery)
    finally:
        client.close()


def test_acked_jobs_leave_nothing_behind(redis_client: redis.Redis, redis_prefix: str) -> None:
    q = RedisJobQueue(redis_client, prefix=redis_prefix, stale_after_ms=10_000)
    q.enqueue(ask())
    delivery = q.take("w1", block_ms=100)
    assert delivery is not None
    q.retry(delivery, "transient", delay_ms=0)
    again = q.take("w1", block_ms=0)
    assert again is not None
    q.ack(again)
    assert redis_client.xlen(q.stream_key) == 0
    assert redis_client.xpending(q.stream_key, "workers")["pending"] == 0
    assert not redis_client.exists(f"{q.stream_key}:errors")


# -- the ledger -------------------------------------------------------------------------


def test_ledger_records_state_and_posted_ts(ledger: JobLedger) -> None:
    job_id = new_job_id()
    assert ledger.record(job_id) == JobRecord()
    ledger.mark_running(job_id, "w1")
    assert ledger.record(job_id).state is JobState.RUNNING
    ledger.record_posted(job_id, "1700000002.000300")
    assert ledger.record(job_id).posted_ts == "1700000002.000300"
    ledger.mark_done(job_id)
    assert ledger.record(job_id).state is JobState.DONE
    assert ledger.record(job_id).posted_ts == "1700000002.000300"
    other = new_job_id()
    ledger.mark_failed(other, "boom")
    assert ledger.record(other).state is JobState.FAILED
    assert ledger.record(other).posted_ts is None


def test_ledger_entries_expire(redis_client: redis.Redis, redis_prefix: str) -> None:
    RedisJobLedger(redis_client, prefix=redis_prefix).record_posted("j1", "1.2")
    assert 86_000 < redis_client.ttl(f"{redis_prefix}job:j1") <= 86_400
    ledger = InMemoryJobLedger(ttl_s=0.1)
    ledger.record_posted("j1", "1.2")
    assert ledger.record("j1").posted_ts == "1.2"
    time.sleep(0.15)
    assert ledger.record("j1").posted_ts is None
    ledger.mark_running("j1", "w1")
    assert ledger.record("j1") == JobRecord(state=JobState.RUNNING, fence=1), "a fresh entry"


def test_in_memory_ledger_forgets_expired_entries_now_and_then() -> None:
    ledger = InMemoryJobLedger(ttl_s=0.05, purge_every_s=0.3)
    for job_id in ("j1", "j2", "j3"):
        ledger.mark_running(job_id, "w1")
    time.sleep(0.1)
    ledger.mark_running("j4", "w1")
    assert len(ledger._records) == 4, "a write does not sweep the whole ledger"
    time.sleep(0.25)
    ledger.mark_running("j5", "w1")
    assert set(ledger._records) == {"j5"}
