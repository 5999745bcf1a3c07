"""What the index is, remembered between questions: real Milvus Lite, Milvus requests
counted by a proxy that forwards every call to the real client."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from pymilvus import MilvusClient

from rag_core.cache import AnswerCache
from rag_core.docset_stores import DocSetStores
from rag_core.docsets import DocSet
from rag_core.errors import IndexMismatchError, IndexNotFoundError
from rag_core.index_state import IndexState
from rag_core.ingest.chunking import MarkdownChunker
from rag_core.ingest.indexer import Indexer
from rag_core.pipeline import RagPipeline
from rag_core.settings import Settings
from rag_core.store import IndexInfo, MilvusStore
from rag_core.types import Chunk
from tests.fixtures.counting_client import CountingClient

DIM = 8
MODEL = "test/bag-of-axes"
CHECK_CALLS = Counter(list_aliases=1, describe_alias=1, describe_collection=1, query=1)


def unit(axis: int) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[axis] = 1.0
    return vector


def publish(store: MilvusStore, texts: list[str], *, model: str = MODEL, dim: int = DIM) -> str:
    """Build a version of ``texts`` (one chunk each, along the axes) and publish it."""
    chunks = [
        Chunk(f"doc{i}.md", "", (), "", "", chunk_index=0, text=text)
        for i, text in enumerate(texts)
    ]
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    vectors[np.arange(len(texts)), np.arange(len(texts)) % dim] = 1.0
    version = store.create_version(embed_model=model, dim=dim)
    store.insert(version, chunks, vectors)
    store.publish(version)
    return version


def texts_found(store: MilvusStore) -> list[str]:
    found = store.search(query_vector=unit(0), query_text="", mode="dense", limit=5)
    return [hit.chunk.text for hit in found]


@pytest.fixture
def open_store(milvus_uri: str, collection_name: str) -> Iterator[Callable[..., MilvusStore]]:
    """Stores of one collection, each on its own client of the same Milvus Lite file."""
    Path(milvus_uri).parent.mkdir(parents=True, exist_ok=True)
    opened: list[MilvusStore] = []

    def factory(*, index_check_s: float, counting: CountingClient | None = None) -> MilvusStore:
        client = counting if counting is not None else MilvusClient(uri=milvus_uri)
        store = MilvusStore(
            client,  # type: ignore[arg-type]
            collection=collection_name,
            uri=milvus_uri,
            index_check_s=index_check_s,
        )
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def check(store: MilvusStore) -> IndexInfo:
    return store.check_compatible(embed_model=MODEL, dim=DIM, cached=True)


def test_a_question_costs_one_request_while_the_check_is_fresh(milvus_uri, open_store) -> None:
    Path(milvus_uri).parent.mkdir(parents=True, exist_ok=True)
    counting = CountingClient(MilvusClient(uri=milvus_uri))
    store = open_store(index_check_s=3600, counting=counting)
    publish(store, ["alpha", "beta"])
    check(store)
    counting.take()

    for _ in range(3):
        check(store)
        assert texts_found(store)[0] == "alpha"
    assert counting.take() == Counter(search=3)


def test_with_no_trust_every_question_checks_again(milvus_uri, open_store) -> None:
    Path(milvus_uri).parent.mkdir(parents=True, exist_ok=True)
    counting = CountingClient(MilvusClient(uri=milvus_uri))
    store = open_store(index_check_s=0, counting=counting)
    publish(store, ["alpha"])
    counting.take()

    for _ in range(2):
        check(store)
        texts_found(store)
    assert counting.take() == CHECK_CALLS + CHECK_CALLS + Counter(search=2)


def test_a_stale_check_reads_only_the_alias_when_it_has_not_moved(open_store) -> None:
    clock = FakeClock()
    store = open_store(index_check_s=30)
    publish(store, ["alpha"])
    reads = CountingReads(store)
    state = IndexState(30, clock=clock)

    first = state.current(reads.version, reads.info)
    clock.now += 29
    assert state.current(reads.version, reads.info) == first
    assert reads.take() == Counter(info=1)
    clock.now += 2
    assert state.current(reads.version, reads.info) == first
    assert reads.take() == Counter(version=1)  # the alias, not the whole description

    publish(store, ["beta"])
    clock.now += 31
    moved = state.current(reads.version, reads.info)
    assert moved is not None and first is not None and moved.version != first.version
    assert reads.take() == Counter(version=1, info=1)


def test_threads_asking_together_share_one_reading(open_store) -> None:
    store = open_store(index_check_s=30)
    version = publish(store, ["alpha"])
    reads = CountingReads(store)
    state = IndexState(30)
    start = threading.Barrier(8)
    found: list[str | None] = []

    def ask() -> None:
        start.wait()
        info = state.current(reads.version, reads.info)
        found.append(info.version if info is not None else None)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [version] * 8
    assert reads.take() == Counter(info=1)


def test_a_publish_in_this_process_is_seen_at_once(open_store) -> None:
    store = open_store(index_check_s=3600)
    first = publish(store, ["alpha"])
    assert check(store).version == first
    second = publish(store, ["beta"])
    assert check(store).version == second
    assert texts_found(store) == ["beta"]


def test_another_process_publish_is_seen_at_once_without_trust(open_store) -> None:
    builder = open_store(index_check_s=0)
    reader = open_store(index_check_s=0)
    publish(builder, ["alpha"])
    assert texts_found(reader) == ["alpha"]
    second = publish(builder, ["beta"])
    assert check(reader).version == second
    assert texts_found(reader) == ["beta"]


def test_another_process_publish_is_seen_after_the_check_expires(open_store) -> None:
    builder = open_store(index_check_s=0)
    reader = open_store(index_check_s=0.5)
    first = publish(builder, ["alpha"])
    assert check(reader).version == first
    second = publish(builder, ["beta"])
    time.sleep(0.6)
    assert check(reader).version == second


def test_a_search_of_a_dropped_version_checks_again_and_retries(open_store) -> None:
    builder = open_store(index_check_s=0)
    reader = open_store(index_check_s=3600)
    first = publish(builder, ["alpha"])
    assert check(reader).version == first
    second = publish(builder, ["beta"])  # moves the alias and drops the first version

    assert check(reader).version == first  # trusted for an hour...
    assert texts_found(reader) == ["beta"]  # ...until its search finds the version gone
    assert check(reader).version == second


def test_a_mismatching_publish_elsewhere_is_still_refused(open_store) -> None:
    builder = open_store(index_check_s=0)
    reader = open_store(index_check_s=3600)
    publish(builder, ["alpha"])
    check(reader)
    publish(builder, ["beta"], model="org/other-model", dim=DIM * 2)

    with pytest.raises(IndexMismatchError, match="org/other-model"):
        texts_found(reader)
    with pytest.raises(IndexMismatchError):
        check(reader)


def test_a_mismatching_publish_here_is_refused_at_once(open_store) -> None:
    store = open_store(index_check_s=3600)
    publish(store, ["alpha"])
    check(store)
    publish(store, ["beta"], model="org/other-model")
    with pytest.raises(IndexMismatchError):
        check(store)


def test_a_first_index_built_elsewhere_serves_at_once(milvus_uri, open_store) -> None:
    builder = open_store(index_check_s=0)
    counting = CountingClient(MilvusClient(uri=milvus_uri))
    reader = open_store(index_check_s=3600, counting=counting)
    with pytest.raises(IndexNotFoundError):
        check(reader)
    counting.take()
    with pytest.raises(IndexNotFoundError):
        check(reader)
    assert counting.take() == Counter(list_aliases=1)  # looked for again, cheaply
    version = publish(builder, ["alpha"])
    assert check(reader).version == version
    assert texts_found(reader) == ["alpha"]


def test_the_pipeline_asks_milvus_only_to_search(
    milvus_uri, collection_name, tiny_embedder, tmp_path
) -> None:
    Path(milvus_uri).parent.mkdir(parents=True, exist_ok=True)
    counting = CountingClient(MilvusClient(uri=milvus_uri))
    docset = DocSet(name="docs", kind="folder", source="", collection=collection_name)
    stores = DocSetStores(counting, [docset], uri=milvus_uri, index_check_s=3600)  # type: ignore[arg-type]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "install.md").write_text("# Install\n\nRun pip install zebrafish.\n", "utf-8")
    chunker = MarkdownChunker(tiny_embedder.count_tokens, max_tokens=128, overlap_tokens=16)
    Indexer(stores["docs"], tiny_embedder, chunker).index(docs)
    settings = Settings(_env_file=None, rerank_model="none", candidates=5, top_n=2)
    pipeline = RagPipeline(settings, embedder=tiny_embedder, stores=stores)
    try:
        pipeline.ask("How do I install zebrafish?")
        counting.take()
        for question in ("How do I install it?", "Which pip command?"):
            assert pipeline.ask(question).passages
        calls = counting.take()  # a hybrid search is one request or two (one per leg)
        assert calls and set(calls) <= {"search", "hybrid_search"}
    finally:
        stores.close()


def test_a_cached_answer_is_not_served_once_another_process_reindexed(
    milvus_uri, collection_name, tiny_embedder, tmp_path, redis_client, redis_prefix
) -> None:
    """Two workers share the answer cache; one re-indexes, the other must not answer
    from the old index although it trusts its check for an hour."""
    Path(milvus_uri).parent.mkdir(parents=True, exist_ok=True)
    docset = DocSet(name="docs", kind="folder", source="", collection=collection_name)
    builder = DocSetStores(MilvusClient(uri=milvus_uri), [docset], uri=milvus_uri)
    counting = CountingClient(MilvusClient(uri=milvus_uri))
    reader = DocSetStores(counting, [docset], uri=milvus_uri, index_check_s=3600)  # type: ignore[arg-type]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "install.md").write_text("# Install\n\nRun pip install zebrafish.\n", "utf-8")
    chunker = MarkdownChunker(tiny_embedder.count_tokens, max_tokens=128, overlap_tokens=16)
    indexer = Indexer(builder["docs"], tiny_embedder, chunker)
    indexer.index(docs)
    settings = Settings(_env_file=None, rerank_model="none", candidates=5, top_n=2)
    cache = AnswerCache(redis_client, prefix=redis_prefix)
    pipeline = RagPipeline(settings, embedder=tiny_embedder, stores=reader, answer_cache=cache)
    question = "How do I install zebrafish?"
    try:
        first = pipeline.ask(question)
        counting.take()
        again = pipeline.ask(question)
        assert "cache" in again.timings_ms and again.index_version == first.index_version
        # The hit asked Milvus only where the alias points: no search.
        assert set(counting.take()) <= {"list_aliases", "describe_alias"}

        (docs / "install.md").write_text("# Install\n\nRun pip install otterfish.\n", "utf-8")
        indexer.index(docs)
        fresh = pipeline.ask(question)
        assert "cache" not in fresh.timings_ms
        assert fresh.index_version != first.index_version
        assert "otterfish" in fresh.text and "zebrafish" not in fresh.text
    finally:
        builder.close()
        reader.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingReads:
    """The store's own readings of the alias and the index, counted."""

    def __init__(self, store: MilvusStore) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()

    def version(self) -> str | None:
        self.calls["version"] += 1
        info = self._store.index_info()
        return info.version if info is not None else None

    def info(self) -> IndexInfo | None:
        self.calls["info"] += 1
        return self._store.index_info()

    def take(self) -> Counter[str]:
        calls, self.calls = self.calls, Counter()
        return calls
