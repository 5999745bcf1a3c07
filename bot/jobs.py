"""Jobs handed from the Slack app to the workers: their types and JSON form, and the
contracts of the queue that carries them and of the ledger that records their state.

The app process imports this module, so it uses only the standard library and redis:
never torch or the RAG engine.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Protocol

import redis

from rag_core.errors import ConfigError, RagbotError

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "ragbot:"
LEDGER_KEY = "job:"  # under the prefix: one hash per job id
LEDGER_TTL_S = 86_400


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class QueueUnavailableError(RagbotError):
    """Redis, which carries the jobs, cannot be reached; the caller tells the user or retries."""


class RetryJob(Exception):
    """Raised by a job handler for a transient failure (a model server restarting, ...).

    The worker answers it with ``JobQueue.retry``: the job is offered again until the
    queue's ``max_attempts`` is reached, then it goes to the dead-letter stream.
    """


def new_job_id() -> str:
    """A random, URL-safe id (32 hex digits)."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class AskJob:
    """Answer ``text`` in the thread ``thread_ts`` of ``channel``.

    ``status_ts`` is the "Searching the docs…" placeholder the worker replaces with the
    answer; ``None`` means the worker posts a new message. ``enqueued_at`` is Unix time.
    """

    job_id: str
    channel: str
    thread_ts: str
    message_ts: str
    user: str
    text: str
    team: str = ""
    status_ts: str | None = None
    is_followup: bool = False
    enqueued_at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class ReindexJob:
    """Re-index the documents under ``path``; ``recreate`` drops the old collection first.

    Progress goes to the message ``progress_ts`` in ``channel`` when set, else to the
    slash command's ``response_url``.
    """

    job_id: str
    user: str
    channel: str
    path: str
    recreate: bool = False
    progress_ts: str | None = None
    response_url: str | None = None
    enqueued_at: float = field(default_factory=time.time)


Job = AskJob | ReindexJob

_KINDS: dict[str, type[AskJob] | type[ReindexJob]] = {"ask": AskJob, "reindex": ReindexJob}


def job_to_json(job: Job) -> str:
    """The job as one JSON object; ``kind`` ("ask" or "reindex") says which class it is."""
    kind = "ask" if isinstance(job, AskJob) else "reindex"
    return json.dumps({"kind": kind, **asdict(job)}, ensure_ascii=False, separators=(",", ":"))


