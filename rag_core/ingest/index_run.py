"""What an index run is given and what it reports: the sources to read, the git
revision, progress as it goes and the summary at the end."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from rag_core.index_info import IndexInfo
from rag_core.ingest.globs import PathFilter
from rag_core.ingest.loaders import LoadReport, SkippedFile

Stage = Literal["fetching", "loading", "chunking", "embedding", "publishing"]


@dataclass(frozen=True, slots=True)
class IndexProgress:
    """One step of a run: ``done`` of ``total`` files (loading, chunking), chunks to embed
    (embedding) or steps (fetching the source, publishing). Enough to drive a CLI bar or
    a Slack message; ``detail`` says what the source brought (``commit abc1234 (...)``)."""

    stage: Stage
    done: int
    total: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class IndexSummary:
    """What a run did. ``chunks_new`` were embedded in this run, ``chunks_unchanged`` kept
    the vector stored for the same text; ``chunks_deleted`` are chunks of the previous
    index whose text is gone."""

    files: int
    skipped: int
    skipped_files: list[SkippedFile]
    chunks_total: int
    chunks_new: int
    chunks_unchanged: int
    chunks_deleted: int
    seconds: float
    version: str

    @classmethod
    def up_to_date(
        cls, previous: IndexInfo, *, files: int, started: float, report: LoadReport | None = None
    ) -> IndexSummary:
        """A run that found the published index ``previous`` already up to date
        (``started``: its :func:`time.perf_counter` at the start)."""
        return cls(
            files=files,
            skipped=len(report.skipped) if report else 0,
            skipped_files=list(report.skipped) if report else [],
            chunks_total=previous.chunk_count,
            chunks_new=0,
            chunks_unchanged=previous.chunk_count,
            chunks_deleted=0,
            seconds=time.perf_counter() - started,
            version=previous.version,
        )

    @classmethod
    def built(
        cls,
        report: LoadReport,
        *,
        version: str,
        total: int,
        new: int,
        unchanged: int,
        deleted: int,
        started: float,
    ) -> IndexSummary:
        """A run that published ``version`` after reading ``report``'s documents."""
        return cls(
            files=len(report.documents),
            skipped=len(report.skipped),
            skipped_files=list(report.skipped),
            chunks_total=total,
            chunks_new=new,
            chunks_unchanged=unchanged,
            chunks_deleted=deleted,
            seconds=time.perf_counter() - started,
            version=version,
        )


@dataclass(frozen=True, slots=True)
class Revision:
    """The git commit a folder is checked out at, and the files changed since ``base``
    (the commit of the published index); ``changed`` None: unknown, read everything."""

    commit: str
    committed_at: datetime | None = None
    base: str = ""
    changed: frozenset[str] | None = None  # added or modified, relative to the root
    deleted: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Sources:
    """What to read under a root: a path filter, the git revision, and the page URLs of
    a crawled site (relative path -> URL; a chunk's link is its page's, plus the anchor)."""

    path_filter: PathFilter = field(default_factory=PathFilter)
    revision: Revision | None = None
    page_urls: Mapping[str, str] | None = None


ProgressSink = Callable[[IndexProgress], None]
