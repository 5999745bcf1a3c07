"""Small shared facts the app and the workers keep in Redis (or in memory without it).

* the threads the bot has answered in, so a reply there is a follow-up without a mention;
* the re-index lock, so a second ``/reindex`` while one runs is refused, not started.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from bot.jobs import redis_unavailable_as
from rag_core.redis_outage import RedisOutageLog

log = logging.getLogger(__name__)

THREAD_KEY = "thread:"
REINDEX_LOCK_KEY = "reindex:lock"
THREAD_TTL_S = 30 * 24 * 3600
REINDEX_LOCK_TTL_S = 15 * 60  # refreshed while the job runs; a crashed worker frees it


class ThreadRegistry:
    """Remembers threads the bot answered in (a Redis key per thread, or a dict).

    While Redis is unavailable nothing is remembered and no thread counts as the bot's:
    replies there need an @mention until Redis is back (one warning per outage).
    """

    def __init__(self, client: redis.Redis | None, *, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix + THREAD_KEY
        self._memory: dict[str, float] = {}
        self._lock = threading.Lock()
        self._outage = RedisOutageLog(log, "not recognising follow-ups in the bot's threads")

    def remember(self, channel: str, thread_ts: str) -> None:
        key = f"{self._prefix}{channel}:{thread_ts}"
        if self._redis is None:
            with self._lock:
                self._memory[key] = time.monotonic() + THREAD_TTL_S
            return
        client = self._redis
        self._outage.run(lambda: client.set(key, 1, ex=THREAD_TTL_S), None)

    def contains(self, channel: str, thread_ts: str) -> bool:
        key = f"{self._prefix}{channel}:{thread_ts}"
        if self._redis is None:
            with self._lock:
                return self._memory.get(key, 0.0) > time.monotonic()
        client = self._redis
        return self._outage.run(lambda: bool(client.exists(key)), False)


class ReindexLock:
    """One re-index at a time across every app replica and worker.

    :meth:`acquire` raises :class:`QueueUnavailableError` while Redis is down (no
    re-index can be queued then anyway); :meth:`refresh` and :meth:`release` only log,
    and a lock they could not release expires after :data:`REINDEX_LOCK_TTL_S`.
    """

    def __init__(self, client: redis.Redis | None, *, prefix: str) -> None:
        self._redis = client
        self._key = prefix + REINDEX_LOCK_KEY
        self._holder: str | None = None
        self._until = 0.0
        self._lock = threading.Lock()

    def acquire(self, holder: str) -> bool:
        if self._redis is None:
            with self._lock:
                if self._holder is not None and self._until > time.monotonic():
                    return False
                self._holder, self._until = holder, time.monotonic() + REINDEX_LOCK_TTL_S
                return True
        with redis_unavailable_as("take the re-index lock"):
            return bool(self._redis.set(self._key, holder, nx=True, ex=REINDEX_LOCK_TTL_S))

    def refresh(self, holder: str) -> None:
        if self._redis is None:
            with self._lock:
                if self._holder == holder:
                    self._until = time.monotonic() + REINDEX_LOCK_TTL_S
            return
        try:
            if self._redis.get(self._key) in (holder, holder.encode()):
                self._redis.expire(self._key, REINDEX_LOCK_TTL_S)
        except redis.RedisError as error:
            log.warning("could not refresh the re-index lock: %s", error)

    def release(self, holder: str) -> None:
        if self._redis is None:
            with self._lock:
                if self._holder == holder:
                    self._holder = None
            return
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
