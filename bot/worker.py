"""The worker loop: take a job, run it, acknowledge it; survive Redis and Slack hiccups.

A job is acknowledged only after its message is in Slack and the ledger says DONE, so a
worker that dies mid-job leaves it pending and another worker claims it once it has been
idle for ``RAGBOT_JOB_STALE_AFTER_S``; a delivery already DONE is acknowledged without
running again. While a job runs, a lease thread resets its idle time every third of
that, so a slow answer is never mistaken for a dead worker's.

Fencing: starting a delivery takes a new fence token in the ledger. Right before every
post the worker checks that it still owns the delivery and holds the latest token;
otherwise (:class:`~bot.jobs.LeaseLost`) it stops without posting or acknowledging.
Any Redis failure pauses the loop and never ends it.

A :class:`Worker` runs one job at a time; a worker process answering
``RAGBOT_WORKER_CONCURRENCY`` questions at once runs that many, each under a consumer name
of its own (``bot.worker_setup``), so all of the above holds for every job in flight.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from bot.answering import UNEXPECTED, AskHandler
from bot.jobs import (
    AskJob,
    Delivery,
    Job,
    JobState,
    LeaseLost,
    NoticeJob,
    QueueUnavailableError,
    ReindexJob,
    RetryJob,
)
from bot.ledger import JobLedger
from bot.local_queue import InMemoryJobQueue
from bot.metrics import BotMetrics
from bot.posting import LastWord, ThreadPoster
from bot.queue import JobQueue
from bot.reindexing import ReindexHandler
from bot.slack_retry import SlackRejected, SlackUnavailable

log = logging.getLogger(__name__)

TAKE_BLOCK_MS = 2000
REDIS_DOWN_PAUSE_S = 2.0
MIN_LEASE_INTERVAL_S = 0.1
MIN_SLACK_REQUEUE_MS = 30_000
DRAIN_POLL_S = 0.05


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class JobLease:
    """Keeps a delivery claimed while it runs: ``queue.touch`` every ``interval_s`` seconds
    from a daemon thread, between ``__enter__`` and ``__exit__``."""

    def __init__(self, queue: JobQueue, delivery: Delivery, *, interval_s: float) -> None:
        self._queue = queue
        self._delivery = delivery
        self._interval_s = max(MIN_LEASE_INTERVAL_S, interval_s)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-lease", daemon=True)

    def __enter__(self) -> JobLease:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._done.wait(self._interval_s):
            try:
                if not self._queue.touch(self._delivery):
                    log.warning("job %s was claimed by another worker", self._delivery.job.job_id)
                    return
            except QueueUnavailableError as error:
                log.warning("could not extend the lease of a job: %s", error)


class DeliveryGuard:
    """Whether this worker may still post for one delivery (see the module docstring);
    also the worker's heartbeat while it waits on Slack."""

    def __init__(
        self, worker: Worker, delivery: Delivery, token: int, *, redelivered: bool
    ) -> None:
        self._worker = worker
        self.delivery = delivery
        self.token = token
        self._redelivered = redelivered
        self.abandoned = threading.Event()

    @property
    def redelivered(self) -> bool:
        return self._redelivered

    def check(self) -> None:
        self._worker.tick()
        job_id = self.delivery.job.job_id
        if self.abandoned.is_set():
            raise LeaseLost(f"job {job_id} was handed back")
        if not self._worker.queue.touch(self.delivery):
            raise LeaseLost(f"job {job_id} was claimed by another worker")
        if self._worker.ledger.fence(job_id) != self.token:
            raise LeaseLost(f"job {job_id} is being run by a newer delivery")

    def wait(self, seconds: float) -> None:
        self._worker.tick()
        self.abandoned.wait(seconds)
        self._worker.tick()


