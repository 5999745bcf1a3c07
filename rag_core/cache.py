"""Redis caches for query embeddings, question translations and whole answers.

The embedding and answer caches are optional: callers hold ``QueryEmbeddingCache | None``
and ``AnswerCache | None`` and skip the cache on ``None``, so there is no no-op cache
class. :class:`TranslationCache` also works without Redis, in memory. All degrade to a miss
(``get``) or a no-op (``put``) while Redis cannot be reached, logging one warning per
outage; redis-py reconnects by itself when Redis returns.

Keys (under ``prefix``):

- ``qemb:{model}:{dim}:{sha256(instruction)[:16]}:{sha256(text)}`` -> float32 bytes
- ``answer:{index_version}:{sha256(settings_key)[:16]}:{sha256(normalised question)}``
  -> the :class:`~rag_core.types.Answer` as JSON. A re-index changes the index version,
  so stale answers are simply never read again and expire with their TTL.
- ``translate:{sha256(model)[:16]}:{sha256(language)[:16]}:{sha256(text)}`` -> the
  question's translation (UTF-8), see :class:`TranslationCache`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import asdict, fields
from typing import Any, TypeVar

import numpy as np
import redis

from rag_core.errors import ConfigError, InputError
from rag_core.redis_outage import RedisOutageLog
from rag_core.types import Answer, AnswerKind, Chunk, Citation, ScoredChunk

log = logging.getLogger(__name__)

EMBED_KEY = "qemb:"
ANSWER_KEY = "answer:"
TRANSLATION_KEY = "translate:"
DEFAULT_TRANSLATION_TTL_S = 7 * 86_400
DEFAULT_MEMORY_TRANSLATIONS = 1024
DEFAULT_EMBED_TTL_S = 7 * 86_400
DEFAULT_ANSWER_TTL_S = 86_400

T = TypeVar("T")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalise_question(question: str) -> str:
    """Whitespace collapsed and case folded: "How  do I X?" and "how do i x?" share a key."""
    return " ".join(question.split()).casefold()


def _check_ttl(ttl_s: int) -> None:
    if ttl_s < 1:
        raise ConfigError(f"A cache TTL must be at least 1 second, got {ttl_s}.")


class QueryEmbeddingCache:
    """Query vectors by model, output size, instruction and text, kept ``ttl_s`` seconds.

    Vectors are stored as little-endian float32 bytes, so the client must return bytes
    (``decode_responses=False``, redis-py's default). ``hits`` and ``misses`` count
    lookups since start-up (plain ints the bot exports as metrics); worker threads share
    one cache, so they are counted under a lock.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        prefix: str = "ragbot:",
        ttl_s: int = DEFAULT_EMBED_TTL_S,
    ) -> None:
        _check_ttl(ttl_s)
        if redis_client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ConfigError("The embedding cache needs a Redis client with decode_responses off.")
        self._redis = redis_client
        self._prefix = f"{prefix}{EMBED_KEY}"
        self.ttl_s = ttl_s
        self._outage = RedisOutageLog(log, "skipping the query embedding cache")
        self._count_lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def key(self, model_id: str, dim: int, instruction: str, text: str) -> str:
        return f"{self._prefix}{model_id}:{dim}:{_sha256(instruction)[:16]}:{_sha256(text)}"

    def get(self, model_id: str, dim: int, instruction: str, text: str) -> np.ndarray | None:
        """The cached float32 vector of shape ``(dim,)``, or ``None`` on a miss."""
        key = self.key(model_id, dim, instruction, text)
        raw = self._outage.run(lambda: self._redis.get(key), None)
        if not isinstance(raw, bytes) or len(raw) != dim * 4:
            with self._count_lock:
                self.misses += 1
            return None
        with self._count_lock:
            self.hits += 1
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)

    def put(self, model_id: str, dim: int, instruction: str, text: str, vector: np.ndarray) -> None:
        """Store ``vector`` (any float dtype, ``dim`` values) for ``ttl_s`` seconds."""
        row = np.asarray(vector, dtype="<f4").reshape(-1)
        if row.size != dim:
            raise InputError(f"A {dim}-dimensional cache entry cannot hold {row.size} values.")
        key = self.key(model_id, dim, instruction, text)
        self._outage.run(lambda: self._redis.set(key, row.tobytes(), ex=self.ttl_s), None)


