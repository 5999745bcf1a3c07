"""Token-budget batches: the plan, both embedders under it, and the indexer's large slices."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from rag_core.embedding import Qwen3Embedder, SentenceTransformerEmbedder
from rag_core.errors import ConfigError
from rag_core.ingest.chunking import MarkdownChunker
from rag_core.ingest.index_run import IndexProgress
from rag_core.ingest.indexer import Indexer
from rag_core.ingest.loaders import load_documents
from rag_core.store import MilvusStore
from rag_core.token_batches import BatchPlan, token_bounded_batches
from rag_core.types import Embedder

WORDS = [
    "partition",
    "index",
    "vector",
    "search",
    "collection",
    "node",
    "segment",
    "query",
    "replica",
    "shard",
]


def texts_of_mixed_lengths(count: int, seed: int = 0) -> list[str]:
    """Sentences of 1 to 60 words, long and short interleaved as a corpus has them."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(1, 60))) for _ in range(count)]


def check_plan(plan: BatchPlan, budget: int, max_rows: int | None = None) -> None:
    """Every index once; each batch longest first and within the budget (or alone)."""
    flat = [i for batch in plan.batches for i in batch]
    assert sorted(flat) == list(range(len(plan.lengths)))
    for batch in plan.batches:
        widths = [plan.lengths[i] for i in batch]
        assert widths == sorted(widths, reverse=True)
        assert len(batch) == 1 or widths[0] * len(batch) <= budget
        assert max_rows is None or len(batch) <= max_rows


def test_batches_respect_the_budget_and_the_row_cap():
    rng = random.Random(1)
    lengths = [rng.randint(1, 300) for _ in range(500)]
    for budget, max_rows in [(1000, None), (4096, 8), (300, None), (50, None)]:
        plan = BatchPlan.by_tokens(lengths, budget, max_rows=max_rows)
        check_plan(plan, budget, max_rows)
    assert list(token_bounded_batches([5, 9, 9, 1], 18)) == [[1, 2], [0, 3]]  # ties: input order
    assert list(token_bounded_batches([500, 10], 100)) == [[0], [1]]  # oversize runs alone
    assert list(token_bounded_batches([3, 3, 3], 100, max_rows=2)) == [[0, 1], [2]]
    assert list(token_bounded_batches([], 100)) == []


def test_sorting_the_whole_call_pads_little():
    rng = random.Random(2)
    lengths = [rng.randint(10, 256) for _ in range(2000)]
    whole = BatchPlan.by_tokens(lengths, 8192)
    assert whole.real_tokens == sum(lengths)
    assert whole.padded_tokens / whole.real_tokens < 1.1
    groups = [
        BatchPlan.by_tokens(lengths[start : start + 32], 8192) for start in range(0, 2000, 32)
    ]
    assert sum(p.padded_tokens for p in groups) / whole.real_tokens > 1.3


def test_qwen3_batches_match_one_at_a_time(tiny_embedding_path, tiny_embedder):
    texts = texts_of_mixed_lengths(40)
    small = Qwen3Embedder(str(tiny_embedding_path), device="cpu", dtype="float32", batch_tokens=200)
    plan = small.plan_batches(texts)
    check_plan(plan, 200, 256)
    assert len(plan.batches) > 5
    assert plan.lengths == [len(row) for row in small._tokenize(texts)]
    seen: list[int] = []
    got = small.embed_documents(texts, progress=seen.append)
    assert seen == [len(batch) for batch in plan.batches]  # one report per forward pass
    one_by_one = np.vstack([tiny_embedder.embed_documents([text]) for text in texts])
    np.testing.assert_allclose(got, one_by_one, atol=1e-5)
    np.testing.assert_allclose(
        small.embed_queries(texts[:7]), tiny_embedder.embed_queries(texts[:7]), atol=1e-5
    )


def test_qwen3_row_cap_and_budget_are_validated(tiny_embedding_path):
    capped = Qwen3Embedder(
        str(tiny_embedding_path), device="cpu", dtype="float32", batch_size=3, batch_tokens=10**6
    )
    assert [len(b) for b in capped.plan_batches(["a"] * 7).batches] == [3, 3, 1]
    with pytest.raises(ConfigError, match="batch_tokens"):
        Qwen3Embedder(str(tiny_embedding_path), device="cpu", dtype="float32", batch_tokens=0)


@pytest.fixture(scope="module")
def minilm(minilm_path: Path) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(
        str(minilm_path), device="cpu", dtype="float32", batch_tokens=256
    )


