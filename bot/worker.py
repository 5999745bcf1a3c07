"""The worker loop: take a job, run it, acknowledge it; survive Redis and Slack hiccups.

A job is acknowledged only after its answer is in Slack, so a worker that dies
mid-job leaves it pending and another worker claims it once it has been idle for
``RAGBOT_JOB_STALE_AFTER_S``. While a job runs, a lease thread resets its idle time
every third of that, so a slow answer is never mistaken for a dead worker's.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType

from slack_sdk.errors import SlackApiError

from bot.answering import UNEXPECTED, AskHandler
from bot.jobs import AskJob, QueueUnavailableError, ReindexJob, RetryJob
from bot.queue import Delivery, JobLedger, JobQueue
from bot.reindexing import ReindexHandler

log = logging.getLogger(__name__)

TAKE_BLOCK_MS = 2000
REDIS_DOWN_PAUSE_S = 2.0
MIN_LEASE_INTERVAL_S = 0.1


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


@dataclass(slots=True)
class Worker:
    name: str
    queue: JobQueue
    ledger: JobLedger
    ask: AskHandler
    reindex: ReindexHandler

    def run(self, *, stop: threading.Event, burst: bool = False) -> int:
        """Process jobs until ``stop`` is set (or, with ``burst``, the queue is empty).

        While Redis is down the loop pauses and tries again; a job it was running stays
        unacknowledged and is answered again later (without a second post).
        """
        log.info("worker %s started", self.name)
        processed = 0
        while not stop.is_set():
            try:
                delivery = self.queue.take(self.name, block_ms=TAKE_BLOCK_MS)
                if delivery is None:
                    if burst:
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

    def process(self, delivery: Delivery) -> None:
        """Run one delivery to its end: acknowledged, put back for a retry, or dead-lettered.

        Raises :class:`QueueUnavailableError` when Redis fails; the job then stays pending.
        """
        job = delivery.job
        if delivery.exhausted:
            # Already dead-lettered after too many attempts (workers kept dying on it).
            log.error("job %s gave up after %d attempts", job.job_id, delivery.attempts)
            self._tell_user_failed(job)
            self.ledger.mark_failed(job.job_id, delivery.last_error or "too many attempts")
            return
        final_attempt = delivery.attempts >= self.queue.max_attempts
        self.ledger.mark_running(job.job_id, self.name)
        started = time.perf_counter()
        try:
            with JobLease(self.queue, delivery, interval_s=self.queue.stale_after_ms / 3000):
                self._run(delivery, final_attempt=final_attempt)
        except (RetryJob, SlackApiError) as error:
            self.ledger.mark_failed(job.job_id, str(error))
            if not self.queue.retry(delivery, str(error), delay_ms=1000 * delivery.attempts):
                log.error("job %s gave up after %d attempts", job.job_id, delivery.attempts)
                self._tell_user_failed(job)
            return
        except QueueUnavailableError:
            raise
        except Exception as error:
            log.exception("job %s failed", job.job_id)
            self._tell_user_failed(job)
            self.ledger.mark_failed(job.job_id, repr(error))
            self.queue.fail(delivery, repr(error))
            return
        self.ledger.mark_done(job.job_id)
        self.queue.ack(delivery)
        ms = round((time.perf_counter() - started) * 1000)
        log.info("job %s done in %d ms", job.job_id, ms, extra={"job_id": job.job_id, "ms": ms})

    def _run(self, delivery: Delivery, *, final_attempt: bool) -> None:
        job = delivery.job
        if isinstance(job, AskJob):
            self.ask.handle(job, final_attempt=final_attempt)
        elif isinstance(job, ReindexJob):
            self.reindex.handle(job, heartbeat=lambda: self.queue.touch(delivery))

    def _tell_user_failed(self, job: AskJob | ReindexJob) -> None:
        try:
            if isinstance(job, AskJob):
                self.ask.post_text(job, UNEXPECTED)
            else:
                self.reindex.give_up(job)
        except Exception:
            log.exception("could not tell the user about job %s", job.job_id)
