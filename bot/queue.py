"""The Redis job queue between the Slack app and the workers.

:class:`RedisJobQueue` keeps jobs in a Redis stream read by a consumer group, so any
number of workers on any number of machines share them, and a job taken by a worker
that dies is claimed by another once it has been idle ``stale_after_ms``.
:class:`~bot.local_queue.InMemoryJobQueue` (re-exported here) is its single-process twin,
used when no Redis URL is set. The contract they share is :class:`bot.jobs.JobQueue`.

Life of a job: ``enqueue`` -> ``take`` -> (``touch`` while it runs) -> ``ack`` when done,
``retry`` for a transient failure, ``fail`` for a permanent one. A job delivered more than
``max_attempts`` times is moved to the dead-letter stream and ``take`` hands it over one
last time with ``Delivery.exhausted`` set, so the worker can tell the user instead of
running it again.

Only the standard library and redis are imported: the app process stays light.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import redis

from bot.jobs import (
    DEFAULT_PREFIX,
    LEDGER_TTL_S,
    DeadLetter,
    Delivery,
    Job,
    JobQueue,
    PendingJob,
    QueueStats,
    QueueUnavailableError,
    RetryJob,
    check_queue_limits,
    decode_text,
    job_from_json,
    job_to_json,
    redis_unavailable_as,
)
from bot.ledger import InMemoryJobLedger, JobLedger, JobRecord, RedisJobLedger
from bot.local_queue import InMemoryJobQueue
from rag_core.errors import ConfigError

__all__ = [
    "DeadLetter",
    "Delivery",
    "InMemoryJobLedger",
    "InMemoryJobQueue",
    "JobLedger",
    "JobQueue",
    "JobRecord",
    "QueueUnavailableError",
    "RedisJobLedger",
    "RedisJobQueue",
    "RetryJob",
]

log = logging.getLogger(__name__)

DEFAULT_STREAM = "jobs"
DEFAULT_GROUP = "workers"
DEAD_SUFFIX = ":dead"  # {prefix}{stream}:dead, the dead-letter stream
ERRORS_SUFFIX = ":errors"  # {prefix}{stream}:errors, last error per pending message id
DEAD_LETTER_MAXLEN = 10_000

T = TypeVar("T")

# Reset the idle time (and, given ARGV[5], the delivery count) of an entry, but only
# while ``consumer`` still owns it: a worker whose job was already claimed by another
# must not steal it back.
# KEYS[1] stream; ARGV group, consumer, message id, idle time to set (ms), [deliveries].
_RECLAIM_LUA = """
local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #owned == 0 then return 0 end
if ARGV[5] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[4],
    'RETRYCOUNT', ARGV[5], 'JUSTID')
else
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[4], 'JUSTID')
end
return 1
"""

# Move one dead letter back onto the queue as a new entry, in one step: a retry run twice
# at once queues it once. KEYS[1] stream, KEYS[2] dead-letter stream; ARGV[1] its entry id.
_REQUEUE_DEAD_LUA = """
local found = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
if #found == 0 then return false end
local fields = found[1][2]
for i = 1, #fields, 2 do
  if fields[i] == 'job' then
    local id = redis.call('XADD', KEYS[1], '*', 'job', fields[i + 1])
    redis.call('XDEL', KEYS[2], ARGV[1])
    return id
  end
end
return false
"""


def _field(fields: dict[Any, Any] | None, name: str) -> str:
    if not fields:
        return ""
    return decode_text(fields.get(name.encode(), fields.get(name))) or ""


def _stream_entries(reply: Any) -> list[tuple[Any, dict[Any, Any]]]:
    """The entries of an XREADGROUP reply on one stream, whichever protocol shape it has."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else (entries for _, entries in reply)
    return [entry for entries in streams for entry in entries]


