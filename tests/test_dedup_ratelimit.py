"""Event de-duplication, the per-user rate limit and feedback votes, on Redis and in memory."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from bot.conversation_state import thread_registry
from bot.dedup import EventDeduplicator
from bot.feedback import FeedbackStore
from bot.ratelimit import RateLimiter
from rag_core.errors import InputError
from tests.fixtures.redis_db import RedisServerProcess, _free_port


@pytest.fixture
def backend(redis_or_memory) -> tuple[redis.Redis | None, str]:
    """The Redis client (``None`` for the in-memory variant) and the key prefix."""
    return redis_or_memory


def warnings_from(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == logger and r.levelno == logging.WARNING
    ]


# -- de-duplication -------------------------------------------------------------------


def test_a_mention_and_its_message_twin_and_retries_are_one_event(
    backend: tuple[redis.Redis | None, str],
) -> None:
    client, prefix = backend
    dedup = EventDeduplicator(client, prefix=prefix)
    assert dedup.first_time("event:Ev1", "msg:C1:1700000000.000100")
    assert not dedup.first_time("event:Ev2", "msg:C1:1700000000.000100"), "the message twin"
    assert not dedup.first_time("event:Ev1", "msg:C1:1700000000.000100"), "a Slack retry"
    assert not dedup.first_time("event:Ev2", "msg:C9:1"), "the twin's event id was claimed too"
    assert dedup.first_time("event:Ev3", "msg:C1:1700000000.000200"), "a new message"
    assert dedup.first_time("event:Ev4", "msg:C2:1700000000.000100"), "same ts, other channel"


def test_concurrent_replicas_let_exactly_one_caller_through(
    backend: tuple[redis.Redis | None, str],
) -> None:
    client, prefix = backend
    shared = EventDeduplicator(client, prefix=prefix)
    replicas = [EventDeduplicator(client, prefix=prefix) for _ in range(4)] if client else [shared]
    barrier = threading.Barrier(16)

    def deliver(i: int) -> bool:
        barrier.wait()
        replica = replicas[i % len(replicas)]
        # Half the callers see the app_mention, half the message event.
        return replica.first_time(f"event:Ev{i % 2}", "msg:C1:42.000001")

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(deliver, range(16)))
    assert results.count(True) == 1


def test_claimed_keys_expire_after_ttl(backend: tuple[redis.Redis | None, str]) -> None:
    client, prefix = backend
    dedup = EventDeduplicator(client, prefix=prefix, ttl_s=0.2)
    assert dedup.first_time("event:Ev1")
    assert not dedup.first_time("event:Ev1")
    time.sleep(0.3)
    assert dedup.first_time("event:Ev1")


def test_redis_dedup_keys_carry_the_ttl(redis_client: redis.Redis, redis_prefix: str) -> None:
    EventDeduplicator(redis_client, prefix=redis_prefix, ttl_s=3600).first_time("event:E", "m")
    for key in ("event:E", "m"):
        assert 3590 < redis_client.pttl(f"{redis_prefix}dedup:{key}") / 1000 <= 3600


def test_dedup_without_redis_lets_events_through_and_warns_once(
    unreachable_redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    dedup = EventDeduplicator(redis.Redis.from_url(unreachable_redis_url))
    with caplog.at_level(logging.WARNING, logger="bot.dedup"):
        assert all(dedup.first_time("event:Ev1", "msg:C1:1") for _ in range(3))
    [message] = warnings_from(caplog, "bot.dedup")
    assert "treating events as new" in message


def test_released_keys_let_the_event_through_again(
    backend: tuple[redis.Redis | None, str],
) -> None:
    client, prefix = backend
    dedup = EventDeduplicator(client, prefix=prefix)
    assert dedup.first_time("event:Ev1", "msg:C1:1")
    dedup.release("event:Ev1", "msg:C1:1")
    assert dedup.first_time("event:Ev1", "msg:C1:1"), "Slack's retry after a queue outage"
    assert not dedup.first_time("msg:C1:1")
    dedup.release()  # nothing to forget


@pytest.mark.parametrize("refusal", ["oom", "readonly"])
def test_redis_refusing_writes_is_an_outage_for_every_fallback(
    redis_server: RedisServerProcess, caplog: pytest.LogCaptureFixture, refusal: str
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    if refusal == "oom":
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")  # below what an empty Redis uses
    else:
        client.execute_command("REPLICAOF", "127.0.0.1", str(_free_port()))
    dedup = EventDeduplicator(client)
    limiter = RateLimiter(client, limit=1, window_s=60)
    threads = thread_registry(client, prefix="ragbot:")
    try:
        with caplog.at_level(logging.WARNING):
            assert all(dedup.first_time("event:Ev1") for _ in range(2))
            # Under OOM the limit may still work: a script that wrote once may write on.
            assert limiter.allow("U1").allowed
            threads.remember("C1", "1.0")
            assert not threads.contains("C1", "1.0")
            dedup.release("event:Ev1")
    finally:
        client.close()
    assert len(warnings_from(caplog, "bot.dedup")) == 1
    assert len(warnings_from(caplog, "bot.ratelimit")) <= 1
    assert len(warnings_from(caplog, "bot.conversation_state")) == 1


def test_dedup_needs_keys() -> None:
    with pytest.raises(InputError):
        EventDeduplicator(None).first_time()
    with pytest.raises(InputError):
        EventDeduplicator(None).first_time("event:1", "")


# -- rate limit -------------------------------------------------------------------------


def test_the_limit_denies_with_retry_after_then_the_window_slides(
    backend: tuple[redis.Redis | None, str],
) -> None:
    client, prefix = backend
    limiter = RateLimiter(client, prefix=prefix, limit=2, window_s=0.5)
    assert limiter.allow("U1").allowed
    assert limiter.allow("U1").allowed
    denied = limiter.allow("U1")
    assert not denied.allowed and denied.retry_after_s == 1
    assert limiter.allow("U2").allowed, "users are limited separately"
    time.sleep(0.55)
    assert limiter.allow("U1").allowed


def test_retry_after_counts_down_to_the_oldest_question(
    backend: tuple[redis.Redis | None, str],
) -> None:
    client, prefix = backend
    limiter = RateLimiter(client, prefix=prefix, limit=1, window_s=3)
    assert limiter.allow("U1").allowed
    assert limiter.allow("U1").retry_after_s == 3
    time.sleep(1.1)
    assert limiter.allow("U1").retry_after_s == 2


def test_refused_questions_do_not_extend_the_wait(backend: tuple[redis.Redis | None, str]) -> None:
    client, prefix = backend
    limiter = RateLimiter(client, prefix=prefix, limit=1, window_s=0.4)
    assert limiter.allow("U1").allowed
    time.sleep(0.25)
    assert not limiter.allow("U1").allowed
    time.sleep(0.2)
    assert limiter.allow("U1").allowed


def test_replicas_share_one_limit(redis_client: redis.Redis, redis_prefix: str) -> None:
    first = RateLimiter(redis_client, prefix=redis_prefix, limit=2, window_s=60)
    second = RateLimiter(redis_client, prefix=redis_prefix, limit=2, window_s=60)
    assert first.allow("U1").allowed
    assert second.allow("U1").allowed
    denied = first.allow("U1")
    assert not denied.allowed and 58 <= denied.retry_after_s <= 60
    assert not second.allow("U1").allowed


@pytest.mark.parametrize("limit", [0, -1])
def test_a_non_positive_limit_disables_limiting(limit: int, unreachable_redis_url: str) -> None:
    limiter = RateLimiter(redis.Redis.from_url(unreachable_redis_url), limit=limit, window_s=60)
    assert not limiter.enabled
    assert all(limiter.allow("U1").allowed for _ in range(50))


def test_rate_limit_without_redis_allows_and_warns_once(
    unreachable_redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RateLimiter(redis.Redis.from_url(unreachable_redis_url), limit=1, window_s=60)
    with caplog.at_level(logging.WARNING, logger="bot.ratelimit"):
        assert all(limiter.allow("U1").allowed for _ in range(3))
    assert len(warnings_from(caplog, "bot.ratelimit")) <= 1


# -- feedback ---------------------------------------------------------------------------


@pytest.fixture
def feedback(backend: tuple[redis.Redis | None, str]) -> Callable[..., FeedbackStore]:
    client, prefix = backend
    return lambda **kw: FeedbackStore(client, prefix=prefix, **kw)


def test_a_users_second_click_replaces_the_first(feedback: Callable[..., FeedbackStore]) -> None:
    store = feedback()
    store.record("A1", "U1", "up", question="How do I deploy?")
    assert store.counts("A1") == {"up": 1, "down": 0}
    store.record("A1", "U1", "down", question="How do I deploy?")
    assert store.counts("A1") == {"up": 0, "down": 1}
    store.record("A1", "U2", "down")
    store.record("A2", "U1", "up")
    assert store.counts("A1") == {"up": 0, "down": 2}
    assert store.counts("A2") == {"up": 1, "down": 0}
    assert store.counts("never-voted") == {"up": 0, "down": 0}


def test_recent_votes_are_kept_newest_first_and_capped(
    feedback: Callable[..., FeedbackStore],
) -> None:
    store = feedback(recent_limit=3)
    for i in range(5):
        store.record(f"A{i}", "U1", "up" if i % 2 else "down", question=f"question {i}")
    recent = store.recent()
    assert [e.answer_id for e in recent] == ["A4", "A3", "A2"]
    assert (recent[0].vote, recent[0].question, recent[0].user_id) == ("down", "question 4", "U1")
    assert recent[0].at == pytest.approx(time.time(), abs=30)


def test_a_vote_must_be_up_or_down(feedback: Callable[..., FeedbackStore]) -> None:
    with pytest.raises(InputError, match="'up' or 'down'"):
        feedback().record("A1", "U1", "meh")  # type: ignore[arg-type]


def test_feedback_without_redis_is_dropped_quietly(
    unreachable_redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = FeedbackStore(redis.Redis.from_url(unreachable_redis_url))
    with caplog.at_level(logging.WARNING, logger="bot.feedback"):
        store.record("A1", "U1", "up")
        assert store.counts("A1") == {"up": 0, "down": 0}
        assert store.recent() == []
    assert len(warnings_from(caplog, "bot.feedback")) == 1
