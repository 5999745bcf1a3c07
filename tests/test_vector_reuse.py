"""Stored vectors read back in one pass over a version: real Milvus Lite, small pages so
every pass spans several, and requests counted by a proxy in front of the real client."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pymilvus import MilvusClient

from rag_core import store_schema as rows
from rag_core.errors import InputError
from rag_core.ingest.chunking import MarkdownChunker
from rag_core.ingest.indexer import Indexer
from rag_core.store import MilvusStore
from rag_core.store_scan import ITERATOR_LOGGER, pages
from rag_core.types import Chunk, Embedder
from tests.fixtures.counting_client import CountingClient

DIM = 8
MODEL = "test/bag-of-axes"


def chunk(path: str, index: int, text: str) -> Chunk:
    return Chunk(path, "", (), "", "", chunk_index=index, text=text)


@pytest.fixture
def counting(milvus_uri: str) -> Iterator[CountingClient]:
    Path(milvus_uri).parent.mkdir(parents=True, exist_ok=True)
    client = CountingClient(MilvusClient(uri=milvus_uri))
    yield client
    client.client.close()


@pytest.fixture
def store(counting: CountingClient) -> MilvusStore:
    return MilvusStore(counting, collection="reuse", batch_size=2, scan_rows=3)  # type: ignore[arg-type]


def build(store: MilvusStore, chunks: list[Chunk]) -> tuple[str, np.ndarray]:
    vectors = np.random.default_rng(len(chunks)).random((len(chunks), DIM), dtype=np.float32)
    version = store.create_version(embed_model=MODEL, dim=DIM)
    store.insert(version, chunks, vectors)
    return version, vectors


def test_each_wanted_vector_comes_once_from_one_pass(
    store: MilvusStore, counting: CountingClient
) -> None:
    chunks = [chunk(f"doc{i}.md", 0, f"text number {i}") for i in range(10)]
    chunks.append(chunk("copy.md", 0, "text number 4"))  # the same text twice
    version, vectors = build(store, chunks)
    wanted = {chunks[i].content_hash for i in (0, 4, 9)} | {"ab" * 32}  # one not stored
    counting.calls.clear()

    found = list(store.stored_vectors(version, set(wanted)))

    assert sorted(h for h, _ in found) == sorted(wanted - {"ab" * 32})
    for content_hash, vector in found:
        stored = [vectors[i] for i, c in enumerate(chunks) if c.content_hash == content_hash]
        assert vector.dtype == np.float32
        assert any(np.allclose(vector, each) for each in stored)
    assert counting.calls["query_iterator"] == 1
    assert counting.calls["query"] == 0  # no lookup per batch of hashes


def test_the_pass_ends_when_nothing_more_is_wanted(store: MilvusStore) -> None:
    chunks = [chunk(f"doc{i}.md", 0, f"text number {i}") for i in range(12)]
    version, _ = build(store, chunks)
    waiting = {c.content_hash for c in chunks}
    seen = 0
    for content_hash, _vector in store.stored_vectors(version, waiting):
        waiting.discard(content_hash)
        seen += 1
    assert seen == len(chunks) and not waiting
    assert list(store.stored_vectors(version, set())) == []


def test_only_content_hashes_are_looked_up(store: MilvusStore) -> None:
    version, _ = build(store, [chunk("a.md", 0, "alpha")])
    with pytest.raises(InputError, match="content hash"):
        store.vectors_for_hashes(version, ['" or id != "'])


def test_copy_rows_keeps_every_row_outside_the_skipped_documents(store: MilvusStore) -> None:
    chunks = [chunk(f"doc{i % 4}.md", i, f"text number {i}") for i in range(11)]
    source, vectors = build(store, chunks)
    target = store.create_version(embed_model=MODEL, dim=DIM)

    copied = store.copy_rows(source, target, skip_paths={"doc1.md"})

    kept = [c for c in chunks if c.doc_path != "doc1.md"]
    assert copied == len(kept)
    assert store.stored_hashes(target) == {c.id: c.content_hash for c in kept}
    by_hash = store.vectors_for_hashes(target, {c.content_hash for c in kept})
    for position, c in enumerate(chunks):
        if c.doc_path != "doc1.md":
            assert np.allclose(by_hash[c.content_hash], vectors[position])


def test_a_reindex_reuses_stored_vectors_and_embeds_only_new_text(
    store: MilvusStore, tiny_embedder: Embedder, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr("rag_core.ingest.indexer.REUSE_BATCH", 2)  # several inserts
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(5):
        (docs / f"page{i}.md").write_text(f"# Page {i}\n\nThe quokka number {i}.\n", "utf-8")
    chunker = MarkdownChunker(tiny_embedder.count_tokens, max_tokens=64, overlap_tokens=8)
    indexer = Indexer(store, tiny_embedder, chunker)
    first = indexer.index(docs)
    info = store.index_info()
    assert info is not None
    before = store.vectors_for_hashes(info.version, set(store.stored_hashes(info.version).values()))

    (docs / "page2.md").write_text("# Page 2\n\nA capybara now.\n", "utf-8")
    second = indexer.index(docs)

    assert (second.chunks_new, second.chunks_unchanged) == (1, first.chunks_total - 1)
    info = store.index_info()
    assert info is not None and info.chunk_count == first.chunks_total
    after = store.vectors_for_hashes(info.version, set(store.stored_hashes(info.version).values()))
    assert len(after) == len(before)
    assert (
        sum(1 for h in after if h in before and np.allclose(after[h], before[h])) == len(before) - 1
    )


def test_a_pass_over_milvus_lite_logs_no_timestamp_warning(
    store: MilvusStore, counting: CountingClient, caplog: pytest.LogCaptureFixture
) -> None:
    version, _ = build(store, [chunk("a.md", 0, "alpha"), chunk("b.md", 0, "beta")])
    fields = [rows.CONTENT_HASH]
    with caplog.at_level(logging.WARNING, logger=ITERATOR_LOGGER):
        bare = counting.client.query_iterator(
            version, batch_size=3, filter="", output_fields=fields
        )
        bare.close()
        assert "mvccTs" in caplog.text  # what pymilvus says to Milvus Lite
        caplog.clear()
        assert (
            sum(
                len(page)
                for page in pages(counting.client, version, fields, rows_per_page=3, timeout=10)
            )
            == 2
        )
        logging.getLogger(ITERATOR_LOGGER).warning("failed to get mvccTs, outside the pass")
    assert [r.getMessage() for r in caplog.records] == ["failed to get mvccTs, outside the pass"]