class RedisJobQueue:
    """Jobs in the Redis stream ``{prefix}{stream}`` read by consumer group ``group``.

    The group is created on first use and again if a Redis restart lost it. The client
    must have a socket timeout longer than the ``block_ms`` given to :meth:`take` (or
    none). ``close`` leaves the client open: whoever built it closes it.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        stream: str = DEFAULT_STREAM,
        group: str = DEFAULT_GROUP,
        max_attempts: int = 3,
        stale_after_ms: int = 60_000,
    ) -> None:
        check_queue_limits(max_attempts, stale_after_ms)
        if not stream or not group:
            raise ConfigError("The job queue needs a stream name and a consumer group name.")
        self._redis = redis_client
        self.stream_key = f"{prefix}{stream}"
        self.dead_letter_key = f"{self.stream_key}{DEAD_SUFFIX}"
        self._errors_key = f"{self.stream_key}{ERRORS_SUFFIX}"
        self._group = group
        self.max_attempts = max_attempts
        self.stale_after_ms = stale_after_ms
        self._reclaim = redis_client.register_script(_RECLAIM_LUA)
        self._group_ready = False

    def enqueue(self, job: Job) -> str:
        with redis_unavailable_as("enqueue the job"):
            message_id = self._redis.xadd(self.stream_key, {"job": job_to_json(job)})
        return decode_text(message_id) or ""

    def take(self, consumer: str, *, block_ms: int) -> Delivery | None:
        if not consumer:
            raise ConfigError("A worker needs a consumer name to take jobs.")
        with redis_unavailable_as("take a job"):
            return self._in_group(lambda: self._take(consumer, block_ms))

    def ack(self, delivery: Delivery) -> None:
        with redis_unavailable_as("acknowledge the job"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.xack(self.stream_key, self._group, delivery.message_id)
            pipe.xdel(self.stream_key, delivery.message_id)
            pipe.hdel(self._errors_key, delivery.message_id)
            pipe.execute()

    def retry(self, delivery: Delivery, error: str, *, delay_ms: int = 0) -> bool:
        with redis_unavailable_as("put the job back"):
            if delivery.attempts >= self.max_attempts:
                self._bury(delivery.message_id, job_to_json(delivery.job), error, delivery.attempts)
                return False
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(self._errors_key, delivery.message_id, error)
            pipe.expire(self._errors_key, LEDGER_TTL_S)
            pipe.execute()
            # Make it look idle for (stale_after_ms - delay_ms) already: the next take
            # anywhere claims it once delay_ms has passed.
            idle_ms = max(0, self.stale_after_ms - max(0, delay_ms))
            self._reclaim_if_owned(delivery, idle_ms)
        return True

    def release(self, delivery: Delivery) -> bool:
        with redis_unavailable_as("put the job back"):
            # Idle for stale_after_ms already, and delivered once less: the next take
            # anywhere claims it, counting this delivery again.
            return self._reclaim_if_owned(
                delivery, self.stale_after_ms, deliveries=max(0, delivery.attempts - 1)
            )

    def fail(self, delivery: Delivery, error: str) -> None:
        with redis_unavailable_as("record the failed job"):
            self._bury(delivery.message_id, job_to_json(delivery.job), error, delivery.attempts)

    def touch(self, delivery: Delivery) -> bool:
        with redis_unavailable_as("extend the job's lease"):
            return self._reclaim_if_owned(delivery, 0)

    def claim_stale(
        self, consumer: str, *, min_idle_ms: int | None = None, count: int = 10
    ) -> list[Delivery]:
        idle = self.stale_after_ms if min_idle_ms is None else min_idle_ms
        with redis_unavailable_as("claim stale jobs"):
            return self._in_group(lambda: self._claim(consumer, idle, count))

    def depth(self) -> int:
        with redis_unavailable_as("read the queue depth"):
            return int(self._redis.xlen(self.stream_key))

    def dead_letters(self, count: int = 20) -> list[DeadLetter]:
        with redis_unavailable_as("read the dead letters"):
            entries = self._redis.xrevrange(self.dead_letter_key, "+", "-", count=count)
        return [
            DeadLetter(
                message_id=_field(fields, "message_id"),
                payload=_field(fields, "job"),
                error=_field(fields, "error"),
                attempts=int(_field(fields, "attempts") or 0),
                failed_at=float(_field(fields, "failed_at") or 0.0),
            )
            for _, fields in entries
        ]

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except redis.exceptions.RedisError:
            return False

    def close(self) -> None:
        """Nothing to release: the Redis client belongs to the caller."""

    # -- internals ----------------------------------------------------------------

    def _in_group(self, action: Callable[[], T]) -> T:
        """Run ``action`` once the consumer group exists, recreating it if Redis lost it."""
        if not self._group_ready:
            self._create_group()
        try:
            return action()
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("consumer group %s vanished; recreating it", self._group)
            self._create_group()
            return action()

    def _create_group(self) -> None:
        try:
            self._redis.xgroup_create(self.stream_key, self._group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def _take(self, consumer: str, block_ms: int) -> Delivery | None:
        claimed = self._claim(consumer, self.stale_after_ms, 1)
        if claimed:
            return claimed[0]
        deadline = time.monotonic() + block_ms / 1000
        while True:
            wait_ms = max(1, round((deadline - time.monotonic()) * 1000)) if block_ms > 0 else 0
            reply = self._redis.xreadgroup(
                self._group,
                consumer,
                {self.stream_key: ">"},
                count=1,
                block=wait_ms or None,
            )
            entries = _stream_entries(reply)
            if not entries:
                return None
            message_id, fields = entries[0]
            delivery = self._deliver(decode_text(message_id) or "", fields, consumer, 1)
            if delivery is not None:
                return delivery
            # An unreadable payload was dead-lettered: on to the next entry.

    def _claim(self, consumer: str, min_idle_ms: int, count: int) -> list[Delivery]:
        deliveries: list[Delivery] = []
        cursor = "0-0"
        while len(deliveries) < count:
            reply = self._redis.xautoclaim(
                self.stream_key,
                self._group,
                consumer,
                min_idle_ms,
                start_id=cursor,
                count=count - len(deliveries),
            )
            for raw_id, fields in reply[1]:
                message_id = decode_text(raw_id) or ""
                if fields is None:  # deleted meanwhile (Redis 6.2 reports these inline)
                    self._redis.xack(self.stream_key, self._group, message_id)
                    continue
                delivery = self._deliver(message_id, fields, consumer, self._attempts(message_id))
                if delivery is not None:
                    deliveries.append(delivery)
            cursor = decode_text(reply[0]) or "0-0"
            if cursor == "0-0":
                break
        return deliveries

    def _attempts(self, message_id: str) -> int:
        pending = self._redis.xpending_range(
            self.stream_key, self._group, min=message_id, max=message_id, count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 1

    def _deliver(
        self, message_id: str, fields: dict[Any, Any], consumer: str, attempts: int
    ) -> Delivery | None:
        """A :class:`Delivery`, or ``None`` for an unreadable payload (dead-lettered)."""
        payload = _field(fields, "job")
        try:
            job = job_from_json(payload)
        except ValueError as exc:
            log.error("dead-lettering unreadable job %s: %s", message_id, exc)
            self._bury(message_id, payload, f"unreadable job: {exc}", attempts)
            return None
        last_error = ""
        if attempts > 1:
            last_error = decode_text(self._redis.hget(self._errors_key, message_id)) or ""
        delivery = Delivery(job, message_id, attempts, consumer, last_error=last_error)
        if attempts <= self.max_attempts:
            return delivery
        error = last_error or f"no worker finished it in {self.max_attempts} attempts"
        log.warning("job %s delivered %d times; dead-lettered: %s", job.job_id, attempts, error)
        self._bury(message_id, payload, error, attempts)
        return replace(delivery, exhausted=True, last_error=error)

    def _bury(self, message_id: str, payload: str, error: str, attempts: int) -> None:
        """Move one entry to the dead-letter stream, atomically."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.xadd(
            self.dead_letter_key,
            {
                "job": payload,
                "error": error,
                "attempts": attempts,
                "message_id": message_id,
                "failed_at": f"{time.time():.3f}",
            },
            maxlen=DEAD_LETTER_MAXLEN,
            approximate=True,
        )
        pipe.xack(self.stream_key, self._group, message_id)
        pipe.xdel(self.stream_key, message_id)
        pipe.hdel(self._errors_key, message_id)
        pipe.execute()

    def _reclaim_if_owned(
        self, delivery: Delivery, idle_ms: int, *, deliveries: int | None = None
    ) -> bool:
        args: list[str | int] = [self._group, delivery.consumer, delivery.message_id, idle_ms]
        if deliveries is not None:
            args.append(deliveries)
        try:
            owned = self._reclaim(keys=[self.stream_key], args=args)
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" in str(exc):
                return False
            raise
        return bool(owned)

    # -- operations (metrics and ``ragbot jobs``) ---------------------------------

    def stats(self) -> QueueStats:
        with redis_unavailable_as("read the queue statistics"):
            pipe = self._redis.pipeline(transaction=False)
            pipe.xlen(self.stream_key)
            pipe.xlen(self.dead_letter_key)
            length, dead = pipe.execute()
            pending = self._pending_count()
        # Acknowledged entries are deleted, so the stream holds the waiting and the taken.
        return QueueStats(queued=max(0, int(length) - pending), pending=pending, dead=int(dead))

    def pending_jobs(self, count: int = 20) -> list[PendingJob]:
        """Jobs taken and not acknowledged, oldest first, with their consumer and idle time."""
        with redis_unavailable_as("read the pending jobs"):
            try:
                rows = self._redis.xpending_range(
                    self.stream_key, self._group, min="-", max="+", count=count
                )
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    return []
                raise
        return [
            PendingJob(
                message_id=decode_text(row["message_id"]) or "",
                consumer=decode_text(row["consumer"]) or "",
                idle_ms=int(row["time_since_delivered"]),
                deliveries=int(row["times_delivered"]),
            )
            for row in rows
        ]

    def requeue_dead(self, message_id: str | None = None) -> list[tuple[str, str]]:
        """Put dead letters back on the queue as new jobs with fresh attempts: the one whose
        ``DeadLetter.message_id`` (or dead-letter entry id) is ``message_id``, or every one
        for ``None``. Each move is atomic. Returns ``(old message id, new message id)`` pairs;
        empty when no such dead letter exists."""
        script = self._redis.register_script(_REQUEUE_DEAD_LUA)
        moved: list[tuple[str, str]] = []
        with redis_unavailable_as("re-queue dead letters"):
            for entry_id, original in self._dead_entries():
                if message_id is not None and message_id not in (entry_id, original):
                    continue
                new_id = script(keys=[self.stream_key, self.dead_letter_key], args=[entry_id])
                if new_id:
                    moved.append((original or entry_id, decode_text(new_id) or ""))
                if message_id is not None:
                    break
        return moved

    def _pending_count(self) -> int:
        try:
            summary = self._redis.xpending(self.stream_key, self._group)
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" in str(exc):  # nothing was ever taken
                return 0
            raise
        return int(summary["pending"])

    def _dead_entries(self, batch: int = 500) -> list[tuple[str, str]]:
        """Every dead letter, oldest first: ``(entry id, original message id)``."""
        found: list[tuple[str, str]] = []
        start = "-"
        while True:
            entries = self._redis.xrange(self.dead_letter_key, start, "+", count=batch)
            for raw_id, fields in entries:
                found.append((decode_text(raw_id) or "", _field(fields, "message_id")))
            if len(entries) < batch:
                return found
            start = f"({found[-1][0]}"
