"""Worker threads that are restarted when they die, report their liveness, and drain.

:class:`WorkerPool` runs each :class:`~bot.worker.Worker` on a supervised thread: an
exception escaping ``Worker.run`` is logged and the worker restarted after a backoff
(1 s doubling to 60 s). Its liveness check (``workers``, registered on
:class:`~bot.health.Health`) fails while a worker is restarting or its loop has not
ticked for ``stall_after_s``: a process whose workers cannot work should be restarted.

``drain(grace_s)`` stops taking new jobs and lets the jobs in hand finish; with
``finish_queue`` (the single-process mode, whose in-memory queue dies with it) the
workers first empty the queue, jobs waiting out a retry delay included. A job still
running when the grace period ends is put back on the queue (``queue.release``: at
once, spending none of its attempts) and its worker may no longer post; with
``finish_queue`` the ids of the jobs still in memory then are logged, as they are lost.
Then the ``after_drain`` callables run (they stop the models the workers shared).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.health import CheckResult, Health
from bot.local_queue import InMemoryJobQueue
from bot.worker import Worker

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (1.0, 60.0)  # first delay, ceiling
STALL_AFTER_S = 900.0
DRAIN_REASON = "the worker was stopped before it finished"


class Companion(Protocol):
    """Something that runs beside the workers (the doc set refresher)."""

    def start(self) -> object: ...

    def stop(self) -> None: ...


@dataclass(slots=True)
class _Slot:
    worker: Worker
    thread: threading.Thread | None = None
    restarts: int = 0
    failing_since: float | None = None  # monotonic; set while waiting to restart
    last_error: str = ""
    finished: bool = field(default=False)


class WorkerPool:
    """Supervised worker threads over one queue; thread-safe."""

    def __init__(
        self,
        workers: Sequence[Worker],
        *,
        finish_queue: bool = False,
        stall_after_s: float = STALL_AFTER_S,
        restart_backoff_s: tuple[float, float] = RESTART_BACKOFF_S,
        companions: Sequence[Companion] = (),
        after_drain: Sequence[Callable[[], None]] = (),
    ) -> None:
        if not workers:
            raise ValueError("a worker pool needs at least one worker")
        self._slots = [_Slot(worker) for worker in workers]
        self._companions = tuple(companions)
        self._after_drain = tuple(after_drain)
        self._finish_queue = finish_queue
        self._stall_after_s = stall_after_s
        self._backoff = restart_backoff_s
        self._stop = threading.Event()
        self._until_empty = threading.Event()
        self._lock = threading.Lock()

    @property
    def workers(self) -> list[Worker]:
        return [slot.worker for slot in self._slots]

    def start(self, count: int | None = None) -> WorkerPool:
        """Start the first ``count`` workers (all by default) on daemon threads, and the
        companions (they stop first when the pool drains or stops)."""
        for companion in self._companions:
            companion.start()
        for slot in self._slots[: len(self._slots) if count is None else count]:
            slot.thread = threading.Thread(
                target=self._supervise, args=(slot,), name=f"worker-{slot.worker.name}", daemon=True
            )
            slot.thread.start()
        return self

    def register(self, health: Health) -> None:
        """Add the ``workers`` liveness check to ``health``."""
        health.add_check("workers", self.check, liveness=True)

    def check(self) -> CheckResult:
        now = time.monotonic()
        problems = []
        with self._lock:
            slots = [s for s in self._slots if s.thread is not None]
            for slot in slots:
                name, thread = slot.worker.name, slot.thread
                if slot.failing_since is not None:
                    problems.append(f"{name} restarting after {slot.last_error}")
                elif not slot.finished and thread is not None and not thread.is_alive():
                    problems.append(f"{name} is dead")
                elif not slot.finished and now - slot.worker.last_tick > self._stall_after_s:
                    problems.append(f"{name} stalled for {now - slot.worker.last_tick:.0f} s")
        if problems:
            return CheckResult(False, "; ".join(problems))
        restarts = sum(s.restarts for s in slots)
        return CheckResult(True, f"{len(slots)} running, {restarts} restarts")

    def drain(self, grace_s: float) -> bool:
        """Stop the workers within ``grace_s`` seconds (see the module docstring); ``True``
        when every job in hand finished, ``False`` when some were handed back."""
        deadline = time.monotonic() + max(0.0, grace_s)
        self._stop_companions()
        if self._finish_queue:
            self._until_empty.set()
        else:
            self._stop.set()
        finished = self._join(deadline)
        self._stop.set()
        if finished:
            self._run_after_drain()
            return True
        handed_back = [s.worker.name for s in self._slots if s.worker.hand_back(DRAIN_REASON)]
        if handed_back:
            log.warning("grace period over; jobs of %s handed back", ", ".join(handed_back))
        self._join(time.monotonic() + 1.0)
        if self._finish_queue:
            self._log_lost_jobs()
        self._run_after_drain()
        return not handed_back

    def stop(self) -> None:
        """Stop taking jobs at once (the jobs in hand still finish, unwaited)."""
        self._stop_companions()
        self._stop.set()

    def _run_after_drain(self) -> None:
        """Jobs handed back may still be running: whatever they call after this fails, and
        they may no longer post anyway."""
        for action in self._after_drain:
            try:
                action()
            except Exception:
                log.exception("could not stop what the workers shared")

    def _stop_companions(self) -> None:
        for companion in self._companions:
            companion.stop()

    def _log_lost_jobs(self) -> None:
        queue = self._slots[0].worker.queue
        if isinstance(queue, InMemoryJobQueue) and (left := queue.job_ids()):
            log.error(
                "grace period over with %d jobs unfinished, lost on exit: %s",
                len(left),
                ", ".join(left),
            )

    def _join(self, deadline: float) -> bool:
        for slot in self._slots:
            if slot.thread is not None:
                slot.thread.join(max(0.0, deadline - time.monotonic()))
        return not any(s.thread is not None and s.thread.is_alive() for s in self._slots)

    def _supervise(self, slot: _Slot) -> None:
        delay = self._backoff[0]
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                slot.worker.run(stop=self._stop, until_empty=self._until_empty)
            except Exception as error:
                if time.monotonic() - started > self._backoff[1]:
                    delay = self._backoff[0]  # it worked for a while: a fresh failure
                log.exception("worker %s died; restarting it in %.0f s", slot.worker.name, delay)
                with self._lock:
                    slot.failing_since = time.monotonic()
                    slot.last_error = repr(error)
                    slot.restarts += 1
                self._stop.wait(delay)
                delay = min(self._backoff[1], delay * 2)
                with self._lock:
                    slot.failing_since = None
                continue
            break
        with self._lock:
            slot.finished = True