def job_from_json(payload: str | bytes) -> Job:
    """Parse :func:`job_to_json` output; unknown fields are ignored (a newer app may add some).

    Raises ``ValueError`` for malformed JSON, an unknown ``kind`` or missing fields.
    """
    try:
        data = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"job payload is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("job payload is not a JSON object")
    kind = data.get("kind")
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown job kind {kind!r}")
    known = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise ValueError(f"incomplete {kind} job: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Delivery:
    """One hand-over of a job to a worker.

    ``attempts`` counts deliveries, this one included. ``exhausted`` means the job was
    delivered more than ``max_attempts`` times: it is already in the dead-letter stream,
    the worker must not run it again, only tell the user (``last_error`` says what went
    wrong last); acknowledging it is unnecessary and harmless.
    """

    job: Job
    message_id: str
    attempts: int
    consumer: str = ""
    exhausted: bool = False
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A job given up on: ``payload`` is its JSON, ``failed_at`` Unix time."""

    message_id: str
    payload: str
    error: str
    attempts: int
    failed_at: float


class JobQueue(Protocol):
    """A durable, at-least-once queue of jobs shared by the app and the workers."""

    max_attempts: int
    stale_after_ms: int

    def enqueue(self, job: Job) -> str:
        """Add ``job``; returns its message id. Raises :class:`QueueUnavailableError`."""
        ...

    def take(self, consumer: str, *, block_ms: int) -> Delivery | None:
        """A stale job of a dead worker, else a new one, waiting up to ``block_ms``
        (0: not at all); ``None`` when there is none. Raises :class:`QueueUnavailableError`
        while Redis is down: sleep a little and call again, it recovers by itself."""
        ...

    def ack(self, delivery: Delivery) -> None:
        """The job is finished: forget it."""
        ...

    def retry(self, delivery: Delivery, error: str, *, delay_ms: int = 0) -> bool:
        """Offer the job again after ``delay_ms``; ``False`` when it had used all its
        attempts and went to the dead-letter stream instead (tell the user)."""
        ...

    def fail(self, delivery: Delivery, error: str) -> None:
        """The job failed for good: move it to the dead-letter stream with ``error``."""
        ...

    def touch(self, delivery: Delivery) -> bool:
        """Heartbeat for a long job: reset its idle time so no other worker claims it.
        ``False`` when this consumer no longer owns it (claimed elsewhere or finished)."""
        ...

    def claim_stale(
        self, consumer: str, *, min_idle_ms: int | None = None, count: int = 10
    ) -> list[Delivery]:
        """Take over up to ``count`` jobs idle for ``min_idle_ms`` (default
        ``stale_after_ms``), counting one more attempt for each."""
        ...

    def depth(self) -> int:
        """Jobs enqueued and not yet finished: waiting plus running."""
        ...

    def dead_letters(self, count: int = 20) -> list[DeadLetter]:
        """The most recent dead letters, newest first."""
        ...

    def ping(self) -> bool:
        """Whether the queue can be used now (for health checks)."""
        ...

    def close(self) -> None:
        """Stop accepting jobs. The Redis client belongs to the caller and stays open."""
        ...


def check_queue_limits(max_attempts: int, stale_after_ms: int) -> None:
    """Raise :class:`ConfigError` for limits no queue can work with."""
    if max_attempts < 1:
        raise ConfigError(f"The job queue needs max_attempts >= 1, got {max_attempts}.")
    if stale_after_ms < 1:
        raise ConfigError(f"The job queue needs stale_after_ms >= 1, got {stale_after_ms}.")


def decode_text(value: bytes | str | None) -> str | None:
    """Redis replies are bytes or str depending on ``decode_responses``; normalise to str."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


@contextmanager
def redis_unavailable_as(action: str) -> Iterator[None]:
    """Turn a lost Redis connection into :class:`QueueUnavailableError` naming ``action``."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise QueueUnavailableError(
            f"The job queue is unavailable: could not {action} ({exc})."
        ) from exc


class JobLedger(Protocol):
    """What happened to each job, kept a day, so a retried job never posts its answer twice.

    The worker checks :meth:`posted_ts` before posting and edits that message instead.
    """

    def mark_queued(self, job_id: str) -> None: ...

    def mark_running(self, job_id: str, consumer: str) -> None: ...

    def mark_done(self, job_id: str) -> None: ...

    def mark_failed(self, job_id: str, error: str) -> None: ...

    def record_posted(self, job_id: str, message_ts: str) -> None: ...

    def posted_ts(self, job_id: str) -> str | None: ...

    def state(self, job_id: str) -> JobState | None: ...


class RedisJobLedger:
    """Job records as Redis hashes ``{prefix}job:{job_id}``, each expiring ``ttl_s`` after
    its last update. Every method raises :class:`QueueUnavailableError` when Redis is down,
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

    def _write(self, job_id: str, values: dict[str, str]) -> None:
        key = self._key(job_id)
        with redis_unavailable_as("record the job state"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(key, mapping={**values, "updated_at": f"{time.time():.3f}"})
            pipe.expire(key, self._ttl_s)
            pipe.execute()

    def mark_queued(self, job_id: str) -> None:
        self._write(job_id, {"state": JobState.QUEUED.value})

    def mark_running(self, job_id: str, consumer: str) -> None:
        self._write(job_id, {"state": JobState.RUNNING.value, "consumer": consumer})

    def mark_done(self, job_id: str) -> None:
        self._write(job_id, {"state": JobState.DONE.value})

    def mark_failed(self, job_id: str, error: str) -> None:
        self._write(job_id, {"state": JobState.FAILED.value, "error": error})

    def record_posted(self, job_id: str, message_ts: str) -> None:
        self._write(job_id, {"posted_ts": message_ts})

    def posted_ts(self, job_id: str) -> str | None:
        with redis_unavailable_as("read the job state"):
            return decode_text(self._redis.hget(self._key(job_id), "posted_ts"))

    def state(self, job_id: str) -> JobState | None:
        with redis_unavailable_as("read the job state"):
            value = decode_text(self._redis.hget(self._key(job_id), "state"))
        return JobState(value) if value else None
