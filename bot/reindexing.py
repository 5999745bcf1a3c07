"""The worker's half of ``/reindex``: build the new index and report on one message."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.conversation_state import ReindexLock
from bot.index_status import IndexStatus, IndexStatusStore
from bot.jobs import LeaseLost, ReindexJob
from bot.slack_retry import slack_error_code
from rag_core.errors import RagbotError
from rag_core.ingest.indexer import Indexer, IndexProgress, IndexSummary
from rag_core.store import MilvusStore

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 2.0  # chat.update is rate limited (about 50 a minute per channel)


@dataclass(slots=True)
class ReindexHandler:
    """Runs :class:`ReindexJob`; ``heartbeat`` keeps the queue entry and the lock alive.

    A heartbeat that raises :class:`~bot.jobs.LeaseLost` (another worker owns the job
    now) stops the re-index: the error propagates, and the lock, which now belongs to
    the new owner, is kept. A finished re-index is recorded in ``index_status`` (what the
    App Home tab shows) with the user who started it.
    """

    indexer: Indexer
    client: WebClient
    lock: ReindexLock
    index_status: IndexStatusStore | None = None

    def handle(self, job: ReindexJob, *, heartbeat: Callable[[], None]) -> None:
        reporter = ProgressReporter(self.client, job, heartbeat=heartbeat, lock=self.lock)
        owner = True
        try:
            summary = self.indexer.index(Path(job.path), recreate=job.recreate, progress=reporter)
        except LeaseLost as error:
            owner = False
            log.warning("re-index %s stopped: %s", job.job_id, error)
            raise
        except RagbotError as error:
            log.warning("re-index %s failed: %s", job.job_id, error)
            reporter.show(
                f"Re-index failed: {error}",
                blocks.reindex_failed_blocks(f"{error} The previous index is still serving."),
            )
            return
        except Exception:
            log.exception("re-index %s crashed", job.job_id)
            reporter.show(
                "Re-index failed.",
                blocks.reindex_failed_blocks(
                    "Re-index failed with an internal error (see the worker's logs). "
                    "The previous index is still serving."
                ),
            )
            return
        finally:
            if owner:
                self.lock.release(job.job_id)
        if self.index_status is not None:
            self.index_status.put(
                IndexStatus(
                    version=summary.version,
                    chunks=summary.chunks_total,
                    documents=summary.files,
                    built_at=time.time(),
                    built_by=job.user,
                    embed_model=self.indexer.embedder.model_id,
                )
            )
        reporter.show(summary_text(summary), blocks.reindex_summary_blocks(summary_fields(summary)))

    def give_up(self, job: ReindexJob) -> None:
        """Tell the admin the job was abandoned, and free the lock for the next one."""
        self.lock.release(job.job_id)
        ProgressReporter(self.client, job, heartbeat=lambda: None, lock=self.lock).show(
            "Re-index failed.",
            blocks.reindex_failed_blocks(
                "Re-index failed repeatedly (see the worker's logs). "
                "The previous index is still serving."
            ),
        )


def record_served_index(status: IndexStatusStore, store: MilvusStore) -> None:
    """At worker start-up: record what ``store`` serves for the App Home tab (a Milvus
    error is logged; the tab then shows the last record)."""
    try:
        info = store.index_info()
    except RagbotError as error:
        log.warning("could not read the served index for the home tab: %s", error)
        return
    if info is not None:
        status.record_served(
            version=info.version,
            chunks=info.chunk_count,
            built_at=info.created_at.timestamp() if info.created_at else 0.0,
            embed_model=info.embed_model,
        )


def summary_fields(summary: IndexSummary) -> dict[str, object]:
    fields = asdict(summary)
    fields.pop("skipped_files", None)
    return fields


def summary_text(summary: IndexSummary) -> str:
    return (
        f"Re-index done: {summary.files} files, {summary.chunks_total} chunks "
        f"({summary.chunks_new} new, {summary.chunks_unchanged} unchanged, "
        f"{summary.chunks_deleted} deleted) in {summary.seconds:.1f} s."
    )


class ProgressReporter:
    """Turns indexer progress into throttled updates of the job's progress message."""

    def __init__(
        self,
        client: WebClient,
        job: ReindexJob,
        *,
        heartbeat: Callable[[], None],
        lock: ReindexLock,
    ) -> None:
        self._client = client
        self._job = job
        self._heartbeat = heartbeat
        self._lock = lock
        self._last = 0.0
        self._files: int | None = None
        self._chunks: int | None = None

    def __call__(self, event: IndexProgress) -> None:
        if event.stage == "loading":
            self._files = event.total
        elif event.stage == "embedding":
            self._chunks = event.total
        now = time.monotonic()
        finished_stage = event.done >= event.total
        if now - self._last < PROGRESS_EVERY_S and not finished_stage:
            return
        self._last = now
        self._heartbeat()
        self._lock.refresh(self._job.job_id)
        percent = int(100 * event.done / event.total) if event.total else 0
        self.show(
            f"Re-indexing: {event.stage} {percent}%",
            blocks.reindex_progress_blocks(
                event.stage, event.done, event.total, files=self._files, chunks=self._chunks
            ),
        )

    def show(self, text: str, message_blocks: list[dict]) -> None:
        if not self._job.progress_ts:
            return
        try:
            self._client.chat_update(
                channel=self._job.channel,
                ts=self._job.progress_ts,
                text=text,
                blocks=message_blocks,
            )
        except SlackApiError as error:
            log.warning("progress update failed: %s", slack_error_code(error))
