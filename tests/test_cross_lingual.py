"""Questions not in the docs' language: translated for retrieval (real openai client against
the loopback server, translations cached in memory and real Redis), or searched as they
are with BM25 reading their Latin terms; real Milvus Lite, the tiny Qwen3 embedder."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_core.cache import TranslationCache
from rag_core.docset_stores import DocSetStores
from rag_core.docsets import DocSet
from rag_core.eval_summary import miss_reason
from rag_core.evaluation import EvalQuestion, score_question
from rag_core.generation import ChatGenerator, build_openai_client
from rag_core.ingest.chunking import MarkdownChunker
from rag_core.ingest.indexer import Indexer
from rag_core.pipeline import RagPipeline
from rag_core.query_translation import clean_translation, translation_messages
from rag_core.settings import Settings
from rag_core.types import AnswerKind
from tests.fixtures.openai_server import is_translation

DOCS = {
    "partitions.md": "# Partitions\n\nCall `create_partition` on a MilvusClient to add a "
    "partition to a collection.\n",
    "storage.md": "# Storage\n\nMilvus keeps segments in MinIO or S3 buckets.\n",
    "index.md": "# Index\n\nAn IVF_FLAT index splits vectors into nlist clusters.\n",
}
QUESTION = "怎么用MilvusClient的create_partition创建分区？"
TRANSLATION = "How do I create a partition with create_partition of MilvusClient?"


@pytest.fixture
def stores(milvus_uri: str, tiny_embedder, tmp_path: Path):
    root = tmp_path / "docs"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text, encoding="utf-8")
    docset = DocSet(name="docs", kind="folder", source="", collection="lingual_docs")
    stores = DocSetStores.connect(milvus_uri, [docset])
    chunker = MarkdownChunker(tiny_embedder.count_tokens, max_tokens=128, overlap_tokens=16)
    Indexer(stores["docs"], tiny_embedder, chunker).index(root)
    yield stores
    stores.close()


def pipeline_for(stores, embedder, server=None, *, cache=None, **overrides) -> RagPipeline:
    settings = Settings(
        _env_file=None,
        llm_base_url=server.base_url if server else "",
        candidates=10,
        top_n=3,
        **overrides,
    )
    generator = None
    if server is not None:
        client = build_openai_client(
            api_key="", base_url=server.base_url, timeout_s=5, max_retries=0
        )
        generator = ChatGenerator(client, model="stub-chat")
    return RagPipeline(
        settings, embedder=embedder, stores=stores, generator=generator, translation_cache=cache
    )


def translation_requests(server) -> list:
    return [r for r in server.requests if is_translation(r.json)]


def test_a_foreign_question_is_searched_translated_and_answered_as_asked(
    stores, tiny_embedder, openai_server
):
    openai_server.translations[QUESTION] = TRANSLATION
    pipeline = pipeline_for(stores, tiny_embedder, openai_server)

    retrieval = pipeline.retrieve(QUESTION)
    query = retrieval.query
    assert query is not None and query.translated and query.script == "cjk"
    assert query.dense_text == TRANSLATION and query.bm25_text == TRANSLATION
    assert "translate" in retrieval.timings_ms
    (request,) = openai_server.requests
    assert "into English" in request.json["messages"][0]["content"]
    assert request.json["messages"][-1]["content"] == QUESTION
    assert request.json["temperature"] == 0.0

    answer = pipeline.ask(QUESTION)
    assert answer.kind is AnswerKind.GENERATED
    prompt = openai_server.requests[-1].json["messages"][-1]["content"]
    assert QUESTION in prompt and TRANSLATION not in prompt
    assert len(translation_requests(openai_server)) == 1  # the second time from the cache


def test_translations_are_shared_through_redis(
    stores, tiny_embedder, openai_server, redis_client, redis_prefix
):
    openai_server.translations[QUESTION] = TRANSLATION
    first = pipeline_for(
        stores,
        tiny_embedder,
        openai_server,
        cache=TranslationCache(redis_client, prefix=redis_prefix),
    )
    first.retrieve(QUESTION, mode="dense")
    assert len(translation_requests(openai_server)) == 1
    keys = list(redis_client.scan_iter(match=f"{redis_prefix}translate:*"))
    assert len(keys) == 1 and redis_client.get(keys[0]).decode() == TRANSLATION

    second = pipeline_for(
        stores,
        tiny_embedder,
        openai_server,
        cache=TranslationCache(redis_client, prefix=redis_prefix),
    )
    query = second.retrieve(QUESTION, mode="dense").query
    assert query is not None and query.dense_text == TRANSLATION
    assert len(translation_requests(openai_server)) == 1  # another worker: no new request


def test_questions_in_the_docs_language_are_not_translated(stores, tiny_embedder, openai_server):
    pipeline = pipeline_for(stores, tiny_embedder, openai_server)
    retrieval = pipeline.retrieve("How do I create a partition?")
    assert openai_server.requests == []
    assert retrieval.query is not None and not retrieval.query.translated
    off = pipeline_for(stores, tiny_embedder, openai_server, translate_questions=False)
    off.retrieve(QUESTION)
    assert openai_server.requests == []


def test_a_failed_translation_searches_the_question_as_it_is(
    stores, tiny_embedder, openai_server, caplog
):
    openai_server.fail(500, times=None)
    pipeline = pipeline_for(stores, tiny_embedder, openai_server, foreign_bm25_weight=0.5)
    retrieval = pipeline.retrieve(QUESTION)
    assert retrieval.query is not None and not retrieval.query.translated
    assert retrieval.query.fusion.bm25_weight == 0.5
    assert retrieval.candidates
    assert "untranslated" in caplog.text


def test_without_a_chat_model_bm25_reads_the_latin_terms_at_its_own_weight(stores, tiny_embedder):
    pipeline = pipeline_for(stores, tiny_embedder, foreign_bm25_weight=0.25, bm25_weight=0.8)
    query = pipeline.retrieve(QUESTION).query
    assert query is not None and not query.translated
    assert query.dense_text == QUESTION
    assert query.bm25_text == "MilvusClient create_partition"
    assert (query.fusion.dense_weight, query.fusion.bm25_weight) == (1.0, 0.25)
    english = pipeline.retrieve("How do I create a partition?").query
    assert english is not None and english.fusion.bm25_weight == 0.8


def test_an_eval_miss_says_how_a_foreign_question_was_searched(stores, tiny_embedder):
    pipeline = pipeline_for(stores, tiny_embedder)
    question = EvalQuestion(QUESTION, frozenset({"not-a-doc.md"}))
    scored = score_question(
        question, pipeline.retrieve(QUESTION), k=3, rerank=False, min_score=0.25
    )
    assert miss_reason(question, scored, 0.25) == (
        "not found; not translated; BM25 read only 'MilvusClient create_partition'"
    )


def test_by_default_a_multilingual_embedder_carries_an_untranslated_question(stores, tiny_embedder):
    assert tiny_embedder.multilingual  # a Qwen3 embedder
    pipeline = pipeline_for(stores, tiny_embedder, bm25_weight=0.4)
    query = pipeline.retrieve(QUESTION).query
    assert query is not None and not query.translated
    assert query.fusion.bm25_weight == pytest.approx(0.2)
    assert "|0.2|" in pipeline.cache_key  # answers cached under the weight in use


def test_a_cjk_question_finds_its_latin_terms_with_bm25(stores, tiny_embedder):
    pipeline = pipeline_for(stores, tiny_embedder)
    for question, path in [
        (QUESTION, "partitions.md"),
        ("MinIO的bucket在哪里配置？", "storage.md"),
        ("nlist应该设多少？", "index.md"),
    ]:
        found = pipeline.retrieve(question, mode="bm25").passages
        assert found and found[0].chunk.doc_path == path, question
    # As it is, the question is one token to the standard analyzer and matches nothing.
    store = stores["docs"]
    assert store.search(query_vector=None, query_text=QUESTION, mode="bm25", limit=3) == []


def test_a_cjk_question_without_latin_terms_has_no_bm25_hits(stores, tiny_embedder):
    pipeline = pipeline_for(stores, tiny_embedder)
    retrieval = pipeline.retrieve("怎么创建分区？", mode="bm25")
    assert retrieval.candidates == [] and retrieval.passages == []
    assert pipeline.retrieve("怎么创建分区？", mode="hybrid").candidates  # dense still answers


def test_translate_query_sends_a_short_prompt_and_cleans_the_reply(openai_server):
    openai_server.reply = lambda request: '<think>hmm</think>\nTranslation: "How do I X?"'
    client = build_openai_client(
        api_key="", base_url=openai_server.base_url, timeout_s=5, max_retries=0
    )
    generator = ChatGenerator(client, model="stub-chat")
    assert generator.translate_query("¿Cómo hago X?", "English") == "How do I X?"
    (request,) = openai_server.requests
    assert request.json["max_completion_tokens"] == 200
    assert translation_messages("¿Cómo hago X?", "English") == request.json["messages"]


@pytest.mark.parametrize(
    ("reply", "clean"),
    [
        ("How do I X?", "How do I X?"),
        ("“How do I X?”", "How do I X?"),
        ("Translated question: How do I\nX?", "How do I X?"),
        ("<think>\nreasoning\n</think>\n\n'How?'", "How?"),
        ("", ""),
    ],
)
def test_clean_translation(reply, clean):
    assert clean_translation(reply) == clean


def test_the_translation_cache_works_without_redis_and_through_an_outage(unreachable_redis_url):
    import redis

    memory = TranslationCache(memory_entries=2)
    memory.put("m", "English", "a", "A")
    memory.put("m", "English", "b", "B")
    assert memory.get("m", "English", "a") == "A"  # now the most recent
    memory.put("m", "English", "c", "C")
    assert memory.get("m", "English", "b") is None  # the least recent went
    assert memory.get("m", "English", "a") == "A"
    assert memory.get("other-model", "English", "a") is None
    assert memory.get("m", "French", "a") is None

    down = redis.Redis.from_url(unreachable_redis_url, socket_connect_timeout=0.2)
    cache = TranslationCache(down, prefix="t:")
    cache.put("m", "English", "q", "Q")  # Redis is down: kept in memory only
    assert cache.get("m", "English", "q") == "Q"
    assert cache.get("m", "English", "other") is None
