"""The worker's half of ``/reindex``: build the new index and report on one message."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.conversation_state import ReindexLock
from bot.index_status import IndexStatus, IndexStatusStore
from bot.jobs import LeaseLost, ReindexJob
from bot.slack_retry import slack_error_code
from rag_core.docset_index import DocSetBuild, DocSetIndexer, format_revision
from rag_core.docset_stores import DocSetStores
from rag_core.docsets import DocSet
from rag_core.errors import RagbotError
from rag_core.ingest.index_run import IndexProgress
from rag_core.store import MilvusStore

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 2.0  # chat.update is rate limited (about 50 a minute per channel)


@dataclass(slots=True)
class ReindexHandler:
    """Runs :class:`ReindexJob`; ``heartbeat`` keeps the queue entry and the lock alive.

    The job names one doc set, or none for all of them, one after another; a doc set that
    fails is reported and the others are still indexed. A heartbeat that raises
    :class:`~bot.jobs.LeaseLost` (another worker owns the job now) stops the re-index: the
    error propagates, and the lock, which now belongs to the new owner, is kept. Each
    finished doc set is recorded in ``index_status`` (what the App Home tab shows) with
    the user who started it.
    """

    indexer: DocSetIndexer
    stores: DocSetStores
    client: WebClient
    lock: ReindexLock
    index_status: IndexStatusStore | None = None

    def handle(self, job: ReindexJob, *, heartbeat: Callable[[], None]) -> None:
        reporter = ProgressReporter(self.client, job, heartbeat=heartbeat, lock=self.lock)
        owner = True
        builds: list[DocSetBuild] = []
        failures: list[str] = []
        try:
            chosen = self.stores.select([job.docset] if job.docset else None)
            for docset, store in chosen:
                reporter.label = docset.name if len(self.stores.docsets) > 1 else ""
                build = self._one(job, docset, store, reporter, failures)
                if build is not None:
                    builds.append(build)
        except LeaseLost as error:
            owner = False
            log.warning("re-index %s stopped: %s", job.job_id, error)
            raise
        except RagbotError as error:  # an unknown doc set
            failures.append(str(error))
        finally:
            if owner:
                self.lock.release(job.job_id)
        if not builds:
            reason = " ".join(failures) or "Nothing to index."
            reporter.show(
                f"Re-index failed: {reason}",
                blocks.reindex_failed_blocks(f"{reason} The previous index is still serving."),
            )
            return
        named = len(self.stores.docsets) > 1
        reporter.show(
            " ".join([*(summary_text(b, named=named) for b in builds), *failures]),
            blocks.reindex_summary_blocks(
                [build_fields(b, named=named) for b in builds], failures=failures
            ),
        )

    def _one(
        self,
        job: ReindexJob,
        docset: DocSet,
        store: MilvusStore,
        reporter: ProgressReporter,
        failures: list[str],
    ) -> DocSetBuild | None:
        """Index one doc set and record it; a failure goes into ``failures``."""
        try:
            build = self.indexer.index(docset, store, recreate=job.recreate, progress=reporter)
        except RagbotError as error:
            log.warning("re-index %s of %s failed: %s", job.job_id, docset.name, error)
            failures.append(str(error))
            return None
        except LeaseLost:
            raise
        except Exception:
            log.exception("re-index %s of %s crashed", job.job_id, docset.name)
            failures.append(f"Doc set {docset.name}: internal error (see the worker's logs).")
            return None
        if self.index_status is not None:
            summary, revision = build.summary, build.revision
            refreshed = revision is not None and revision.changed is not None
            record = self.index_status.put if job.user else self.index_status.record_served
            record(  # a background refresh that changed nothing keeps the last build's record
                IndexStatus(
                    version=summary.version,
                    chunks=summary.chunks_total,
                    documents=None if refreshed else summary.files,
                    built_at=time.time(),
                    built_by=job.user,
                    embed_model=self.indexer.embedder.model_id,
                    docset=docset.name,
                    commit=revision.commit if revision else "",
                    commit_at=_timestamp(revision.committed_at) if revision else 0.0,
                )
            )
        return build

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


def record_served_index(status: IndexStatusStore, stores: DocSetStores) -> None:
    """At worker start-up: record what each doc set serves for the App Home tab (a Milvus
    error is logged; the tab then shows the last record)."""
    for docset, store in stores:
        try:
            info = store.index_info()
        except RagbotError as error:
            log.warning("could not read the served index of %s: %s", docset.name, error)
            continue
        if info is not None:
            status.record_served(
                IndexStatus(
                    version=info.version,
                    chunks=info.chunk_count,
                    built_at=_timestamp(info.created_at),
                    embed_model=info.embed_model,
                    docset=docset.name,
                    commit=info.revision,
                    commit_at=_timestamp(info.revision_at),
                )
            )


def build_fields(build: DocSetBuild, *, named: bool) -> dict[str, object]:
    """The summary of one doc set's build as message fields (see
    :func:`bot.blocks.reindex_summary_blocks`)."""
    fields: dict[str, object] = {"doc_set": build.docset.name} if named else {}
    fields.update(asdict(build.summary))
    fields.pop("skipped_files", None)
    if build.revision is not None:
        fields["commit"] = format_revision(build.revision.commit, build.revision.committed_at)
    if build.source_note:
        fields["pages"] = build.source_note
    return fields


def summary_text(build: DocSetBuild, *, named: bool = False) -> str:
    summary = build.summary
    text = (
        f"Re-index done: {summary.files} files, {summary.chunks_total} chunks "
        f"({summary.chunks_new} new, {summary.chunks_unchanged} unchanged, "
        f"{summary.chunks_deleted} deleted) in {summary.seconds:.1f} s."
    )
    return f"{build.docset.name}: {text}" if named else text


def _timestamp(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else 0.0


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
        self.label = ""  # the doc set being indexed, when there are several
        self._detail = ""  # what the source brought: "commit abc1234 (2026-11-30)"

    def __call__(self, event: IndexProgress) -> None:
        if event.detail:
            self._detail = event.detail
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
        stage = f"{self.label}: {event.stage}" if self.label else event.stage
        self.show(
            f"Re-indexing: {stage} {percent}%",
            blocks.reindex_progress_blocks(
                stage,
                event.done,
                event.total,
                files=self._files,
                chunks=self._chunks,
                detail=self._detail,
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
