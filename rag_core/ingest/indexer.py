"""Index a folder of docs into Milvus: incrementally (unchanged chunks keep their vectors)
and atomically (a new version is built aside and published in one switch).

A run loads and chunks every file, looks up which chunk texts the published index
already holds (by :attr:`Chunk.content_hash`), embeds only the others, writes all
chunks into a fresh collection version and moves the alias to it. Whatever fails
before the switch, the half-built version is dropped and the old index keeps serving.

A folder checked out at a known git commit can do less: given the files changed since
the commit the published index was built from, a run reads only those, copies every
other document's rows (vectors included) from the published version, and records the
new commit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import numpy as np

from rag_core.analyzers import AnalyzerSetting
from rag_core.errors import ConfigError, InputError, RagbotError
from rag_core.ingest.chunking import MarkdownChunker
from rag_core.ingest.index_run import (
    IndexProgress,
    IndexSummary,
    ProgressSink,
    Revision,
    Sources,
)
from rag_core.ingest.loaders import load_filtered, load_paths, nothing_found
from rag_core.store import IndexInfo, MilvusStore
from rag_core.types import Chunk, Document, Embedder, ProgressCallback

log = logging.getLogger(__name__)

REUSE_BATCH = 1024
"""Chunks re-inserted together with the stored vectors found for them (bounds memory)."""
EMBED_SLICE = 4096
"""Distinct texts handed to the embedder per call: enough that sorting them by length
leaves little padding, few enough that rows reach Milvus as the run goes and the vectors
held stay small (4096 × 1024 float32: 16 MiB)."""


_T = TypeVar("_T")


class Indexer:
    """Builds and publishes index versions of a docs folder (see the module docstring).

    ``embed_slice`` distinct texts are embedded, then written, at a time; progress is
    reported after each of the embedder's forward passes.
    """

    def __init__(
        self,
        store: MilvusStore,
        embedder: Embedder,
        chunker: MarkdownChunker,
        *,
        embed_slice: int = EMBED_SLICE,
        bm25_analyzer: AnalyzerSetting = "auto",
        docs_language: str = "English",
    ) -> None:
        if embed_slice < 1:
            raise ConfigError(f"embed_slice must be at least 1, got {embed_slice}.")
        self.store = store
        self.embedder = embedder
        self.chunker = chunker
        self.embed_slice = embed_slice
        self.bm25_analyzer: AnalyzerSetting = bm25_analyzer  # see rag_core.analyzers
        self.docs_language = docs_language

    def index(
        self,
        root: Path,
        *,
        recreate: bool = False,
        progress: ProgressSink | None = None,
        sources: Sources | None = None,
    ) -> IndexSummary:
        """Index ``root`` (a folder or one file) and publish it; returns what changed.

        ``sources`` narrows what is read (see :class:`Sources`). Raises
        :class:`InputError` for a missing path or one without usable documents, and
        :class:`IndexMismatchError` when the published index was built with another
        model, model revision or dimension and ``recreate`` is false. Side effects: drops
        unpublished versions left by crashed builds, then replaces the published version.
        """
        started = time.perf_counter()
        notify = progress if progress is not None else _ignore
        sources = Sources() if sources is None else sources
        previous = self._previous(recreate)
        revision = sources.revision
        if revision is not None:
            digest = self.revision_digest(sources)
            if previous is not None and not recreate and previous.source_digest == digest:
                notify(IndexProgress("publishing", 1, 1))
                return IndexSummary.up_to_date(previous, files=0, started=started)
            base = self._incremental_base(previous, sources, recreate)
            if base is not None:
                return self._refresh(Path(root), base, sources, digest, notify, started)
        report = load_filtered(Path(root), sources.path_filter, each=_loading(notify))
        if not report.documents:
            raise InputError(nothing_found(Path(root), report, sources.path_filter))
        if revision is None:
            digest = self.source_digest(report.documents)
            if previous is not None and not recreate and previous.source_digest == digest:
                # Same documents, same chunking, same model: the published index is this build.
                notify(IndexProgress("publishing", 1, 1))
                return IndexSummary.up_to_date(
                    previous, files=len(report.documents), started=started, report=report
                )
        chunks = self._chunk(report.documents, notify, sources.page_urls)
        old_hashes = self.store.stored_hashes(previous.version) if previous else {}
        reused = None if recreate else previous
        version = self._create(digest, revision, reused)
        try:
            reuse_from = None if reused is None else reused.version
            embedded = self._fill(version, chunks, reuse_from, set(old_hashes.values()), notify)
            self._publish(version, notify)
        except BaseException:
            self._discard(version)
            raise
        current = {c.content_hash for c in chunks}
        return IndexSummary.built(
            report,
            version=version,
            total=len(chunks),
            new=embedded,
            unchanged=len(chunks) - embedded,
            deleted=sum(1 for h in old_hashes.values() if h not in current),
            started=started,
        )

    def _previous(self, recreate: bool) -> IndexInfo | None:
        """The published index (None before the first build), after dropping versions
        that crashed builds left; unless ``recreate``, it must have been built with this
        embedder (:class:`IndexMismatchError` otherwise)."""
        self.store.drop_stale_versions()
        previous = self.store.index_info()
        if previous is not None and not recreate:
            self.store.check_compatible(
                embed_model=self.embedder.model_id,
                dim=self.embedder.dim,
                embed_revision=self.embedder.revision,
            )
        return previous

    def revision_digest(self, sources: Sources) -> str:
        """What a build of a git checkout depends on: the settings of
        :meth:`source_digest`, the path filter, and the commit (``settings@commit``)."""
        assert sources.revision is not None
        return f"{self._settings_digest(sources)}@{sources.revision.commit}"

    def _incremental_base(
        self, previous: IndexInfo | None, sources: Sources, recreate: bool
    ) -> IndexInfo | None:
        """The published index a refresh can start from: built with the same settings
        from the commit the changes are counted from."""
        revision = sources.revision
        if recreate or previous is None or revision is None or revision.changed is None:
            return None
        if previous.source_digest != f"{self._settings_digest(sources)}@{revision.base}":
            return None
        return previous

    def _refresh(
        self,
        root: Path,
        previous: IndexInfo,
        sources: Sources,
        digest: str,
        notify: ProgressSink,
        started: float,
    ) -> IndexSummary:
        """Build the next version from ``previous`` plus the files changed since its
        commit: their old rows are left behind and their new text read, chunked and
        embedded (reusing vectors of unchanged texts)."""
        revision = sources.revision
        assert revision is not None and revision.changed is not None
        touched = revision.changed | revision.deleted
        report = load_paths(root, revision.changed, sources.path_filter, each=_loading(notify))
        chunks = self._chunk(report.documents, notify, sources.page_urls, allow_empty=True)
        old_hashes = self.store.stored_hashes(previous.version)
        version = self._create(digest, revision, previous)
        try:
            copied = self.store.copy_rows(previous.version, version, skip_paths=touched)
            if copied == 0 and not chunks:
                raise InputError(nothing_found(root, report, sources.path_filter))
            embedded = self._fill(
                version, chunks, previous.version, set(old_hashes.values()), notify
            )
            self._publish(version, notify)
        except BaseException:
            self._discard(version)
            raise
        reused = len(chunks) - embedded
        return IndexSummary.built(
            report,
            version=version,
            total=copied + len(chunks),
            new=embedded,
            unchanged=copied + reused,
            # Old chunks of the changed files whose text no new chunk has.
            deleted=max(0, previous.chunk_count - copied - reused),
            started=started,
        )

    def _create(self, digest: str, revision: Revision | None, reused: IndexInfo | None) -> str:
        """A new version recording this build; the embedder's revision unless vectors are
        reused from an index that recorded none (then still unknown, and warned about)."""
        unknown = reused is not None and not reused.embed_revision
        return self.store.create_version(
            embed_model=self.embedder.model_id,
            dim=self.embedder.dim,
            source_digest=digest,
            revision=revision.commit if revision else "",
            revision_at=revision.committed_at if revision else None,
            embed_revision="" if unknown else self.embedder.revision,
            analyzer=self.bm25_analyzer,
            docs_language=self.docs_language,
        )

    def _publish(self, version: str, notify: ProgressSink) -> None:
        notify(IndexProgress("publishing", 0, 1))
        self.store.publish(version)
        notify(IndexProgress("publishing", 1, 1))

    def source_digest(self, documents: Sequence[Document]) -> str:
        """Digest of everything a build depends on: each document's path, title and text,
        the chunking settings and the embedding model. Equal digests, equal indexes."""
        digest = hashlib.sha256(self._settings_digest(Sources()).encode("utf-8"))
        for document in sorted(documents, key=lambda d: d.path):
            for part in (
                document.path,
                document.title,
                document.slug,
                document.doc_id,
                document.text,
            ):
                digest.update(hashlib.sha256(part.encode("utf-8")).digest())
        return digest.hexdigest()

    def _settings_digest(self, sources: Sources) -> str:
        """Digest of the settings a build depends on besides its documents: the model,
        the chunking, the links and the path filter. (Not the model's revision: an index
        of another revision is refused by ``check_compatible`` before this matters.)"""
        chunker = self.chunker
        settings = (
            self.embedder.model_id,
            self.embedder.dim,
            chunker.max_tokens,
            chunker.overlap_tokens,
            chunker.min_tokens,
            chunker.source_base_url,
            repr(getattr(chunker, "links", None)),
            sources.path_filter.include,
            sources.path_filter.exclude,
        )
        return hashlib.sha256(json.dumps(settings).encode("utf-8")).hexdigest()

    def _chunk(
        self,
        documents: Sequence[Document],
        notify: ProgressSink,
        page_urls: Mapping[str, str] | None = None,
        *,
        allow_empty: bool = False,
    ) -> list[Chunk]:
        chunks: list[Chunk] = []
        for done, document in enumerate(documents, start=1):
            found = self.chunker.chunk(document)
            if page_urls is not None and document.path in page_urls:
                page = page_urls[document.path]
                found = [replace(c, url=f"{page}#{c.anchor}" if c.anchor else page) for c in found]
            chunks.extend(found)
            notify(IndexProgress("chunking", done, len(documents)))
        repeated = [key for key, n in Counter(c.id for c in chunks).items() if n > 1]
        if repeated:
            raise InputError(
                f"Chunk id {repeated[0]} appears twice; document paths must be unique."
            )
        if not chunks and not allow_empty:
            raise InputError("The documents hold no text to index.")
        return chunks

    def _fill(
        self,
        version: str,
        chunks: Sequence[Chunk],
        reuse_from: str | None,
        stored: set[str],
        notify: ProgressSink,
    ) -> int:
        """Write every chunk into ``version``, reusing the vectors ``reuse_from`` holds for
        the same texts; returns how many chunks had to be embedded."""
        kept_ids: set[str] = set()
        if reuse_from is not None:
            kept_ids = self._reuse(version, chunks, reuse_from, stored)
        fresh = [c for c in chunks if c.id not in kept_ids]
        self._embed_into(version, fresh, notify)
        return len(fresh)

    def _reuse(
        self, version: str, chunks: Sequence[Chunk], reuse_from: str, stored: set[str]
    ) -> set[str]:
        """Insert the chunks whose text ``reuse_from`` holds, with its vectors, as one pass
        over it finds them (``REUSE_BATCH`` rows at a time); returns their ids."""
        waiting: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            if chunk.content_hash in stored:
                waiting.setdefault(chunk.content_hash, []).append(chunk)
        kept_ids: set[str] = set()
        batch: list[Chunk] = []
        vectors: list[np.ndarray] = []

        def flush() -> None:
            self.store.insert(version, batch, np.stack(vectors))
            kept_ids.update(c.id for c in batch)
            batch.clear()
            vectors.clear()

        for content_hash, vector in self.store.stored_vectors(reuse_from, waiting):
            same_text = waiting.pop(content_hash)
            batch.extend(same_text)
            vectors.extend([vector] * len(same_text))
            if len(batch) >= REUSE_BATCH:
                flush()
        if batch:
            flush()
        return kept_ids

    def _embed_into(self, version: str, chunks: Sequence[Chunk], notify: ProgressSink) -> None:
        """Embed each distinct text once, ``embed_slice`` texts per call (so the embedder
        sorts thousands by length), and insert every chunk with its text's vector."""
        by_hash: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            by_hash.setdefault(chunk.content_hash, []).append(chunk)
        done = 0
        notify(IndexProgress("embedding", 0, len(chunks)))
        for part in _batches(list(by_hash.values()), self.embed_slice):
            texts = [group[0].embed_text for group in part]
            vectors = self.embedder.embed_documents(
                texts, progress=_passes_reporter(done, len(texts), len(chunks), notify)
            )
            if vectors.shape != (len(part), self.embedder.dim):
                raise RagbotError(
                    f"The embedder returned vectors of shape {vectors.shape} for "
                    f"{len(part)} texts; expected ({len(part)}, {self.embedder.dim})."
                )
            rows = [c for group in part for c in group]
            repeats = [len(group) for group in part]
            self.store.insert(version, rows, np.repeat(vectors, repeats, axis=0))
            done += len(rows)
            notify(IndexProgress("embedding", done, len(chunks)))

    def _discard(self, version: str) -> None:
        try:
            self.store.drop_version(version)
        except RagbotError as error:
            log.warning(
                "could not drop unfinished version %s (%s); the next run will", version, error
            )


def _loading(notify: ProgressSink) -> Callable[[int, int], None]:
    """Files read, as loading progress."""

    def each(done: int, total: int) -> None:
        notify(IndexProgress("loading", done, total))

    return each


def _passes_reporter(start: int, texts: int, total: int, notify: ProgressSink) -> ProgressCallback:
    """The embedder's progress callback for one slice: ``start`` plus the texts embedded
    so far, except after the slice's last pass (the insert that follows reports it)."""
    embedded = 0

    def report(count: int) -> None:
        nonlocal embedded
        embedded += count
        if embedded < texts:
            notify(IndexProgress("embedding", start + embedded, total))

    return report


def _batches(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _ignore(_: IndexProgress) -> None:
    return None