def test_minilm_lengths_are_the_padded_widths_sentence_transformers_uses(minilm):
    texts = [*texts_of_mixed_lengths(12, seed=3), "", "x " * 400]  # the last is truncated
    model: SentenceTransformer = minilm._model
    widths = [int(model.preprocess([text])["attention_mask"].sum()) for text in texts]
    assert minilm.token_lengths(texts) == widths
    assert widths[-1] == minilm.max_tokens
    batch = model.preprocess(texts[:5])["input_ids"]
    assert batch.shape[1] == max(widths[:5])


def test_minilm_batches_match_one_at_a_time(minilm, minilm_path):
    texts = texts_of_mixed_lengths(30, seed=4)
    plan = minilm.plan_batches(texts)
    check_plan(plan, 256, 256)
    assert len(plan.batches) > 3
    seen: list[int] = []
    got = minilm.embed_documents(texts, progress=seen.append)
    assert seen == [len(batch) for batch in plan.batches]
    reference = SentenceTransformer(str(minilm_path), device="cpu")
    expected = np.vstack([reference.encode([t], normalize_embeddings=True) for t in texts])
    np.testing.assert_allclose(got, expected, atol=1e-5)


SECTIONS = [
    "Partitions split a collection so that a search can skip data it does not need.",
    "Add query nodes to scale out search; the balancer spreads the load evenly. " * 4,
    "Replicas.",
    "Install the server with pip and start it with the command line tool; open port 19530.",
]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """Twelve files of one to four sections; the two ``copy`` files are identical."""
    root = tmp_path / "docs"
    root.mkdir()
    for number in range(10):
        body = "\n\n".join(
            f"## Part {k}\n\n{SECTIONS[(number + k) % 4]} Note {number}."
            for k in range(1 + number % 4)
        )
        (root / f"page{number}.md").write_text(f"# Page {number}\n\n{body}\n", encoding="utf-8")
    for name in ("copy_a.md", "copy_b.md"):
        (root / name).write_text("# Same\n\nThe very same paragraph.\n", encoding="utf-8")
    return root


@pytest.fixture
def store(milvus_uri: str) -> Iterator[MilvusStore]:
    store = MilvusStore.connect(milvus_uri, collection="batches_test")
    yield store
    store.close()


class RecordingEmbedder:
    """A real embedder that records what each ``embed_documents`` call was given."""

    def __init__(self, inner: Qwen3Embedder) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def embed_documents(self, texts, *, progress=None):
        self.calls.append(list(texts))
        return self.inner.embed_documents(texts, progress=progress)


def test_indexer_inserts_every_chunk_once_with_its_own_vector(
    docs: Path, store: MilvusStore, tiny_embedding_path: Path
):
    inner = Qwen3Embedder(str(tiny_embedding_path), device="cpu", dtype="float32", batch_tokens=64)
    embedder = RecordingEmbedder(inner)
    chunker = MarkdownChunker(inner.count_tokens, max_tokens=96, overlap_tokens=8)
    chunks = [c for d in load_documents(docs).documents for c in chunker.chunk(d)]
    distinct = list(dict.fromkeys(c.embed_text for c in chunks))
    assert len(distinct) == len(chunks) - 1  # the copies share one text
    events: list[IndexProgress] = []
    indexer = Indexer(store, embedder, chunker, embed_slice=8)  # type: ignore[arg-type]

    summary = indexer.index(docs, progress=events.append)

    assert summary.chunks_new == len(chunks)
    assert [len(call) for call in embedder.calls] == [
        min(8, len(distinct) - start) for start in range(0, len(distinct), 8)
    ]
    assert sorted(t for call in embedder.calls for t in call) == sorted(distinct)
    info = store.index_info()
    assert info is not None and info.chunk_count == len(chunks)
    assert sorted(store.stored_hashes(info.version)) == sorted(c.id for c in chunks)
    check_own_vectors(store, inner, chunks)
    done = [e.done for e in events if e.stage == "embedding"]
    assert done == sorted(done) and done[0] == 0 and done[-1] == len(chunks)
    assert len(done) > len(embedder.calls) + 1  # reported within slices, per forward pass
    assert all(e.total == len(chunks) for e in events if e.stage == "embedding")


def check_own_vectors(store: MilvusStore, embedder: Embedder, chunks: list) -> None:
    """Each chunk's stored vector is its text's: searching with it finds the chunk at 1.0."""
    vectors = embedder.embed_documents([c.embed_text for c in chunks])
    for chunk, vector in zip(chunks, vectors, strict=True):
        hits = store.search(query_vector=vector, query_text="", mode="dense", limit=len(chunks))
        scores = {hit.chunk.id: hit.score for hit in hits}
        assert scores[chunk.id] == pytest.approx(1.0, abs=1e-4)
