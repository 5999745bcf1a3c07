"""Query-embedding and answer caches against real Redis, including outages and recovery."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import redis

from rag_core.cache import (
    AnswerCache,
    QueryEmbeddingCache,
    answer_from_dict,
    answer_to_dict,
    normalise_question,
)
from rag_core.errors import ConfigError, InputError
from rag_core.types import Answer, AnswerKind, Chunk, Citation, ScoredChunk
from tests.fixtures.redis_db import RedisServerProcess

MODEL = "Qwen/Qwen3-Embedding-0.6B"
INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
SETTINGS_KEY = "Qwen/Qwen3-Embedding-0.6B|1024|Qwen/Qwen3-Reranker-0.6B|gpt-4o-mini|hybrid|40|5"


def unit_vector(dim: int, seed: int = 0) -> np.ndarray:
    row = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return row / np.linalg.norm(row)


def sample_answer() -> Answer:
    chunk = Chunk(
        doc_path="guides/deploy.md",
        title="Deploying",
        heading_path=("Deploying", "With Docker"),
        anchor="with-docker",
        url="https://docs.example/guides/deploy#with-docker",
        chunk_index=3,
        text="Run `docker compose up -d` from the deploy folder.",
    )
    return Answer(
        question="How do I deploy with Docker?",
        text="Run `docker compose up -d` [1].",
        kind=AnswerKind.GENERATED,
        citations=[Citation(1, "Deploying", chunk.url, chunk.doc_path, chunk.heading)],
        passages=[ScoredChunk(chunk, 0.031, 0.97), ScoredChunk(chunk, 0.02, None)],
        standalone_question="How do I deploy ragbot with Docker?",
        timings_ms={"embed": 12.5, "search": 3.0},
        index_version="v3",
    )


def warning_count(caplog: pytest.LogCaptureFixture) -> int:
    return sum(
        1 for r in caplog.records if r.name == "rag_core.cache" and r.levelno == logging.WARNING
    )


# -- query embeddings -----------------------------------------------------------------


def test_embedding_miss_then_hit(redis_client: redis.Redis, redis_prefix: str) -> None:
    cache = QueryEmbeddingCache(redis_client, prefix=redis_prefix)
    vector = unit_vector(64)
    assert cache.get(MODEL, 64, INSTRUCTION, "how do I deploy?") is None
    cache.put(MODEL, 64, INSTRUCTION, "how do I deploy?", vector)
    hit = cache.get(MODEL, 64, INSTRUCTION, "how do I deploy?")
    assert hit is not None
    assert hit.dtype == np.float32 and hit.shape == (64,)
    np.testing.assert_array_equal(hit, vector)
    hit[0] = 5.0  # a caller may modify what it gets


def test_embedding_key_changes_with_model_dim_instruction_and_text(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    cache = QueryEmbeddingCache(redis_client, prefix=redis_prefix)
    cache.put(MODEL, 32, INSTRUCTION, "q", unit_vector(32))
    assert cache.get("other/model", 32, INSTRUCTION, "q") is None
    assert cache.get(MODEL, 16, INSTRUCTION, "q") is None
    assert cache.get(MODEL, 32, "Given a question, find the code", "q") is None
    assert cache.get(MODEL, 32, INSTRUCTION, "q ") is None
    assert cache.get(MODEL, 32, INSTRUCTION, "q") is not None
    keys = {
        cache.key(MODEL, 32, INSTRUCTION, "q"),
        cache.key(MODEL, 16, INSTRUCTION, "q"),
        cache.key("other/model", 32, INSTRUCTION, "q"),
        cache.key(MODEL, 32, "other instruction", "q"),
    }
    assert len(keys) == 4 and all(k.startswith(f"{redis_prefix}qemb:") for k in keys)


def test_embeddings_are_stored_as_float32_with_the_ttl(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    cache = QueryEmbeddingCache(redis_client, prefix=redis_prefix, ttl_s=600)
    cache.put(MODEL, 8, INSTRUCTION, "q", np.arange(8, dtype=np.float64) / 10)
    key = cache.key(MODEL, 8, INSTRUCTION, "q")
    assert len(redis_client.get(key)) == 8 * 4
    assert 590 < redis_client.ttl(key) <= 600
    hit = cache.get(MODEL, 8, INSTRUCTION, "q")
    assert hit is not None
    np.testing.assert_allclose(hit, np.arange(8) / 10, rtol=1e-6)


def test_embedding_of_the_wrong_size_is_refused(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    cache = QueryEmbeddingCache(redis_client, prefix=redis_prefix)
    with pytest.raises(InputError, match="64-dimensional"):
        cache.put(MODEL, 64, INSTRUCTION, "q", unit_vector(32))
    redis_client.set(cache.key(MODEL, 64, INSTRUCTION, "q"), b"\x00" * 12)  # truncated
    assert cache.get(MODEL, 64, INSTRUCTION, "q") is None


def test_embedding_cache_needs_byte_replies(redis_url: str) -> None:
    with pytest.raises(ConfigError, match="decode_responses"):
        QueryEmbeddingCache(redis.Redis.from_url(redis_url, decode_responses=True))


# -- answers --------------------------------------------------------------------------


def test_answer_dict_round_trip_is_json_ready() -> None:
    answer = sample_answer()
    data = json.loads(json.dumps(answer_to_dict(answer)))
    assert data["kind"] == "generated"
    assert data["passages"][0]["chunk"]["heading_path"] == ["Deploying", "With Docker"]
    assert answer_from_dict(data) == answer


def test_answer_miss_then_hit_marked_cached(redis_client: redis.Redis, redis_prefix: str) -> None:
    cache = AnswerCache(redis_client, prefix=redis_prefix, ttl_s=300)
    answer = sample_answer()
    assert cache.get("v3", answer.question, settings_key=SETTINGS_KEY) is None
    cache.put("v3", answer.question, answer, settings_key=SETTINGS_KEY)
    hit = cache.get("v3", answer.question, settings_key=SETTINGS_KEY)
    assert hit is not None and hit.cached
    assert not answer.cached, "the caller's answer is left alone"
    hit.cached = False
    assert hit == answer
    key = cache.key("v3", answer.question, settings_key=SETTINGS_KEY)
    assert 290 < redis_client.ttl(key) <= 300


def test_answer_key_normalises_the_question(redis_client: redis.Redis, redis_prefix: str) -> None:
    cache = AnswerCache(redis_client, prefix=redis_prefix)
    cache.put("v3", "How do I deploy with Docker?", sample_answer(), settings_key=SETTINGS_KEY)
    hit = cache.get("v3", "  how DO i   deploy\twith docker? ", settings_key=SETTINGS_KEY)
    assert hit is not None and hit.cached
    assert normalise_question("  How\n do  I ß? ") == "how do i ss?"
    assert cache.get("v3", "How do I deploy with Podman?", settings_key=SETTINGS_KEY) is None


def test_a_new_index_version_or_other_settings_miss(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    cache = AnswerCache(redis_client, prefix=redis_prefix)
    answer = sample_answer()
    cache.put("v3", answer.question, answer, settings_key=SETTINGS_KEY)
    assert cache.get("v4", answer.question, settings_key=SETTINGS_KEY) is None
    assert cache.get("v3", answer.question, settings_key=SETTINGS_KEY + "|top_n=7") is None
    assert cache.get("v3", answer.question, settings_key=SETTINGS_KEY) is not None


def test_answers_without_an_index_version_are_not_cached(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    cache = AnswerCache(redis_client, prefix=redis_prefix)
    cache.put("", "q", sample_answer(), settings_key=SETTINGS_KEY)
    assert cache.get("", "q", settings_key=SETTINGS_KEY) is None
    assert not list(redis_client.scan_iter(match=f"{redis_prefix}*"))


def test_an_unreadable_cached_answer_is_a_miss(
    redis_client: redis.Redis, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = AnswerCache(redis_client, prefix=redis_prefix)
    redis_client.set(cache.key("v3", "q", settings_key=SETTINGS_KEY), '{"text": "no kind"}')
    with caplog.at_level(logging.WARNING, logger="rag_core.cache"):
        assert cache.get("v3", "q", settings_key=SETTINGS_KEY) is None
    assert warning_count(caplog) == 1


# -- outages --------------------------------------------------------------------------


def test_redis_down_is_a_miss_with_one_warning(
    unreachable_redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(unreachable_redis_url)
    embeddings = QueryEmbeddingCache(client)
    answers = AnswerCache(client)
    with caplog.at_level(logging.WARNING, logger="rag_core.cache"):
        for _ in range(3):
            assert embeddings.get(MODEL, 8, INSTRUCTION, "q") is None
            embeddings.put(MODEL, 8, INSTRUCTION, "q", unit_vector(8))
            assert answers.get("v1", "q", settings_key="s") is None
            answers.put("v1", "q", sample_answer(), settings_key="s")
    assert warning_count(caplog) == 2, "one per cache, not one per call"


def test_caches_recover_when_redis_returns(
    redis_server: RedisServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    cache = QueryEmbeddingCache(client)
    vector = unit_vector(16)
    try:
        cache.put(MODEL, 16, INSTRUCTION, "q", vector)
        assert cache.get(MODEL, 16, INSTRUCTION, "q") is not None
        redis_server.stop()
        with caplog.at_level(logging.INFO, logger="rag_core.cache"):
            assert cache.get(MODEL, 16, INSTRUCTION, "q") is None
            cache.put(MODEL, 16, INSTRUCTION, "q", vector)
            redis_server.start()  # empty again: no persistence
            assert cache.get(MODEL, 16, INSTRUCTION, "q") is None
            cache.put(MODEL, 16, INSTRUCTION, "q", vector)
            hit = cache.get(MODEL, 16, INSTRUCTION, "q")
        assert hit is not None
        np.testing.assert_array_equal(hit, vector)
        assert warning_count(caplog) == 1
        assert any("reachable again" in r.getMessage() for r in caplog.records)
    finally:
        client.close()
