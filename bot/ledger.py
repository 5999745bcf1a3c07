"""The job ledger: what happened to each job, so a retried job never posts twice.

:class:`RedisJobLedger` keeps one Redis hash per job; :class:`InMemoryJobLedger` is its
single-process twin. Only the standard library and redis are imported: the app process
stays light.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from bot.jobs import DEFAULT_PREFIX, LEDGER_TTL_S, JobState, decode_text, redis_unavailable_as
from rag_core.errors import ConfigError

LEDGER_KEY = "job:"  # under the prefix: one hash per job id
PURGE_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What the ledger knows of one job.

    ``fence`` counts the deliveries that started running it: only the worker holding the
    latest token may post. ``posting`` says a post was attempted, so it may be in Slack
    even when ``posted_ts`` was never recorded.
    """

    state: JobState | None = None
    posted_ts: str | None = None
    fence: int = 0
    posting: bool = False


class JobLedger(Protocol):
    """What happened to each job, kept a day, so a retried job never posts its answer twice.

    The worker takes a fence token with :meth:`mark_running`, checks it is still current
    before posting, and edits the message whose ts :meth:`record` holds instead of
    posting again.
    """

    def mark_running(self, job_id: str, consumer: str) -> int:
        """Record ``consumer`` as running the job; returns its new fence token."""
        ...

    def mark_done(self, job_id: str) -> None: ...

    def mark_failed(self, job_id: str, error: str) -> None: ...

    def mark_posting(self, job_id: str) -> None:
        """A post is about to be sent: a redelivery must look for it before posting."""
        ...

    def record_posted(self, job_id: str, message_ts: str) -> None: ...

    def fence(self, job_id: str) -> int:
        """The latest fence token handed out by :meth:`mark_running` (0: none)."""
        ...

    def record(self, job_id: str) -> JobRecord: ...


def record_from_fields(values: dict[Any, Any]) -> JobRecord:
    """A :class:`JobRecord` from a ledger hash (str or bytes keys and values)."""
    text = {decode_text(k): decode_text(v) for k, v in values.items()}
    state = text.get("state")
    return JobRecord(
        state=JobState(state) if state else None,
        posted_ts=text.get("posted_ts") or None,
        fence=int(text.get("fence") or 0),
        posting=bool(text.get("posting")),
    )


class RedisJobLedger:
    """Job records as Redis hashes ``{prefix}job:{job_id}``, each expiring ``ttl_s`` after
    its last update. Every method raises :class:`QueueUnavailableError` when Redis fails,
    so the worker leaves the job unacknowledged rather than risk a second post.
    """

    def __init__(
        self, redis_client: redis.Redis, *, prefix: str = DEFAULT_PREFIX, ttl_s: int = LEDGER_TTL_S
    ) -> None:
        if ttl_s < 1:
            raise ConfigError(f"The job ledger TTL must be at least 1 second, got {ttl_s}.")
        self._redis = redis_client
        self._prefix = prefix
        self._ttl_s = ttl_s

    def _key(self, job_id: str) -> str:
        return f"{self._prefix}{LEDGER_KEY}{job_id}"

    def _write(self, job_id: str, values: dict[str, str], *, bump_fence: bool = False) -> int:
        key = self._key(job_id)
        with redis_unavailable_as("record the job state"):
            pipe = self._redis.pipeline(transaction=True)
            if bump_fence:
                pipe.hincrby(key, "fence", 1)
            pipe.hset(key, mapping={**values, "updated_at": f"{time.time():.3f}"})
            pipe.expire(key, self._ttl_s)
            replies = pipe.execute()
        return int(replies[0]) if bump_fence else 0

    def mark_running(self, job_id: str, consumer: str) -> int:
        values = {"state": JobState.RUNNING.value, "consumer": consumer}
        return self._write(job_id, values, bump_fence=True)

    def mark_done(self, job_id: str) -> None:
        self._write(job_id, {"state": JobState.DONE.value})

    def mark_failed(self, job_id: str, error: str) -> None:
        self._write(job_id, {"state": JobState.FAILED.value, "error": error})

    def mark_posting(self, job_id: str) -> None:
        self._write(job_id, {"posting": "1"})

    def record_posted(self, job_id: str, message_ts: str) -> None:
        self._write(job_id, {"posted_ts": message_ts})

    def fence(self, job_id: str) -> int:
        with redis_unavailable_as("read the job state"):
            return int(self._redis.hget(self._key(job_id), "fence") or 0)

    def record(self, job_id: str) -> JobRecord:
        with redis_unavailable_as("read the job state"):
            return record_from_fields(self._redis.hgetall(self._key(job_id)))


class InMemoryJobLedger:
    """The single-process ledger: a dict guarded by a lock, entries expiring after ``ttl_s``.

    Expired entries read as absent at once; they are dropped from memory once every
    ``purge_every_s`` seconds, on a write, so a write costs O(1) otherwise.
    """

    def __init__(
        self, *, ttl_s: float = LEDGER_TTL_S, purge_every_s: float = PURGE_EVERY_S
    ) -> None:
        self._ttl_s = ttl_s
        self._purge_every_s = purge_every_s
        self._lock = threading.Lock()
        self._records: dict[str, tuple[float, dict[str, Any]]] = {}
        self._next_purge = time.monotonic() + purge_every_s

    def _write(self, job_id: str, values: dict[str, Any], *, bump_fence: bool = False) -> int:
        now = time.monotonic()
        with self._lock:
            if now >= self._next_purge:
                self._records = {k: v for k, v in self._records.items() if v[0] > now}
                self._next_purge = now + self._purge_every_s
            expires, record = self._records.get(job_id, (0.0, {}))
            if expires <= now:
                record = {}
            fence = int(record.get("fence", 0)) + (1 if bump_fence else 0)
            self._records[job_id] = (now + self._ttl_s, {**record, **values, "fence": fence})
        return fence

    def _read(self, job_id: str, name: str) -> Any:
        with self._lock:
            expires, record = self._records.get(job_id, (0.0, {}))
        return record.get(name) if expires > time.monotonic() else None

    def mark_running(self, job_id: str, consumer: str) -> int:
        values = {"state": JobState.RUNNING, "consumer": consumer}
        return self._write(job_id, values, bump_fence=True)

    def mark_done(self, job_id: str) -> None:
        self._write(job_id, {"state": JobState.DONE})

    def mark_failed(self, job_id: str, error: str) -> None:
        self._write(job_id, {"state": JobState.FAILED, "error": error})

    def mark_posting(self, job_id: str) -> None:
        self._write(job_id, {"posting": "1"})

    def record_posted(self, job_id: str, message_ts: str) -> None:
        self._write(job_id, {"posted_ts": message_ts})

    def fence(self, job_id: str) -> int:
        return int(self._read(job_id, "fence") or 0)

    def record(self, job_id: str) -> JobRecord:
        with self._lock:
            expires, values = self._records.get(job_id, (0.0, {}))
        return record_from_fields(values if expires > time.monotonic() else {})
