"""Jobs handed from the Slack app to the workers: their types and JSON form, and the
contract of the queue that carries them (:mod:`bot.ledger` records their state).

The app process imports this module, so it uses only the standard library and redis:
never torch or the RAG engine.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Protocol

import redis

from rag_core.errors import ConfigError, RagbotError

DEFAULT_PREFIX = "ragbot:"
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


class LeaseLost(Exception):
    """The worker no longer owns its delivery (another worker claimed it, a newer fence
    token was taken, or the worker handed it back while stopping): it must neither post
    nor acknowledge; whoever owns the job now finishes it."""


def new_job_id() -> str:
    """A random, URL-safe id (32 hex digits)."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class AskJob:
    """Answer ``text`` in the thread ``thread_ts`` of ``channel``.

    The answer is a new message in the thread; ``message_ts`` (the question) wears an
    :eyes: reaction until it is posted. ``enqueued_at`` is Unix time.
    """

    job_id: str
    channel: str
    thread_ts: str
    message_ts: str
    user: str
    text: str
    team: str = ""
    is_followup: bool = False
    enqueued_at: float = field(default_factory=time.time)
    private: bool = False  # answer only the asker (``/ask``, the message shortcut)
    response_url: str = ""  # where a private answer goes when the bot is not in the channel
    auto: bool = False  # asked without a mention in an answer-everything channel


@dataclass(frozen=True, slots=True)
class ReindexJob:
    """Re-index doc set ``docset`` ("" for every doc set); ``recreate`` re-embeds
    everything.

    Progress goes to the message ``progress_ts`` in ``channel`` when set, else to the
    slash command's ``response_url``.
    """

    job_id: str
    user: str
    channel: str
    docset: str = ""
    recreate: bool = False
    progress_ts: str | None = None
    response_url: str | None = None
    enqueued_at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class NoticeJob:
    """A short reply the app owes a user (empty question, too long, rate limited), posted
    by a worker so it gets the same Slack retries as answers. ``ephemeral`` sends it with
    ``chat.postEphemeral`` to ``user`` only."""

    job_id: str
    channel: str
    thread_ts: str
    user: str
    text: str
    ephemeral: bool = False
    enqueued_at: float = field(default_factory=time.time)


Job = AskJob | ReindexJob | NoticeJob

_KINDS: dict[str, type[AskJob] | type[ReindexJob] | type[NoticeJob]] = {
    "ask": AskJob,
    "reindex": ReindexJob,
    "notice": NoticeJob,
}


def job_kind(job: Job) -> str:
    """The ``kind`` of ``job`` in its JSON form ("ask", "reindex" or "notice")."""
    return next(kind for kind, cls in _KINDS.items() if isinstance(job, cls))


def job_to_json(job: Job) -> str:
    """The job as one JSON object; ``kind`` (see :func:`job_kind`) says which class it is."""
    kind = job_kind(job)
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


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What the queue holds now: ``queued`` jobs wait for a worker, ``pending`` ones were
    taken and not yet acknowledged, ``dead`` ones sit in the dead-letter stream."""

    queued: int
    pending: int
    dead: int


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A job taken and not yet acknowledged: who has it, for how long, how many times."""

    message_id: str
    consumer: str
    idle_ms: int
    deliveries: int


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

    def release(self, delivery: Delivery) -> bool:
        """Put the job back untouched because its worker is stopping: it runs again at
        once elsewhere, and this delivery does not count as one of its attempts.
        ``False`` when this consumer no longer owned it (finished, or claimed elsewhere),
        so nothing was put back."""
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

    def stats(self) -> QueueStats:
        """Queued, pending and dead-letter counts, read at metrics scrape time."""
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
    """Turn any Redis failure into :class:`QueueUnavailableError` naming ``action``.

    Not only a lost connection: a replica promoted mid-failover answers READONLY, a full
    one OOM, and the caller's answer is the same (pause, retry, tell the user).
    """
    try:
        yield
    except redis.exceptions.RedisError as exc:
        raise QueueUnavailableError(
            f"The job queue is unavailable: could not {action} ({exc})."
        ) from exc
