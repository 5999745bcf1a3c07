"""The worker loop: take a job, run it, acknowledge it; survive Redis and Slack hiccups.

A job is acknowledged only after its answer is in Slack, so a worker that dies
mid-job leaves it pending and another worker claims it once it has been idle for
``RAGBOT_JOB_STALE_AFTER_S``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError

from bot.answering import UNEXPECTED, AskHandler
from bot.jobs import AskJob, QueueUnavailableError, ReindexJob, RetryJob
from bot.queue import Delivery, JobLedger, JobQueue
from bot.reindexing import ReindexHandler

log = logging.getLogger(__name__)

TAKE_BLOCK_MS = 2000
REDIS_DOWN_PAUSE_S = 2.0


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(slots=True)
class Worker:
    name: str
    queue: JobQueue
    ledger: JobLedger
    ask: AskHandler
    reindex: ReindexHandler

    def run(self, *, stop: threading.Event, burst: bool = False) -> int:
        """Process jobs until ``stop`` is set (or, with ``burst``, the queue is empty)."""
        log.info("worker %s started", self.name)
        processed = 0
        while not stop.is_set():
            try:
                delivery = self.queue.take(self.name, block_ms=TAKE_BLOCK_MS)
            except QueueUnavailableError as error:
                log.warning("queue unavailable, retrying: %s", error)
                stop.wait(REDIS_DOWN_PAUSE_S)
                continue
            if delivery is None:
                if burst:
                    break
                continue
            self.process(delivery)
            processed += 1
        log.info("worker %s stopped after %d jobs", self.name, processed)
        return processed

    def process(self, delivery: Delivery) -> None:
        job = delivery.job
        if delivery.exhausted:
            # Already dead-lettered after too many attempts (workers kept dying on it).
            log.error("job %s gave up after %d attempts", job.job_id, delivery.attempts)
            self._tell_user_failed(job)
            self.ledger.mark_failed(job.job_id, delivery.last_error or "too many attempts")
            return
        final_attempt = delivery.attempts >= self.queue_max_attempts
        self.ledger.mark_running(job.job_id, self.name)
        started = time.perf_counter()
        try:
            if isinstance(job, AskJob):
                self.ask.handle(job, final_attempt=final_attempt)
            elif isinstance(job, ReindexJob):
                self.reindex.handle(job, heartbeat=lambda: self.queue.touch(delivery))
        except (RetryJob, SlackApiError) as error:
            self.ledger.mark_failed(job.job_id, str(error))
            self.queue.retry(delivery, str(error), delay_ms=1000 * delivery.attempts)
            return
        except Exception as error:
            log.exception("job %s failed", job.job_id)
            self._tell_user_failed(job)
            self.ledger.mark_failed(job.job_id, repr(error))
            self.queue.fail(delivery, repr(error))
            return
        self.ledger.mark_done(job.job_id)
        self.queue.ack(delivery)
        log.info(
            "job done",
            extra={"job_id": job.job_id, "ms": round((time.perf_counter() - started) * 1000)},
        )

    @property
    def queue_max_attempts(self) -> int:
        return int(getattr(self.queue, "max_attempts", 1))

    def _tell_user_failed(self, job: AskJob | ReindexJob) -> None:
        try:
            if isinstance(job, AskJob):
                self.ask.post_text(job, UNEXPECTED)
            else:
                self.reindex.give_up(job)
        except Exception:
            log.exception("could not tell the user about job %s", job.job_id)
