"""The single-process job queue, used when no Redis URL is set.

Same contract (:class:`bot.jobs.JobQueue`) and the same semantics as the Redis version in
:mod:`bot.queue`, kept in memory: nothing survives a restart. Only the standard library
is imported.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

from bot.jobs import (
    DeadLetter,
    Delivery,
    Job,
    QueueStats,
    QueueUnavailableError,
    check_queue_limits,
    job_to_json,
)
from rag_core.errors import ConfigError


@dataclass(slots=True)
class _Entry:
    job: Job
    attempts: int = 0
    consumer: str | None = None
    delivered_at: float = 0.0  # time.monotonic() seconds
    last_error: str = ""
    retry_at: float | None = None  # time.monotonic() seconds; set while a retry waits


class InMemoryJobQueue:
    """The single-process queue: same protocol and semantics, nothing survives a restart.

    New jobs wait in a ``queue.Queue``; taken ones stay in a dict until acknowledged, so a
    worker thread that dies leaves its job to be claimed like in Redis.
    """

    def __init__(
        self, *, max_attempts: int = 3, stale_after_ms: int = 60_000, dead_letter_limit: int = 1000
    ) -> None:
        check_queue_limits(max_attempts, stale_after_ms)
        self.max_attempts = max_attempts
        self.stale_after_ms = stale_after_ms
        self._lock = threading.Lock()
        self._waiting: queue.Queue[str] = queue.Queue()
        self._entries: dict[str, _Entry] = {}
        self._dead: deque[DeadLetter] = deque(maxlen=dead_letter_limit)
        self._ids = itertools.count(1)
        self._closed = False

    def enqueue(self, job: Job) -> str:
        if self._closed:
            raise QueueUnavailableError("The job queue is closed.")
        with self._lock:
            message_id = f"{next(self._ids)}-0"
            self._entries[message_id] = _Entry(job)
        self._waiting.put(message_id)
        return message_id

    def take(self, consumer: str, *, block_ms: int, ignore_delays: bool = False) -> Delivery | None:
        """See :meth:`bot.jobs.JobQueue.take`. ``ignore_delays`` also hands over a job
        still waiting out its retry delay: the last chance before the process exits and
        the queue with it."""
        if not consumer:
            raise ConfigError("A worker needs a consumer name to take jobs.")
        claimed = self.claim_stale(consumer, count=1)
        if claimed:
            return claimed[0]
        if ignore_delays:
            with self._lock:
                for message_id, entry in self._entries.items():
                    if entry.retry_at is not None:
                        return self._deliver(message_id, entry, consumer)
        try:
            if block_ms > 0:
                message_id = self._waiting.get(timeout=block_ms / 1000)
            else:
                message_id = self._waiting.get_nowait()
        except queue.Empty:
            return None
        with self._lock:
            entry = self._entries.get(message_id)
            return None if entry is None else self._deliver(message_id, entry, consumer)

    def ack(self, delivery: Delivery) -> None:
        with self._lock:
            self._entries.pop(delivery.message_id, None)

    def retry(self, delivery: Delivery, error: str, *, delay_ms: int = 0) -> bool:
        with self._lock:
            entry = self._entries.get(delivery.message_id)
            if entry is None:
                return True
            if delivery.attempts >= self.max_attempts:
                self._bury(delivery.message_id, error)
                return False
            entry.last_error = error
            if entry.consumer == delivery.consumer:
                now = time.monotonic()
                idle_s = max(0, self.stale_after_ms - max(0, delay_ms)) / 1000
                entry.delivered_at = now - idle_s
                entry.retry_at = now + max(0, delay_ms) / 1000
        return True

    def release(self, delivery: Delivery) -> bool:
        with self._lock:
            entry = self._entries.get(delivery.message_id)
            if entry is None or entry.consumer != delivery.consumer:
                return False
            entry.attempts = max(0, delivery.attempts - 1)
            entry.delivered_at = time.monotonic() - self.stale_after_ms / 1000
            return True

    def fail(self, delivery: Delivery, error: str) -> None:
        with self._lock:
            if delivery.message_id in self._entries:
                self._bury(delivery.message_id, error)

    def touch(self, delivery: Delivery) -> bool:
        with self._lock:
            entry = self._entries.get(delivery.message_id)
            if entry is None or entry.consumer != delivery.consumer:
                return False
            entry.delivered_at = time.monotonic()
            return True

    def claim_stale(
        self, consumer: str, *, min_idle_ms: int | None = None, count: int = 10
    ) -> list[Delivery]:
        idle_s = (self.stale_after_ms if min_idle_ms is None else min_idle_ms) / 1000
        now = time.monotonic()
        with self._lock:
            stale = [
                message_id
                for message_id, entry in self._entries.items()
                if entry.consumer is not None and now - entry.delivered_at >= idle_s
            ][:count]
            return [self._deliver(mid, self._entries[mid], consumer) for mid in stale]

    def depth(self) -> int:
        with self._lock:
            return len(self._entries)

    def job_ids(self) -> list[str]:
        """The ids of the jobs not yet finished (waiting, running or waiting to retry),
        oldest first: what is lost if the process exits now."""
        with self._lock:
            return [entry.job.job_id for entry in self._entries.values()]

    def dead_letters(self, count: int = 20) -> list[DeadLetter]:
        with self._lock:
            return list(reversed(self._dead))[:count]

    def ping(self) -> bool:
        return not self._closed

    def close(self) -> None:
        self._closed = True

    def stats(self) -> QueueStats:
        with self._lock:
            pending = sum(1 for entry in self._entries.values() if entry.consumer is not None)
            return QueueStats(len(self._entries) - pending, pending, len(self._dead))

    def _deliver(self, message_id: str, entry: _Entry, consumer: str) -> Delivery:
        """Hand ``entry`` to ``consumer``; call with the lock held."""
        entry.attempts += 1
        entry.consumer = consumer
        entry.delivered_at = time.monotonic()
        entry.retry_at = None
        delivery = Delivery(
            entry.job, message_id, entry.attempts, consumer, last_error=entry.last_error
        )
        if entry.attempts <= self.max_attempts:
            return delivery
        error = entry.last_error or f"no worker finished it in {self.max_attempts} attempts"
        self._bury(message_id, error)
        return replace(delivery, exhausted=True, last_error=error)

    def _bury(self, message_id: str, error: str) -> None:
        """Move an entry to the dead letters; call with the lock held."""
        entry = self._entries.pop(message_id)
        self._dead.append(
            DeadLetter(message_id, job_to_json(entry.job), error, entry.attempts, time.time())
        )