@dataclass(slots=True)
class Worker:
    name: str
    queue: JobQueue
    ledger: JobLedger
    ask: AskHandler
    reindex: ReindexHandler
    poster: ThreadPoster
    metrics: BotMetrics = field(default_factory=BotMetrics)
    last_tick: float = field(default_factory=time.monotonic, init=False)
    _current: DeliveryGuard | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def tick(self) -> None:
        """The loop is alive (read by the pool's liveness check)."""
        self.last_tick = time.monotonic()

    def run(
        self,
        *,
        stop: threading.Event,
        burst: bool = False,
        until_empty: threading.Event | None = None,
    ) -> int:
        """Process jobs until ``stop`` is set, or the queue is empty with ``burst`` (or
        once ``until_empty`` is set). A job in hand is finished before ``stop`` counts.

        ``until_empty`` empties the whole queue: jobs waiting out a retry delay are taken
        at once (in-memory queue), and the loop waits while other workers still hold
        jobs, which may come back.

        While Redis fails the loop pauses and tries again; a job it was running stays
        unacknowledged and is answered again later (without a second post).
        """
        log.info("worker %s started", self.name)
        processed = 0
        while not stop.is_set():
            self.tick()
            draining = until_empty is not None and until_empty.is_set()
            try:
                delivery = self._take(emptying=burst or draining, draining=draining)
                if delivery is None:
                    if draining and self.queue.depth() > 0:
                        stop.wait(DRAIN_POLL_S)
                        continue
                    if burst or draining:
                        break
                    continue
                self.process(delivery)
            except QueueUnavailableError as error:
                log.warning("queue unavailable, retrying: %s", error)
                stop.wait(REDIS_DOWN_PAUSE_S)
                continue
            processed += 1
        log.info("worker %s stopped after %d jobs", self.name, processed)
        return processed

    def _take(self, *, emptying: bool, draining: bool) -> Delivery | None:
        if not emptying:
            return self.queue.take(self.name, block_ms=TAKE_BLOCK_MS)
        if draining and isinstance(self.queue, InMemoryJobQueue):
            return self.queue.take(self.name, block_ms=0, ignore_delays=True)
        return self.queue.take(self.name, block_ms=0)

    def hand_back(self, reason: str) -> bool:
        """Give the job in hand back to the queue (to run again at once, elsewhere,
        spending none of its attempts) and forbid this worker to post for it; ``False``
        when there was none, or it was finished or claimed elsewhere meanwhile."""
        with self._lock:
            guard = self._current
        if guard is None:
            return False
        guard.abandoned.set()
        job_id = guard.delivery.job.job_id
        try:
            released = self.queue.release(guard.delivery)
        except QueueUnavailableError as error:
            log.warning("could not hand job %s back: %s", job_id, error)
            return True
        if not released:
            log.info("job %s was no longer ours to hand back", job_id)
            return False
        log.warning("job %s handed back: %s", job_id, reason)
        self._finished("retried")
        return True

    def process(self, delivery: Delivery) -> None:
        """Run one delivery to its end: acknowledged, put back for a retry, dead-lettered,
        or left alone because another worker owns it now.

        Raises :class:`QueueUnavailableError` when Redis fails, at any point: the job is
        then put back without spending an attempt (or, failing that, stays pending).
        """
        try:
            self._process(delivery)
        except QueueUnavailableError:
            self._release_quietly(delivery)
            raise

    def _process(self, delivery: Delivery) -> None:
        job = delivery.job
        record = self.ledger.record(job.job_id)
        if record.state is JobState.DONE:
            log.info("job %s was already done; acknowledging it", job.job_id)
            self.queue.ack(delivery)
            self._finished("skipped")
            return
        if delivery.exhausted:
            # Already dead-lettered after too many attempts (workers kept dying on it).
            log.error("job %s gave up after %d attempts", job.job_id, delivery.attempts)
            self._tell_user_failed(job)
            self.ledger.mark_failed(job.job_id, delivery.last_error or "too many attempts")
            self._finished("dead")
            return
        if isinstance(job, AskJob) and delivery.attempts == 1:
            wait_s = max(0.0, time.time() - job.enqueued_at)
            self.metrics.answer_seconds.labels(stage="queue_wait").observe(wait_s)
        token = self.ledger.mark_running(job.job_id, self.name)
        redelivered = delivery.attempts > 1 or record.posting
        guard = DeliveryGuard(self, delivery, token, redelivered=redelivered)
        with self._lock:
            self._current = guard
        try:
            self._run_guarded(delivery, guard)
        finally:
            with self._lock:
                self._current = None

    def _release_quietly(self, delivery: Delivery) -> None:
        """Redis failed mid-job: put the job back without spending one of its attempts,
        so an outage never dead-letters a question (taking and releasing still work while
        Redis refuses other writes, out of memory). Another Redis error is only logged:
        the job then stays pending and is claimed once it looks stale."""
        try:
            self.queue.release(delivery)
        except QueueUnavailableError as error:
            log.warning("could not put job %s back: %s", delivery.job.job_id, error)

    def _run_guarded(self, delivery: Delivery, guard: DeliveryGuard) -> None:
        job = delivery.job
        final_attempt = delivery.attempts >= self.queue.max_attempts
        started = time.perf_counter()
        try:
            with JobLease(self.queue, delivery, interval_s=self.queue.stale_after_ms / 3000):
                self._run(delivery, guard, final_attempt=final_attempt)
        except LeaseLost as error:
            self._lease_lost(guard, error)
            return
        except SlackRejected as error:
            log.error("job %s dead: %s", job.job_id, error, extra={"job_id": job.job_id})
            self._give_up(delivery, guard, str(error), refused=error.error)
            return
        except SlackUnavailable as error:
            delay_ms = max(MIN_SLACK_REQUEUE_MS, int(error.wait_s * 1000))
            self._retry(delivery, guard, str(error), delay_ms=delay_ms)
            return
        except RetryJob as error:
            self._retry(delivery, guard, str(error), delay_ms=1000 * delivery.attempts)
            return
        except QueueUnavailableError:
            raise
        except Exception as error:
            log.exception("job %s failed", job.job_id)
            self._give_up(delivery, guard, repr(error))
            return
        self.ledger.mark_done(job.job_id)
        self.queue.ack(delivery)
        self._finished("done")
        ms = round((time.perf_counter() - started) * 1000)
        log.info("job %s done in %d ms", job.job_id, ms, extra={"job_id": job.job_id, "ms": ms})

    def _run(self, delivery: Delivery, guard: DeliveryGuard, *, final_attempt: bool) -> None:
        job = delivery.job
        if isinstance(job, AskJob):
            self.ask.handle(job, final_attempt=final_attempt, guard=guard)
        elif isinstance(job, NoticeJob):
            self.poster.notify(job, guard)
        elif isinstance(job, ReindexJob):

            def heartbeat() -> None:
                # LeaseLost stops the re-index; a Redis blip only skips one check.
                try:
                    guard.check()
                except QueueUnavailableError as error:
                    log.warning("could not check the lease of re-index %s: %s", job.job_id, error)

            self.reindex.handle(job, heartbeat=heartbeat)

    def _retry(
        self, delivery: Delivery, guard: DeliveryGuard, error: str, *, delay_ms: int
    ) -> None:
        if not self._still_owned(guard):
            return
        self.ledger.mark_failed(delivery.job.job_id, error)
        if self.queue.retry(delivery, error, delay_ms=delay_ms):
            log.warning("job %s will be retried: %s", delivery.job.job_id, error)
            self._finished("retried")
            return
        log.error("job %s gave up after %d attempts", delivery.job.job_id, delivery.attempts)
        self._tell_user_failed(delivery.job)
        self._finished("dead")

    def _give_up(
        self, delivery: Delivery, guard: DeliveryGuard, error: str, *, refused: str = ""
    ) -> None:
        """Dead-letter the job and tell its asker why; ``refused``: the Slack error code
        that refused the job's own message (the asker is then told another way)."""
        if not self._still_owned(guard):
            return
        job = delivery.job
        if refused and isinstance(job, AskJob) and job.private and self.ask.private is not None:
            self.ask.private.tell_refused(job, refused)
        elif refused and isinstance(job, AskJob | NoticeJob):
            self.poster.tell_refused(job, refused)
        else:
            self._tell_user_failed(job)
        self.ledger.mark_failed(delivery.job.job_id, error)
        self.queue.fail(delivery, error)
        self._finished("dead")

    def _still_owned(self, guard: DeliveryGuard) -> bool:
        """``guard.check()`` as a bool, counting a lost lease (Redis failures raise)."""
        try:
            guard.check()
        except LeaseLost as error:
            self._lease_lost(guard, error)
            return False
        return True

    def _lease_lost(self, guard: DeliveryGuard, error: LeaseLost) -> None:
        """Another delivery owns the job now: leave it alone, counted once."""
        if guard.abandoned.is_set():  # handed back: the hand-back was counted
            return
        log.warning("%s; leaving it to that worker", error)
        self._finished("lease_lost")

    def _finished(self, outcome: str) -> None:
        self.metrics.jobs_finished.labels(outcome=outcome).inc()

    def _tell_user_failed(self, job: Job) -> None:
        """Best effort: Slack may be what failed."""
        try:
            if isinstance(job, AskJob):
                self.ask.post_text(job, UNEXPECTED, guard=LastWord(), retry_window_s=0)
            elif isinstance(job, ReindexJob):
                self.reindex.give_up(job)
        except Exception as error:
            log.warning("could not tell the user about job %s: %r", job.job_id, error)
