"""The thread registry and the re-index lock: one contract, run against real Redis and
against the in-process backend, plus what only the Redis one has to promise."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from bot import conversation_state
from bot.conversation_state import (
    MemoryReindexLock,
    MemoryThreadRegistry,
    RedisReindexLock,
    RedisThreadRegistry,
    ReindexLock,
    ThreadRegistry,
    reindex_lock,
    thread_registry,
)
from bot.jobs import QueueUnavailableError


@pytest.fixture
def client(redis_or_memory) -> redis.Redis | None:
    return redis_or_memory[0]


@pytest.fixture
def prefix(redis_or_memory) -> str:
    return redis_or_memory[1]


def test_the_factories_choose_the_backend(redis_client: redis.Redis) -> None:
    assert isinstance(thread_registry(None, prefix="p:"), MemoryThreadRegistry)
    assert isinstance(thread_registry(redis_client, prefix="p:"), RedisThreadRegistry)
    assert isinstance(reindex_lock(None, prefix="p:"), MemoryReindexLock)
    assert isinstance(reindex_lock(redis_client, prefix="p:"), RedisReindexLock)


# -- the contract ----------------------------------------------------------------------


def test_a_remembered_thread_is_known_and_only_in_its_channel(client, prefix) -> None:
    threads: ThreadRegistry = thread_registry(client, prefix=prefix)
    assert not threads.contains("C1", "1700000000.000100")
    threads.remember("C1", "1700000000.000100")
    assert threads.contains("C1", "1700000000.000100")
    assert not threads.contains("C2", "1700000000.000100")
    assert not threads.contains("C1", "1700000000.000200")


def test_one_holder_at_a_time_and_only_the_holder_releases(client, prefix) -> None:
    lock: ReindexLock = reindex_lock(client, prefix=prefix)
    assert lock.acquire("job-1")
    assert not lock.acquire("job-2")
    lock.release("job-2")  # not theirs: nothing happens
    lock.refresh("job-2")
    assert not lock.acquire("job-2")
    lock.release("job-1")
    assert lock.acquire("job-2")


def test_concurrent_takers_get_the_lock_once(client, prefix) -> None:
    locks = [reindex_lock(client, prefix=prefix) for _ in range(4)] if client else []
    shared = locks[0] if locks else reindex_lock(None, prefix=prefix)
    barrier = threading.Barrier(12)

    def take(i: int) -> bool:
        barrier.wait()
        return (locks[i % 4] if locks else shared).acquire(f"job-{i}")

    with ThreadPoolExecutor(max_workers=12) as pool:
        assert list(pool.map(take, range(12))).count(True) == 1


def test_an_unrefreshed_lock_expires_and_a_refreshed_one_lasts(
    client, prefix, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conversation_state, "REINDEX_LOCK_TTL_S", 2)
    lock = reindex_lock(client, prefix=prefix)
    assert lock.acquire("crashed")
    time.sleep(2.3)
    assert lock.acquire("next"), "a crashed holder's lock frees itself"
    time.sleep(1.3)
    lock.refresh("next")
    time.sleep(1.3)  # 2.6 s after it was taken, 1.3 s after the refresh
    assert not lock.acquire("third")


# -- Redis only ------------------------------------------------------------------------


def test_the_redis_lock_is_shared_and_says_when_redis_is_down(
    redis_client: redis.Redis, redis_prefix: str, unreachable_redis_url: str
) -> None:
    app, worker = (reindex_lock(redis_client, prefix=redis_prefix) for _ in range(2))
    assert app.acquire("job-1")
    assert not worker.acquire("job-2")
    down = reindex_lock(redis.Redis.from_url(unreachable_redis_url), prefix=redis_prefix)
    with pytest.raises(QueueUnavailableError, match="re-index lock"):
        down.acquire("job-3")
    down.refresh("job-3")  # logged, not raised
    down.release("job-3")
