"""The Indexer against real Milvus Lite, the tiny Qwen3 embedder and a docs tree on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_core.errors import IndexMismatchError, InputError
from rag_core.ingest.chunking import MarkdownChunker
from rag_core.ingest.index_run import IndexProgress
from rag_core.ingest.indexer import Indexer
from rag_core.ingest.loaders import load_documents
from rag_core.store import MilvusStore
from rag_core.types import Chunk, Embedder
from tests.fixtures.counting_embedder import CountingEmbedder

DOCS = {
    "install.md": """# Installing

Install the server with pip and start it with the command line tool.

## Linux

On Linux, use the package manager and open port 19530 in the firewall.
""",
    "backup.md": """# Backups

The zygomorphic snapshot tool copies every collection to object storage each night.
""",
    "ops/scaling.md": """# Scaling

Add query nodes to scale out search; the capybara balancer spreads the load evenly.
""",
    "notes.txt": "Plain text notes about partitions and the quokka partition key.\n",
}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    for name, text in DOCS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    (root / "diagram.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    (root / "logo.svg").write_text("<svg/>", encoding="utf-8")
    return root


@pytest.fixture
def store(milvus_uri: str) -> Iterator[MilvusStore]:
    store = MilvusStore.connect(milvus_uri, collection="docs_test")
    yield store
    store.close()


@pytest.fixture
def chunker(tiny_embedder: Embedder) -> MarkdownChunker:
    return MarkdownChunker(tiny_embedder.count_tokens, max_tokens=96, overlap_tokens=8)


@pytest.fixture
def make_indexer(store: MilvusStore, chunker: MarkdownChunker, tiny_embedder: Embedder):
    def factory(**options: object) -> tuple[Indexer, CountingEmbedder]:
        embedder = CountingEmbedder(tiny_embedder, **options)  # type: ignore[arg-type]
        return Indexer(store, embedder, chunker, embed_slice=2), embedder

    return factory


def expected_chunks(root: Path, chunker: MarkdownChunker) -> list[Chunk]:
    return [c for doc in load_documents(root).documents for c in chunker.chunk(doc)]


def bm25_paths(store: MilvusStore, text: str) -> list[str]:
    found = store.search(query_vector=None, query_text=text, mode="bm25", limit=10)
    return [hit.chunk.doc_path for hit in found]


def test_first_index_embeds_and_publishes_everything(
    make_indexer, store: MilvusStore, docs: Path, chunker: MarkdownChunker
) -> None:
    indexer, embedder = make_indexer()
    events: list[IndexProgress] = []
    summary = indexer.index(docs, progress=events.append)

    chunks = expected_chunks(docs, chunker)
    assert len(chunks) >= len(DOCS)
    assert summary.files == len(DOCS)
    assert summary.skipped == 1
    assert [s.path for s in summary.skipped_files] == ["diagram.md"]
    assert summary.chunks_total == len(chunks)
    assert (summary.chunks_new, summary.chunks_unchanged, summary.chunks_deleted) == (
        len(chunks),
        0,
        0,
    )
    assert sorted(embedder.texts) == sorted(c.embed_text for c in chunks)
    info = store.index_info()
    assert info is not None
    assert (info.version, info.chunk_count) == (summary.version, len(chunks))
    assert (info.embed_model, info.embed_dim) == (embedder.model_id, embedder.dim)
    assert bm25_paths(store, "zygomorphic")[0] == "backup.md"

    stages = [e.stage for e in events]
    assert stages == sorted(stages, key=["loading", "chunking", "embedding", "publishing"].index)
    for stage in ("loading", "chunking", "embedding", "publishing"):
        last = [e for e in events if e.stage == stage][-1]
        assert last.done == last.total > 0
    embedding = [e.done for e in events if e.stage == "embedding"]
    assert embedding == sorted(embedding) and len(embedding) > 2  # one event per batch


def test_unchanged_reindex_embeds_nothing(make_indexer, store: MilvusStore, docs: Path) -> None:
    first = make_indexer()[0].index(docs)
    indexer, embedder = make_indexer()
    summary = indexer.index(docs)

    assert embedder.texts == []
    assert (summary.chunks_new, summary.chunks_unchanged, summary.chunks_deleted) == (
        0,
        first.chunks_total,
        0,
    )
    # Same documents, chunking and model: the published version already is this build.
    assert summary.version == first.version
    info = store.index_info()
    assert info is not None and info.version == summary.version
    assert info.chunk_count == first.chunks_total
    assert store.drop_stale_versions() == []
    assert bm25_paths(store, "zygomorphic")[0] == "backup.md"


def test_changed_chunking_rebuilds_without_reembedding_same_texts(
    make_indexer, store: MilvusStore, docs: Path, tiny_embedder: Embedder
) -> None:
    first = make_indexer()[0].index(docs)
    narrower = MarkdownChunker(tiny_embedder.count_tokens, max_tokens=60, overlap_tokens=8)
    embedder = CountingEmbedder(tiny_embedder)
    summary = Indexer(store, embedder, narrower, embed_slice=2).index(docs)
    assert summary.version != first.version
    assert summary.chunks_new == len(embedder.texts)
    assert summary.chunks_new + summary.chunks_unchanged == summary.chunks_total


def test_reused_vectors_are_the_stored_ones(
    make_indexer, store: MilvusStore, docs: Path, tiny_embedder: Embedder
) -> None:
    make_indexer()[0].index(docs)
    (docs / "extra.md").write_text("# Extra\n\nA new page forces a rebuild.\n", "utf-8")
    rebuilt = make_indexer()[0].index(docs)
    assert rebuilt.chunks_new == 1 and rebuilt.chunks_unchanged > 0
    query = "How do I open the firewall port on Linux?"
    vector = tiny_embedder.embed_queries([query])[0]
    found = store.search(query_vector=vector, query_text=query, mode="dense", limit=1)
    expected = tiny_embedder.embed_documents([found[0].chunk.embed_text])[0]
    assert found[0].score == pytest.approx(float(vector @ expected), abs=1e-4)


def test_editing_one_file_reembeds_only_its_chunks(
    make_indexer, store: MilvusStore, docs: Path, chunker: MarkdownChunker
) -> None:
    make_indexer()[0].index(docs)
    before = {c.content_hash for c in expected_chunks(docs, chunker)}
    (docs / "backup.md").write_text(
        "# Backups\n\nThe okapi archiver copies every collection to tape each week.\n",
        encoding="utf-8",
    )
    after = expected_chunks(docs, chunker)
    changed = [c for c in after if c.content_hash not in before]
    assert changed and {c.doc_path for c in changed} == {"backup.md"}

    indexer, embedder = make_indexer()
    summary = indexer.index(docs)

    assert sorted(embedder.texts) == sorted(c.embed_text for c in changed)
    assert summary.chunks_new == len(changed)
    assert summary.chunks_unchanged == len(after) - len(changed)
    assert summary.chunks_deleted == len(before - {c.content_hash for c in after})
    assert bm25_paths(store, "okapi")[0] == "backup.md"
    assert "backup.md" not in bm25_paths(store, "zygomorphic")


def test_deleting_a_file_removes_its_chunks(
    make_indexer, store: MilvusStore, docs: Path, chunker: MarkdownChunker
) -> None:
    first = make_indexer()[0].index(docs)
    gone = [c for c in expected_chunks(docs, chunker) if c.doc_path == "ops/scaling.md"]
    assert bm25_paths(store, "capybara")[:1] == ["ops/scaling.md"]
    (docs / "ops" / "scaling.md").unlink()

    indexer, embedder = make_indexer()
    summary = indexer.index(docs)

    assert embedder.texts == []
    assert summary.files == len(DOCS) - 1
    assert summary.chunks_deleted == len(gone) > 0
    assert summary.chunks_total == first.chunks_total - len(gone)
    assert "ops/scaling.md" not in bm25_paths(store, "capybara scale out search")


def test_recreate_reembeds_everything(make_indexer, docs: Path) -> None:
    first = make_indexer()[0].index(docs)
    indexer, embedder = make_indexer()
    summary = indexer.index(docs, recreate=True)

    assert len(embedder.texts) == summary.chunks_new == first.chunks_total
    assert summary.chunks_unchanged == 0
    assert summary.chunks_deleted == 0


def test_failure_while_embedding_keeps_the_old_index(
    make_indexer, store: MilvusStore, docs: Path
) -> None:
    first = make_indexer()[0].index(docs)
    for number, name in enumerate(["install.md", "backup.md", "ops/scaling.md", "notes.txt"]):
        (docs / name).write_text(f"# Rewritten {number}\n\nFresh text number {number}.\n")
    indexer, embedder = make_indexer(fail_on_call=2)  # batches of 2: the second fails

    with pytest.raises(RuntimeError, match="device lost"):
        indexer.index(docs)

    assert embedder.calls == 2
    info = store.index_info()
    assert info is not None
    assert (info.version, info.chunk_count) == (first.version, first.chunks_total)
    assert store.drop_stale_versions() == []  # the half-built version is already gone
    assert bm25_paths(store, "zygomorphic")[0] == "backup.md"


def test_another_model_needs_recreate(
    make_indexer, store: MilvusStore, docs: Path, tiny_embedder: Embedder
) -> None:
    first = make_indexer()[0].index(docs)
    indexer, embedder = make_indexer(model_id="org/other-embedder")

    with pytest.raises(IndexMismatchError) as caught:
        indexer.index(docs)
    message = str(caught.value)
    assert tiny_embedder.model_id in message and "org/other-embedder" in message
    assert f"dim {tiny_embedder.dim}" in message and "--recreate" in message
    assert embedder.texts == []
    info = store.index_info()
    assert info is not None and info.version == first.version

    summary = indexer.index(docs, recreate=True)
    info = store.index_info()
    assert info is not None
    assert (info.version, info.embed_model) == (summary.version, "org/other-embedder")


def test_another_dimension_needs_recreate(
    store: MilvusStore, docs: Path, chunker: MarkdownChunker, tiny_embedder: Embedder
) -> None:
    from rag_core.embedding import Qwen3Embedder

    Indexer(store, tiny_embedder, chunker).index(docs)
    smaller = Qwen3Embedder(tiny_embedder.model_id, device="cpu", dtype="float32", dim=32)
    with pytest.raises(IndexMismatchError, match="dim 32"):
        Indexer(store, smaller, chunker).index(docs)
    Indexer(store, smaller, chunker).index(docs, recreate=True)
    info = store.index_info()
    assert info is not None and info.embed_dim == 32


def test_empty_folder_is_refused_and_the_old_index_serves(
    make_indexer, store: MilvusStore, docs: Path, tmp_path: Path
) -> None:
    first = make_indexer()[0].index(docs)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "picture.png").write_bytes(b"\x89PNG")

    indexer, _ = make_indexer()
    with pytest.raises(InputError, match=r"No documents found in .*empty \(supported: .*\.md"):
        indexer.index(empty)
    with pytest.raises(InputError, match="No such file"):
        indexer.index(tmp_path / "missing")

    info = store.index_info()
    assert info is not None and info.version == first.version
    assert store.drop_stale_versions() == []
    assert bm25_paths(store, "zygomorphic")[0] == "backup.md"
