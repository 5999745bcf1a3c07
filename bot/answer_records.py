"""What each answer was: kept so a vote, a "Share in channel" click or the home tab can
refer back to the question, the answer, its sources and the index it came from.

In Redis, ``{prefix}answer:{job_id}`` holds one answer as JSON for ``ttl_s`` seconds;
without Redis (single-process mode) the last ``memory_limit`` answers stay in this
process. A Redis outage drops the record (logged once per outage): it is never worth
failing an answer for.

Only the standard library and redis are imported: the app process stays light.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

import redis

from rag_core.errors import ConfigError
from rag_core.redis_outage import RedisOutageLog
from rag_core.types import Answer, Citation

log = logging.getLogger(__name__)

RECORD_KEY = "answer:"  # under the prefix: one JSON string per job id
DEFAULT_TTL_S = 90 * 86_400
MEMORY_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One cited source as the answer showed it."""

    number: int
    title: str
    url: str
    path: str
    heading: str = ""
    docset: str = ""

    @classmethod
    def of(cls, citation: Citation) -> SourceRecord:
        return cls(
            citation.number,
            citation.title,
            citation.url,
            citation.path,
            citation.heading,
            citation.docset,
        )

    def citation(self) -> Citation:
        return Citation(self.number, self.title, self.url, self.path, self.heading, self.docset)


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """One answer: ``job_id`` is the id its feedback buttons carry; ``at`` is Unix time;
    ``kind`` is :class:`~rag_core.types.AnswerKind`'s value; ``private`` when only the
    asker saw it (``/ask``, the message shortcut)."""

    job_id: str
    channel: str
    thread_ts: str
    user: str
    question: str
    text: str
    kind: str
    sources: tuple[SourceRecord, ...] = ()
    index_version: str = ""
    private: bool = False
    at: float = field(default_factory=time.time)

    @classmethod
    def of(
        cls,
        answer: Answer,
        *,
        job_id: str,
        channel: str,
        thread_ts: str,
        user: str,
        private: bool = False,
    ) -> AnswerRecord:
        return cls(
            job_id=job_id,
            channel=channel,
            thread_ts=thread_ts,
            user=user,
            question=answer.question,
            text=answer.text,
            kind=answer.kind.value,
            sources=tuple(SourceRecord.of(c) for c in answer.citations),
            index_version=answer.index_version,
            private=private,
        )

    @property
    def citations(self) -> list[Citation]:
        return [source.citation() for source in self.sources]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, payload: str | bytes) -> AnswerRecord:
        """Parse :meth:`to_json` output; unknown keys are ignored. Raises ``ValueError``."""
        try:
            data: dict[str, Any] = json.loads(payload)
            known = {f.name for f in fields(cls)}
            values = {k: v for k, v in data.items() if k in known}
            values["sources"] = tuple(SourceRecord(**s) for s in values.get("sources", ()))
            return cls(**values)
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed answer record: {exc}") from exc


class RecordBackend(Protocol):
    """Where answer records live; :class:`AnswerRecords` validates and delegates."""

    def put(self, record: AnswerRecord) -> None: ...

    def get(self, job_id: str) -> AnswerRecord | None: ...


class MemoryRecords:
    """The last ``limit`` records, in this process."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._records: OrderedDict[str, AnswerRecord] = OrderedDict()

    def put(self, record: AnswerRecord) -> None:
        with self._lock:
            self._records[record.job_id] = record
            self._records.move_to_end(record.job_id)
            while len(self._records) > self._limit:
                self._records.popitem(last=False)

    def get(self, job_id: str) -> AnswerRecord | None:
        with self._lock:
            return self._records.get(job_id)


class RedisRecords:
    """One JSON string per record for ``ttl_s`` seconds; an outage drops writes and
    misses reads (logged once per outage)."""

    def __init__(self, client: redis.Redis, *, prefix: str, ttl_s: int) -> None:
        self._redis = client
        self._prefix = f"{prefix}{RECORD_KEY}"
        self._ttl_s = ttl_s
        self._outage = RedisOutageLog(log, "not keeping answer records")

    def put(self, record: AnswerRecord) -> None:
        key = self._prefix + record.job_id
        self._outage.run(lambda: self._redis.set(key, record.to_json(), ex=self._ttl_s), None)

    def get(self, job_id: str) -> AnswerRecord | None:
        key = self._prefix + job_id
        raw = self._outage.run(lambda: self._redis.get(key), None)
        if raw is None:
            return None
        try:
            return AnswerRecord.from_json(raw)
        except ValueError as error:
            log.warning("answer record %s unreadable: %s", job_id, error)
            return None


class AnswerRecords:
    """Answers by job id, in Redis when a client is given, else in this process."""

    def __init__(
        self,
        redis_client: redis.Redis | None,
        *,
        prefix: str = "ragbot:",
        ttl_s: int = DEFAULT_TTL_S,
        memory_limit: int = MEMORY_LIMIT,
    ) -> None:
        if ttl_s < 1 or memory_limit < 1:
            raise ConfigError("Answer records need ttl_s and memory_limit of at least 1.")
        self.ttl_s = ttl_s
        self._backend: RecordBackend = (
            MemoryRecords(memory_limit)
            if redis_client is None
            else RedisRecords(redis_client, prefix=prefix, ttl_s=ttl_s)
        )

    def put(self, record: AnswerRecord) -> None:
        """Keep ``record`` (replacing an earlier one of the same job)."""
        self._backend.put(record)

    def get(self, job_id: str) -> AnswerRecord | None:
        """The answer of ``job_id``; None when unknown, expired or Redis is down."""
        return self._backend.get(job_id) if job_id else None
