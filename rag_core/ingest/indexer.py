"""Index a folder of docs into Milvus: incrementally (unchanged chunks keep their vectors)
and atomically (a new version is built aside and published in one switch).

A run loads and chunks every file, looks up which chunk texts the published index
already holds (by :attr:`Chunk.content_hash`), embeds only the others, writes all
chunks into a fresh collection version and moves the alias to it. Whatever fails
before the switch, the half-built version is dropped and the old index keeps serving.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from rag_core.errors import ConfigError, InputError, RagbotError
from rag_core.ingest.chunking import MarkdownChunker
from rag_core.ingest.loaders import (
    SUPPORTED_SUFFIXES,
    LoadReport,
    SkippedFile,
    find_source_files,
    read_document,
)
from rag_core.store import MilvusStore
from rag_core.types import Chunk, Document, Embedder

log = logging.getLogger(__name__)

Stage = Literal["loading", "chunking", "embedding", "publishing"]
REUSE_BATCH = 1024
"""Chunks whose stored vectors are fetched and re-inserted together (bounds memory)."""


@dataclass(frozen=True, slots=True)
class IndexProgress:
    """One step of a run: ``done`` of ``total`` files (loading, chunking), chunks to embed
    (embedding) or steps (publishing). Enough to drive a CLI bar or a Slack message."""

    stage: Stage
    done: int
    total: int


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


ProgressSink = Callable[[IndexProgress], None]
_T = TypeVar("_T")


class Indexer:
    """Builds and publishes index versions of a docs folder (see the module docstring).

    ``embed_batch_size`` chunks are embedded, then written, at a time; progress is
    reported after each such batch.
    """

    def __init__(
        self,
        store: MilvusStore,
        embedder: Embedder,
        chunker: MarkdownChunker,
        *,
        embed_batch_size: int = 64,
    ) -> None:
        if embed_batch_size < 1:
            raise ConfigError(f"embed_batch_size must be at least 1, got {embed_batch_size}.")
        self.store = store
        self.embedder = embedder
        self.chunker = chunker
        self.embed_batch_size = embed_batch_size

    def index(
        self,
        root: Path,
        *,
        recreate: bool = False,
        progress: ProgressSink | None = None,
    ) -> IndexSummary:
        """Index ``root`` (a folder or one file) and publish it; returns what changed.

        Raises :class:`InputError` for a missing path or one without usable documents,
        and :class:`IndexMismatchError` when the published index was built with another
        model or dimension and ``recreate`` is false. Side effects: drops unpublished
        versions left by crashed builds, then replaces the published version.
        """
        started = time.perf_counter()
        notify = progress if progress is not None else _ignore
        self.store.drop_stale_versions()
        previous = self.store.index_info()
        if previous is not None and not recreate:
            self.store.check_compatible(embed_model=self.embedder.model_id, dim=self.embedder.dim)
        report = load_with_progress(Path(root), notify)
        if not report.documents:
            raise InputError(_nothing_found(Path(root), report))
        digest = self.source_digest(report.documents)
        if previous is not None and not recreate and previous.source_digest == digest:
            # Same documents, same chunking, same model: the published index is this build.
            notify(IndexProgress("publishing", 1, 1))
            return IndexSummary(
                files=len(report.documents),
                skipped=len(report.skipped),
                skipped_files=list(report.skipped),
                chunks_total=previous.chunk_count,
                chunks_new=0,
                chunks_unchanged=previous.chunk_count,
                chunks_deleted=0,
                seconds=time.perf_counter() - started,
                version=previous.version,
            )
        chunks = self._chunk(report.documents, notify)
        old_hashes = self.store.stored_hashes(previous.version) if previous else {}
        version = self.store.create_version(
            embed_model=self.embedder.model_id, dim=self.embedder.dim, source_digest=digest
        )
        try:
            reuse_from = None if recreate or previous is None else previous.version
            embedded = self._fill(version, chunks, reuse_from, set(old_hashes.values()), notify)
            notify(IndexProgress("publishing", 0, 1))
            self.store.publish(version)
            notify(IndexProgress("publishing", 1, 1))
        except BaseException:
            self._discard(version)
            raise
        current = {c.content_hash for c in chunks}
        return IndexSummary(
            files=len(report.documents),
            skipped=len(report.skipped),
            skipped_files=list(report.skipped),
            chunks_total=len(chunks),
            chunks_new=embedded,
            chunks_unchanged=len(chunks) - embedded,
            chunks_deleted=sum(1 for h in old_hashes.values() if h not in current),
            seconds=time.perf_counter() - started,
            version=version,
        )

    def source_digest(self, documents: Sequence[Document]) -> str:
        """Digest of everything a build depends on: each document's path, title and text,
        the chunking settings and the embedding model. Equal digests, equal indexes."""
        chunker = self.chunker
        digest = hashlib.sha256()
        settings = (
            self.embedder.model_id,
            self.embedder.dim,
            chunker.max_tokens,
            chunker.overlap_tokens,
            chunker.min_tokens,
            chunker.source_base_url,
        )
        digest.update(json.dumps(settings).encode("utf-8"))
        for document in sorted(documents, key=lambda d: d.path):
            for part in (document.path, document.title, document.text):
                digest.update(hashlib.sha256(part.encode("utf-8")).digest())
        return digest.hexdigest()

    def _chunk(self, documents: Sequence[Document], notify: ProgressSink) -> list[Chunk]:
        chunks: list[Chunk] = []
        for done, document in enumerate(documents, start=1):
            chunks.extend(self.chunker.chunk(document))
            notify(IndexProgress("chunking", done, len(documents)))
        repeated = [key for key, n in Counter(c.id for c in chunks).items() if n > 1]
        if repeated:
            raise InputError(
                f"Chunk id {repeated[0]} appears twice; document paths must be unique."
            )
        if not chunks:
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
            reusable = [c for c in chunks if c.content_hash in stored]
            for batch in _batches(reusable, REUSE_BATCH):
                found = self.store.vectors_for_hashes(reuse_from, {c.content_hash for c in batch})
                kept = [c for c in batch if c.content_hash in found]
                if kept:
                    vectors = np.stack([found[c.content_hash] for c in kept])
                    self.store.insert(version, kept, vectors)
                    kept_ids.update(c.id for c in kept)
        fresh = [c for c in chunks if c.id not in kept_ids]
        self._embed_into(version, fresh, notify)
        return len(fresh)

    def _embed_into(self, version: str, chunks: Sequence[Chunk], notify: ProgressSink) -> None:
        """Embed each distinct text once, ``embed_batch_size`` texts at a time, and insert."""
        by_hash: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            by_hash.setdefault(chunk.content_hash, []).append(chunk)
        groups = list(by_hash.values())
        done = 0
        notify(IndexProgress("embedding", 0, len(chunks)))
        for batch in _batches(groups, self.embed_batch_size):
            vectors = self.embedder.embed_documents([group[0].embed_text for group in batch])
            if vectors.shape != (len(batch), self.embedder.dim):
                raise RagbotError(
                    f"The embedder returned vectors of shape {vectors.shape} for "
                    f"{len(batch)} texts; expected ({len(batch)}, {self.embedder.dim})."
                )
            rows = [c for group in batch for c in group]
            repeats = [len(group) for group in batch]
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


def load_with_progress(root: Path, notify: ProgressSink) -> LoadReport:
    """:func:`rag_core.ingest.loaders.load_documents`, reporting each file as it is read."""
    sources = find_source_files(root)
    report = LoadReport(ignored=sources.ignored)
    total = len(sources.paths)
    notify(IndexProgress("loading", 0, total))
    for done, path in enumerate(sources.paths, start=1):
        result = read_document(path, sources.base)
        if isinstance(result, SkippedFile):
            report.skipped.append(result)
        else:
            report.documents.append(result)
        notify(IndexProgress("loading", done, total))
    return report


def _nothing_found(root: Path, report: LoadReport) -> str:
    supported = " ".join(sorted(SUPPORTED_SUFFIXES))
    skipped = ""
    if report.skipped:
        first = report.skipped[0]
        skipped = f"; {len(report.skipped)} skipped, e.g. {first.path}: {first.reason}"
    return f"No documents found in {root} (supported: {supported}{skipped})."


def _batches(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _ignore(_: IndexProgress) -> None:
    return None