class AnswerCache:
    """Whole answers by index version, settings and normalised question.

    Answers with an empty ``index_version`` are neither stored nor looked up: without a
    version a re-index could not invalidate them.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        prefix: str = "ragbot:",
        ttl_s: int = DEFAULT_ANSWER_TTL_S,
    ) -> None:
        _check_ttl(ttl_s)
        self._redis = redis_client
        self._prefix = f"{prefix}{ANSWER_KEY}"
        self.ttl_s = ttl_s
        self._outage = RedisOutageLog(log, "skipping the answer cache")

    def key(self, index_version: str, question: str, *, settings_key: str) -> str:
        digest = _sha256(normalise_question(question))
        return f"{self._prefix}{index_version}:{_sha256(settings_key)[:16]}:{digest}"

    def get(self, index_version: str, question: str, *, settings_key: str) -> Answer | None:
        """The stored answer with ``cached=True``, or ``None`` on a miss."""
        if not index_version:
            return None
        key = self.key(index_version, question, settings_key=settings_key)
        raw = self._outage.run(lambda: self._redis.get(key), None)
        if raw is None:
            return None
        try:
            answer = answer_from_dict(json.loads(raw))
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring unreadable cached answer %s: %s", key, exc)
            return None
        answer.cached = True
        return answer

    def put(self, index_version: str, question: str, answer: Answer, *, settings_key: str) -> None:
        """Store ``answer`` for ``ttl_s`` seconds (side effect: one Redis SET)."""
        if not index_version:
            return
        key = self.key(index_version, question, settings_key=settings_key)
        payload = json.dumps(answer_to_dict(answer), ensure_ascii=False)
        self._outage.run(lambda: self._redis.set(key, payload, ex=self.ttl_s), None)


class TranslationCache:
    """A question's translation for retrieval, by chat model, target language and text.

    The ``memory_entries`` most recently used stay in this process, so a question
    searched several times (an evaluation, a retry) costs one model call even without
    Redis; with ``redis_client`` they are also kept ``ttl_s`` seconds in Redis, shared by
    every worker. Redis outages degrade to the in-process copy. Thread-safe.
    """

    def __init__(
        self,
        redis_client: redis.Redis | None = None,
        *,
        prefix: str = "ragbot:",
        ttl_s: int = DEFAULT_TRANSLATION_TTL_S,
        memory_entries: int = DEFAULT_MEMORY_TRANSLATIONS,
    ) -> None:
        _check_ttl(ttl_s)
        if memory_entries < 0:
            raise ConfigError(f"memory_entries must be 0 or more, got {memory_entries}.")
        self._redis = redis_client
        self._prefix = f"{prefix}{TRANSLATION_KEY}"
        self.ttl_s = ttl_s
        self._outage = RedisOutageLog(log, "skipping the translation cache in Redis")
        self._memory: OrderedDict[str, str] = OrderedDict()
        self._memory_entries = memory_entries
        self._lock = threading.Lock()

    def key(self, model: str, language: str, text: str) -> str:
        return f"{self._prefix}{_sha256(model)[:16]}:{_sha256(language)[:16]}:{_sha256(text)}"

    def get(self, model: str, language: str, text: str) -> str | None:
        """The stored translation of ``text``, or ``None`` on a miss."""
        key = self.key(model, language, text)
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        if self._redis is None:
            return None
        redis_client = self._redis
        raw = self._outage.run(lambda: redis_client.get(key), None)
        if raw is None:
            return None
        found = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        self._remember(key, found)
        return found

    def put(self, model: str, language: str, text: str, translation: str) -> None:
        """Keep ``translation`` of ``text`` (side effect: one Redis SET when configured)."""
        key = self.key(model, language, text)
        self._remember(key, translation)
        if self._redis is not None:
            redis_client = self._redis
            self._outage.run(lambda: redis_client.set(key, translation, ex=self.ttl_s), None)

    def _remember(self, key: str, translation: str) -> None:
        with self._lock:
            self._memory[key] = translation
            self._memory.move_to_end(key)
            while len(self._memory) > self._memory_entries:
                self._memory.popitem(last=False)


def answer_to_dict(answer: Answer) -> dict[str, Any]:
    """A JSON-ready dict of the whole answer: citations, passages with their chunks, timings."""
    return {
        "question": answer.question,
        "text": answer.text,
        "kind": answer.kind.value,
        "citations": [asdict(citation) for citation in answer.citations],
        "passages": [
            {
                "chunk": {**asdict(p.chunk), "heading_path": list(p.chunk.heading_path)},
                "score": p.score,
                "rerank_score": p.rerank_score,
                "docset": p.docset,
            }
            for p in answer.passages
        ],
        "standalone_question": answer.standalone_question,
        "timings_ms": dict(answer.timings_ms),
        "index_version": answer.index_version,
        "cached": answer.cached,
    }


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``data`` that are fields of ``cls`` (older/newer writers tolerated)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def answer_from_dict(data: dict[str, Any]) -> Answer:
    """Rebuild an :class:`Answer` from :func:`answer_to_dict` output.

    Raises ``KeyError``/``TypeError``/``ValueError`` for a dict of another shape.
    """
    passages = [
        ScoredChunk(
            chunk=Chunk(
                **{**_known(Chunk, p["chunk"]), "heading_path": tuple(p["chunk"]["heading_path"])}
            ),
            score=float(p["score"]),
            rerank_score=None if p.get("rerank_score") is None else float(p["rerank_score"]),
            docset=str(p.get("docset", "")),
        )
        for p in data.get("passages", [])
    ]
    return Answer(
        question=data["question"],
        text=data["text"],
        kind=AnswerKind(data["kind"]),
        citations=[Citation(**_known(Citation, c)) for c in data.get("citations", [])],
        passages=passages,
        standalone_question=data.get("standalone_question", ""),
        timings_ms={k: float(v) for k, v in data.get("timings_ms", {}).items()},
        index_version=data.get("index_version", ""),
        cached=bool(data.get("cached", False)),
    )
