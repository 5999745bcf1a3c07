"""RagPipeline end to end: tiny Qwen3 models, real Milvus Lite, the real openai client
against the loopback server, real Redis for the caches."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_core.cache import AnswerCache, QueryEmbeddingCache
from rag_core.docset_stores import DocSetStores
from rag_core.docsets import DocSet
from rag_core.errors import IndexMismatchError, IndexNotFoundError, InputError
from rag_core.generation import ChatGenerator, build_openai_client
from rag_core.ingest.chunking import MarkdownChunker
from rag_core.ingest.indexer import Indexer
from rag_core.pipeline import RagPipeline
from rag_core.settings import Settings
from rag_core.types import AnswerKind, Turn

DOCS = {
    "guide/install.md": "# Installing\n\n## With pip\n\nRun `pip install zebrafish` to install "
    "the zebrafish client.\n\n## From source\n\nClone the repository and run make.\n",
    "guide/connect.md": "# Connecting\n\nCall `connect(uri)` with the server address. The default "
    "port is 19530.\n\n## Timeouts\n\nConnections time out after ten seconds.\n",
    "faq.md": "# FAQ\n\n## Why is my query slow?\n\nBuild an index on the vector field first.\n",
}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    for path, text in DOCS.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    return root


def docset(name: str, collection: str) -> DocSet:
    return DocSet(name=name, kind="folder", source="", collection=collection)


@pytest.fixture
def stores(milvus_uri: str):
    stores = DocSetStores.connect(milvus_uri, [docset("docs", "pipeline_docs")])
    yield stores
    stores.close()


@pytest.fixture
def indexed(stores, tiny_embedder, docs):
    chunker = MarkdownChunker(tiny_embedder.count_tokens, max_tokens=128, overlap_tokens=16)
    Indexer(stores["docs"], tiny_embedder, chunker).index(docs)
    return stores


def make_pipeline(stores, embedder, *, reranker=None, llm_url: str = "", **overrides):
    settings = Settings(_env_file=None, llm_base_url=llm_url, candidates=10, top_n=3, **overrides)
    generator = None
    if llm_url:
        client = build_openai_client(api_key="", base_url=llm_url, timeout_s=5, max_retries=0)
        generator = ChatGenerator(client, model="test-model")
    return RagPipeline(
        settings, embedder=embedder, stores=stores, reranker=reranker, generator=generator
    )


def test_generated_answer_cites_retrieved_passages(
    indexed, tiny_embedder, tiny_reranker, openai_server
):
    pipeline = make_pipeline(
        indexed,
        tiny_embedder,
        reranker=tiny_reranker,
        llm_url=openai_server.base_url,
        min_rerank_score=0.0,
    )
    answer = pipeline.ask("  How do I install zebrafish?  ")

    assert answer.kind is AnswerKind.GENERATED
    assert answer.question == "How do I install zebrafish?"
    assert [c.number for c in answer.citations] == [1, 2]
    indexed_paths = set(DOCS)
    assert {c.path for c in answer.citations} <= indexed_paths
    assert {"embed", "search", "rerank", "generate", "total"} <= answer.timings_ms.keys()
    assert answer.index_version.startswith("pipeline_docs")
    prompt = openai_server.requests[-1].json["messages"][-1]["content"]
    assert "How do I install zebrafish?" in prompt
    assert all(p.rerank_score is not None for p in answer.passages)


def test_reranking_orders_passages_by_rerank_score(indexed, tiny_embedder, tiny_reranker):
    pipeline = make_pipeline(indexed, tiny_embedder, reranker=tiny_reranker)
    retrieval = pipeline.retrieve("connect timeout", top_n=5)
    scores = [p.rerank_score for p in retrieval.passages]
    assert retrieval.reranked and len(retrieval.candidates) >= len(retrieval.passages)
    assert scores == sorted(scores, reverse=True)
    expected = tiny_reranker.score(
        "connect timeout", [p.chunk.embed_text for p in retrieval.passages]
    )
    assert scores == pytest.approx(expected, abs=1e-6)


def test_low_rerank_score_says_not_covered_without_calling_the_llm(
    indexed, tiny_embedder, tiny_reranker, openai_server
):
    pipeline = make_pipeline(
        indexed,
        tiny_embedder,
        reranker=tiny_reranker,
        llm_url=openai_server.base_url,
        min_rerank_score=1.0,
    )
    answer = pipeline.ask("What is the airspeed of an unladen swallow?")
    assert answer.kind is AnswerKind.NOT_COVERED
    assert "don't seem to cover" in answer.text
    assert answer.citations, "the closest sources are still listed"
    assert openai_server.requests == []


def test_without_llm_the_answer_is_extractive_and_labelled(indexed, tiny_embedder):
    answer = make_pipeline(indexed, tiny_embedder).ask("default port")
    assert answer.kind is AnswerKind.EXTRACTIVE
    assert answer.text.startswith("No language model is configured")
    assert answer.citations and answer.citations[0].number == 1


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_each_search_mode_returns_candidates(indexed, tiny_embedder, mode):
    pipeline = make_pipeline(indexed, tiny_embedder)
    retrieval = pipeline.retrieve("zebrafish", mode=mode, top_n=3)
    assert retrieval.passages
    if mode == "bm25":
        assert "embed" not in retrieval.timings_ms
        assert retrieval.passages[0].chunk.doc_path == "guide/install.md"


@pytest.mark.parametrize("question", ["", "   \n\t", "x" * 40_000])
def test_bad_questions_are_refused_clearly(indexed, tiny_embedder, question):
    with pytest.raises(InputError) as error:
        make_pipeline(indexed, tiny_embedder).ask(question)
    assert "question" in str(error.value)


def test_follow_up_is_condensed_with_the_conversation(indexed, tiny_embedder, openai_server):
    openai_server.reply = lambda request: (
        "How do I configure the zebrafish connection timeout?"
        if "standalone" in str(request["messages"]).lower()
        else "Connections time out after ten seconds [1]."
    )
    pipeline = make_pipeline(indexed, tiny_embedder, llm_url=openai_server.base_url)
    history = [Turn("user", "How do I connect?"), Turn("assistant", "Call connect(uri) [1].")]
    answer = pipeline.ask("and the timeout?", history=history)

    assert answer.standalone_question == "How do I configure the zebrafish connection timeout?"
    condense_request, answer_request = (r.json for r in openai_server.requests)
    assert "How do I connect?" in str(condense_request["messages"])
    assert "Call connect(uri) [1]." in str(answer_request["messages"])
    assert answer.kind is AnswerKind.GENERATED


def test_collection_built_with_another_dimension_is_a_clear_error(indexed, tiny_embedding_path):
    from rag_core.embedding import Qwen3Embedder

    smaller = Qwen3Embedder(str(tiny_embedding_path), device="cpu", dtype="float32", dim=32)
    with pytest.raises(IndexMismatchError) as error:
        make_pipeline(indexed, smaller).ask("zebrafish")
    message = str(error.value)
    assert "64" in message and "32" in message and "--recreate" in message


def test_nothing_indexed_is_a_clear_error(stores, tiny_embedder):
    with pytest.raises(IndexNotFoundError, match="ragbot index"):
        make_pipeline(stores, tiny_embedder).ask("zebrafish")


def test_caches_serve_repeat_questions_until_the_index_changes(
    indexed, tiny_embedder, docs, openai_server, redis_client, redis_prefix
):
    pipeline = make_pipeline(indexed, tiny_embedder, llm_url=openai_server.base_url)
    pipeline.query_cache = QueryEmbeddingCache(redis_client, prefix=redis_prefix)
    pipeline.answer_cache = AnswerCache(redis_client, prefix=redis_prefix, ttl_s=60)

    first = pipeline.ask("How do I install zebrafish?")
    second = pipeline.ask("how do I   install zebrafish?")
    assert not first.cached and second.cached
    assert second.text == first.text and second.citations == first.citations
    assert len(openai_server.requests) == 1
    assert (
        pipeline.query_cache.get(
            f"{tiny_embedder.model_id}@{tiny_embedder.revision}",
            tiny_embedder.dim,
            tiny_embedder.instruction,
            "How do I install zebrafish?",
        )
        is not None
    )

    (docs / "faq.md").write_text("# FAQ\n\nNew content about zebrafish.\n", encoding="utf-8")
    chunker = MarkdownChunker(tiny_embedder.count_tokens, max_tokens=128, overlap_tokens=16)
    Indexer(indexed["docs"], tiny_embedder, chunker).index(docs)
    third = pipeline.ask("How do I install zebrafish?")
    assert not third.cached and third.index_version != first.index_version
    assert len(openai_server.requests) == 2
