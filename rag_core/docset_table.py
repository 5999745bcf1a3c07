"""``ragbot docsets``: each doc set, its source and what its index holds, as a table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from rag_core.components import open_stores
from rag_core.docsets import DocSet
from rag_core.errors import RagbotError
from rag_core.settings import Settings
from rag_core.store import IndexInfo, MilvusStore

COLUMNS = (
    "name",
    "source",
    "ref/commit",
    "documents",
    "chunks",
    "bm25",
    "last indexed",
    "next refresh",
    "channels",
)


@dataclass(frozen=True, slots=True)
class DocSetStatus:
    """One doc set as ``ragbot docsets`` shows it; ``error`` when its index is unreadable."""

    docset: DocSet
    info: IndexInfo | None
    documents: int = 0
    error: str = ""

    def next_refresh(self, now: datetime) -> str:
        refresh = self.docset.refresh_s
        if refresh is None:
            return "on demand"
        if self.info is None or self.info.created_at is None:
            return "due"
        left = self.info.created_at.timestamp() + refresh - now.timestamp()
        return "due" if left <= 0 else f"in {_duration(left)}"

    def cells(self, now: datetime) -> tuple[str, ...]:
        docset, info = self.docset, self.info
        ref = docset.ref
        if info is not None and info.revision:
            commit = info.revision[:7]
            if info.revision_at is not None:
                commit += f" ({info.revision_at:%Y-%m-%d})"
            ref = f"{ref} @ {commit}" if ref else commit
        indexed = "never" if info is None else _when(info.created_at)
        if self.error:
            indexed = f"unreadable: {self.error}"
        return (
            docset.name,
            docset.describe_source() + (f" [{docset.subdir}]" if docset.subdir else ""),
            ref or "-",
            f"{self.documents:,}" if info is not None else "-",
            f"{info.chunk_count:,}" if info is not None else "-",
            (info.analyzer or "standard") if info is not None else "-",  # unrecorded: standard
            indexed,
            self.next_refresh(now),
            ", ".join(docset.channels) or "all",
        )


def docset_status(docset: DocSet, store: MilvusStore) -> DocSetStatus:
    """Read what ``store`` serves for ``docset``; a Milvus error is kept, not raised."""
    try:
        info = store.index_info()
        documents = store.document_count(info.version) if info is not None else 0
    except RagbotError as error:
        return DocSetStatus(docset, None, error=str(error))
    return DocSetStatus(docset, info, documents)


def docset_table(settings: Settings, *, now: datetime | None = None) -> str:
    """The table of every doc set of ``settings`` (plain text, aligned columns)."""
    stores = open_stores(settings)
    try:
        statuses = [docset_status(docset, store) for docset, store in stores]
    finally:
        stores.close()
    moment = now or datetime.now(UTC)
    rows = [COLUMNS, *(status.cells(moment) for status in statuses)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def _when(moment: datetime | None) -> str:
    return "unknown" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.0f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{max(1, round(seconds / 60))} min"
