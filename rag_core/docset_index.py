"""Index one doc set: bring its source up to date (folder, git checkout or crawled site),
then build and publish its collection with :class:`~rag_core.ingest.indexer.Indexer`.

Git sources are cloned once into ``RAGBOT_DATA_DIR/git/NAME`` and fetched after that; a
refresh reads only the files changed since the commit the published index was built
from. Sites are crawled into ``RAGBOT_DATA_DIR/sites/NAME``, unchanged pages recognised
by their ETag, Last-Modified date or content.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rag_core.build_lock import BuildLocks, Refresh
from rag_core.docsets import DocSet
from rag_core.errors import InputError, RagbotError
from rag_core.ingest.chunking import MarkdownChunker
from rag_core.ingest.globs import PathFilter
from rag_core.ingest.index_run import IndexProgress, IndexSummary, ProgressSink, Revision, Sources
from rag_core.ingest.indexer import Indexer
from rag_core.ingest.links import LinkTemplate
from rag_core.settings import Settings
from rag_core.store import MilvusStore
from rag_core.types import Embedder


@dataclass(frozen=True, slots=True)
class DocSetBuild:
    """What indexing a doc set did: the indexer's summary and what its source said."""

    docset: DocSet
    summary: IndexSummary
    revision: Revision | None = None
    source_note: str = ""  # "3 of 40 pages changed, 1 failed", for a crawled site


def format_revision(commit: str, at: datetime | None) -> str:
    """``abc1234 (2026-11-30)``: a commit as people quote it."""
    if not commit:
        return ""
    return f"{commit[:7]} ({at:%Y-%m-%d})" if at is not None else commit[:7]


class DocSetIndexer:
    """Indexes doc sets into their stores with one embedder (see the module docstring),
    each under its build lock (:mod:`rag_core.build_lock`)."""

    def __init__(self, settings: Settings, embedder: Embedder, locks: BuildLocks) -> None:
        self.settings = settings
        self.embedder = embedder
        self.locks = locks

    def index(
        self,
        docset: DocSet,
        store: MilvusStore,
        *,
        recreate: bool = False,
        progress: ProgressSink | None = None,
        path: Path | None = None,
    ) -> DocSetBuild:
        """Bring ``docset``'s source up to date and index it into ``store``.

        ``path`` replaces a folder doc set's folder for this run (``ragbot index PATH``).
        Raises :class:`~rag_core.build_lock.BuildInProgressError` while another process
        builds it. Every error names the doc set.
        """
        try:
            with self.locks.hold(docset.name) as refresh:
                sink = _refreshing(progress, refresh)
                return self._index(docset, store, recreate=recreate, progress=sink, path=path)
        except RagbotError as error:
            message = str(error)
            if not message.startswith(f"Doc set {docset.name}"):
                raise type(error)(f"Doc set {docset.name}: {message}") from error
            raise

    def _index(
        self,
        docset: DocSet,
        store: MilvusStore,
        *,
        recreate: bool,
        progress: ProgressSink | None,
        path: Path | None,
    ) -> DocSetBuild:
        path_filter = PathFilter.of(docset.include, docset.exclude)
        if docset.kind == "git":
            if progress is not None:
                progress(IndexProgress("fetching", 0, 1))
            root, revision = self._sync_git(docset, store, recreate=recreate)
            if progress is not None:
                detail = f"commit {format_revision(revision.commit, revision.committed_at)}"
                progress(IndexProgress("fetching", 1, 1, detail))
            sources = Sources(path_filter=path_filter, revision=revision)
            summary = self._indexer(docset, store, revision.commit).index(
                root, recreate=recreate, progress=progress, sources=sources
            )
            return DocSetBuild(docset, summary, revision)
        if docset.kind == "sitemap":
            return self._index_site(docset, store, recreate=recreate, progress=progress)
        root = Path(path) if path is not None else Path(docset.source) / docset.subdir
        if not root.exists():
            raise InputError(f"the folder {root} does not exist; fix its source or create it.")
        summary = self._indexer(docset, store).index(
            root, recreate=recreate, progress=progress, sources=Sources(path_filter=path_filter)
        )
        return DocSetBuild(docset, summary)

    def _sync_git(
        self, docset: DocSet, store: MilvusStore, *, recreate: bool
    ) -> tuple[Path, Revision]:
        from rag_core.sources.git_source import GitSource

        source = GitSource(
            docset.source,
            cache_dir=self.settings.data_dir / "git" / docset.name,
            ref=docset.ref,
            subdir=docset.subdir,
            token=self.settings.git_tokens.for_url(docset.source),
            ssh_key=self.settings.git_ssh_key,
        )
        checkout = source.sync()
        previous = store.index_info()
        base = previous.revision if previous is not None and not recreate else ""
        changes = source.changes_since(base) if base and base != checkout.commit else None
        revision = Revision(
            commit=checkout.commit,
            committed_at=checkout.committed_at,
            base=base,
            changed=None if changes is None else changes.changed,
            deleted=frozenset() if changes is None else changes.deleted,
        )
        return checkout.root, revision

    def _index_site(
        self,
        docset: DocSet,
        store: MilvusStore,
        *,
        recreate: bool,
        progress: ProgressSink | None,
    ) -> DocSetBuild:
        from rag_core.sources.sitemap import SitemapSource

        site = SitemapSource(
            docset.source,
            cache_dir=self.settings.data_dir / "sites" / docset.name,
            include=docset.include,
            exclude=docset.exclude,
        )
        snapshot = site.sync()
        summary = self._indexer(docset, store).index(
            snapshot.root,
            recreate=recreate,
            progress=progress,
            sources=Sources(page_urls=snapshot.urls),
        )
        pages = snapshot.fetched + snapshot.unchanged
        note = f"{len(snapshot.changed)} of {pages} pages changed"
        if snapshot.failed:
            note += f", {len(snapshot.failed)} failed (e.g. {snapshot.failed[0][0]}: "
            note += f"{snapshot.failed[0][1]})"
        return DocSetBuild(docset, summary, source_note=note)

    def _indexer(self, docset: DocSet, store: MilvusStore, commit: str = "") -> Indexer:
        settings, embedder = self.settings, self.embedder
        # A chunk longer than the embedder reads would be searched on its first part only.
        max_tokens = min(settings.chunk_tokens, embedder.max_tokens - 2)
        links = (
            LinkTemplate(docset.url, docset.url_style)  # type: ignore[arg-type]
            if docset.url
            else LinkTemplate.from_base_url(docset.base_url)
        )
        chunker = MarkdownChunker(
            embedder.count_tokens,
            max_tokens=max_tokens,
            overlap_tokens=min(settings.chunk_overlap, max_tokens // 4),
            links=links,
            commit=commit,
        )
        return Indexer(
            store,
            embedder,
            chunker,
            bm25_analyzer=settings.bm25_analyzer,
            docs_language=settings.docs_language,
        )


def _refreshing(progress: ProgressSink | None, refresh: Refresh) -> ProgressSink:
    """``progress``, keeping the build lock alive on each event."""

    def sink(event: IndexProgress) -> None:
        refresh()
        if progress is not None:
            progress(event)

    return sink
