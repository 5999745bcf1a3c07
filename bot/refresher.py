"""Keeps doc sets with a ``refresh`` interval fresh, from inside the worker processes.

Every ``tick_s`` a :class:`DocSetRefresher` looks for a doc set whose last refresh began
more than its interval ago and queues a re-index job for it, taking the re-index lock
first, as ``/reindex`` does: one re-index at a time across the workspace, and the job
machinery (lease, retries, dead letters) for free. When the refresh began is kept in Redis
(``{prefix}refresh:started``, doc set -> Unix time), so the worker processes share one
schedule; without Redis, in this process. A git doc set with no new commit and a site
whose pages all answer 304 cost one fetch and no embedding.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Protocol

import redis

from bot.conversation_state import ReindexLock
from bot.jobs import JobQueue, QueueUnavailableError, ReindexJob, new_job_id
from rag_core.docsets import DocSet

log = logging.getLogger(__name__)

REFRESH_KEY = "refresh:started"  # under the prefix
TICK_S = 60.0


class RefreshSchedule(Protocol):
    """When each doc set's last refresh began."""

    def started(self, docset: str) -> float:
        """Unix time of the last refresh of ``docset``; 0 when never."""
        ...

    def mark(self, docset: str, at: float) -> None: ...


class MemoryRefreshSchedule:
    """A :class:`RefreshSchedule` of this process."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    def started(self, docset: str) -> float:
        return self._started.get(docset, 0.0)

    def mark(self, docset: str, at: float) -> None:
        self._started[docset] = at


class RedisRefreshSchedule:
    """A :class:`RefreshSchedule` every worker process shares (a Redis hash); Redis
    errors pass to the refresher, which logs them and tries again next tick."""

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self._redis = client
        self._key = prefix + REFRESH_KEY

    def started(self, docset: str) -> float:
        raw = self._redis.hget(self._key, docset)
        return float(raw) if raw is not None else 0.0

    def mark(self, docset: str, at: float) -> None:
        self._redis.hset(self._key, docset, repr(at))


def refresh_schedule(client: redis.Redis | None, *, prefix: str) -> RefreshSchedule:
    """The schedule on ``client``, or in this process when it is None."""
    if client is None:
        return MemoryRefreshSchedule()
    return RedisRefreshSchedule(client, prefix=prefix)


class DocSetRefresher:
    """Queues the re-index of due doc sets (see the module docstring); thread-safe."""

    def __init__(
        self,
        docsets: Sequence[DocSet],
        *,
        queue: JobQueue,
        lock: ReindexLock,
        schedule: RefreshSchedule,
        tick_s: float = TICK_S,
    ) -> None:
        self._docsets = [d for d in docsets if d.refresh_s is not None]
        self._queue = queue
        self._lock = lock
        self._schedule = schedule
        self._tick_s = tick_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return bool(self._docsets)

    def due(self, now: float) -> list[DocSet]:
        """The doc sets whose interval has passed since their last refresh began."""
        return [
            d
            for d in self._docsets
            if d.refresh_s is not None and now - self._schedule.started(d.name) >= d.refresh_s
        ]

    def run_once(self, now: float | None = None) -> str | None:
        """Queue the re-index of the first due doc set, if the re-index lock is free;
        returns its name. Redis errors are logged, and the next tick tries again."""
        moment = time.time() if now is None else now
        try:
            due = self.due(moment)
            if not due:
                return None
            docset = due[0]
            job_id = new_job_id()
            if not self._lock.acquire(job_id):
                return None  # a re-index is running; the next tick looks again
            try:
                self._schedule.mark(docset.name, moment)
                self._queue.enqueue(
                    ReindexJob(job_id=job_id, user="", channel="", docset=docset.name)
                )
            except BaseException:
                self._lock.release(job_id)
                raise
        except (redis.RedisError, QueueUnavailableError) as error:
            log.warning("doc set refresh not queued: %s", error)
            return None
        log.info("refresh of doc set %s queued", docset.name, extra={"job_id": job_id})
        return docset.name

    def start(self) -> DocSetRefresher:
        """Tick on a daemon thread, at once and then every ``tick_s``, until :meth:`stop`
        (no doc set to refresh: no thread)."""
        if self.active and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="refresher", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("doc set refresh failed; trying again in %.0f s", self._tick_s)
            self._stop.wait(self._tick_s)
