"""Small shared facts the app and the workers keep in Redis (or in memory without it).

* the threads the bot has answered in, so a reply there is a follow-up without a mention;
* the re-index lock, so a second ``/reindex`` while one runs is refused, not started.

Each is a :class:`~typing.Protocol` with one implementation per backend; the factories
:func:`thread_registry` and :func:`reindex_lock` choose by whether a client is given.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import redis

from bot.jobs import redis_unavailable_as
from rag_core.redis_outage import RedisOutageLog

log = logging.getLogger(__name__)

THREAD_KEY = "thread:"
REINDEX_LOCK_KEY = "reindex:lock"
THREAD_TTL_S = 30 * 24 * 3600
REINDEX_LOCK_TTL_S = 15 * 60  # refreshed while the job runs; a crashed worker frees it


class ThreadRegistry(Protocol):
    """Remembers threads the bot answered in, for :data:`THREAD_TTL_S`."""

    def remember(self, channel: str, thread_ts: str) -> None: ...

    def contains(self, channel: str, thread_ts: str) -> bool: ...


class MemoryThreadRegistry:
    """A :class:`ThreadRegistry` of this process."""

    def __init__(self) -> None:
        self._until: dict[tuple[str, str], float] = {}  # -> time.monotonic() expiry
        self._lock = threading.Lock()

    def remember(self, channel: str, thread_ts: str) -> None:
        with self._lock:
            self._until[(channel, thread_ts)] = time.monotonic() + THREAD_TTL_S

    def contains(self, channel: str, thread_ts: str) -> bool:
        with self._lock:
            return self._until.get((channel, thread_ts), 0.0) > time.monotonic()


class RedisThreadRegistry:
    """A :class:`ThreadRegistry` shared by every replica: a Redis key per thread.

    While Redis is unavailable nothing is remembered and no thread counts as the bot's:
    replies there need an @mention until Redis is back (one warning per outage).
    """

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix + THREAD_KEY
        self._outage = RedisOutageLog(log, "not recognising follow-ups in the bot's threads")

    def remember(self, channel: str, thread_ts: str) -> None:
        key = f"{self._prefix}{channel}:{thread_ts}"
        self._outage.run(lambda: self._redis.set(key, 1, ex=THREAD_TTL_S), None)

    def contains(self, channel: str, thread_ts: str) -> bool:
        key = f"{self._prefix}{channel}:{thread_ts}"
        return self._outage.run(lambda: bool(self._redis.exists(key)), False)


def thread_registry(client: redis.Redis | None, *, prefix: str) -> ThreadRegistry:
    """The registry on ``client``, or in this process when it is None."""
    if client is None:
        return MemoryThreadRegistry()
    return RedisThreadRegistry(client, prefix=prefix)


class ReindexLock(Protocol):
    """One re-index at a time; a holder's lock expires after :data:`REINDEX_LOCK_TTL_S`
    unless refreshed, so a crashed holder frees it."""

    def acquire(self, holder: str) -> bool:
        """Take the lock for ``holder``; False while another holds it."""
        ...

    def refresh(self, holder: str) -> None:
        """Extend ``holder``'s lock; nothing when it is not theirs."""
        ...

    def release(self, holder: str) -> None:
        """Free ``holder``'s lock; nothing when it is not theirs."""
        ...


class MemoryReindexLock:
    """A :class:`ReindexLock` of this process."""

    def __init__(self) -> None:
        self._holder: str | None = None
        self._until = 0.0
        self._lock = threading.Lock()

    def acquire(self, holder: str) -> bool:
        with self._lock:
            if self._holder is not None and self._until > time.monotonic():
                return False
            self._holder, self._until = holder, time.monotonic() + REINDEX_LOCK_TTL_S
            return True

    def refresh(self, holder: str) -> None:
        with self._lock:
            if self._holder == holder:
                self._until = time.monotonic() + REINDEX_LOCK_TTL_S

    def release(self, holder: str) -> None:
        with self._lock:
            if self._holder == holder:
                self._holder = None


class RedisReindexLock:
    """A :class:`ReindexLock` across every app replica and worker.

    :meth:`acquire` raises :class:`~bot.jobs.QueueUnavailableError` while Redis is down
    (no re-index can be queued then anyway); :meth:`refresh` and :meth:`release` only
    log, and a lock they could not release expires by itself.
    """

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self._redis = client
        self._key = prefix + REINDEX_LOCK_KEY

    def acquire(self, holder: str) -> bool:
        with redis_unavailable_as("take the re-index lock"):
            return bool(self._redis.set(self._key, holder, nx=True, ex=REINDEX_LOCK_TTL_S))

    def refresh(self, holder: str) -> None:
        try:
            if self._redis.get(self._key) in (holder, holder.encode()):
                self._redis.expire(self._key, REINDEX_LOCK_TTL_S)
        except redis.RedisError as error:
            log.warning("could not refresh the re-index lock: %s", error)

    def release(self, holder: str) -> None:
        try:
            # Delete only our own lock: compare and delete in one step.
            self._redis.eval(
                "if redis.call('get', KEYS[1]) == ARGV[1] then "
                "return redis.call('del', KEYS[1]) else return 0 end",
                1,
                self._key,
                holder,
            )
        except redis.RedisError as error:
            log.warning("could not release the re-index lock (it expires by itself): %s", error)


def reindex_lock(client: redis.Redis | None, *, prefix: str) -> ReindexLock:
    """The lock on ``client``, or in this process when it is None."""
    if client is None:
        return MemoryReindexLock()
    return RedisReindexLock(client, prefix=prefix)
