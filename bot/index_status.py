"""What is indexed, as the App Home tab shows it, without the app process touching Milvus.

Workers write a summary of a doc set when its re-index finishes (with who started it)
and at start-up (what they found served); the app reads them. In Redis they are the hash
``{prefix}index:docsets``, doc set name -> one JSON string, with no expiry; without Redis
they live in this process (single-process mode, where the worker shares the app's
services). A Redis outage makes :meth:`IndexStatusStore.statuses` raise
:class:`IndexStatusUnavailable`, so the home tab can say so instead of "nothing indexed".

Only the standard library and redis are imported: the app process stays light.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import redis

log = logging.getLogger(__name__)

STATUS_KEY = "index:docsets"  # under the prefix


class IndexStatusUnavailable(Exception):
    """The summary cannot be read now (Redis is down)."""


@dataclass(frozen=True, slots=True)
class IndexStatus:
    """The served index of doc set ``docset``. ``documents`` is None when unknown (found at
    start-up, built by ``ragbot index``); ``built_by`` is the Slack user who started the
    re-index, "" when it was not started from Slack; ``built_at`` is Unix time, 0 when
    unknown; ``commit`` and ``commit_at`` the git commit indexed, if any."""

    version: str
    chunks: int
    documents: int | None = None
    built_at: float = 0.0
    built_by: str = ""
    embed_model: str = ""
    recorded_at: float = 0.0
    docset: str = "docs"
    commit: str = ""
    commit_at: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, payload: str | bytes) -> IndexStatus:
        """Parse :meth:`to_json` output; unknown keys are ignored. Raises ``ValueError``."""
        try:
            data: dict[str, Any] = json.loads(payload)
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed index status: {exc}") from exc


class StatusRecords(Protocol):
    """Where the statuses live; :class:`IndexStatusStore` stamps and delegates."""

    def put(self, status: IndexStatus) -> None:
        """Record ``status`` as its doc set's latest; a backend error is logged."""
        ...

    def statuses(self) -> list[IndexStatus]:
        """The latest status of each doc set, by name. Raises
        :class:`IndexStatusUnavailable` when they cannot be read."""
        ...


class MemoryStatusRecords:
    """:class:`StatusRecords` of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, IndexStatus] = {}

    def put(self, status: IndexStatus) -> None:
        with self._lock:
            self._latest[status.docset] = status

    def statuses(self) -> list[IndexStatus]:
        with self._lock:
            return [self._latest[name] for name in sorted(self._latest)]


class RedisStatusRecords:
    """:class:`StatusRecords` in the hash ``{prefix}index:docsets``."""

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self._redis = client
        self._key = prefix + STATUS_KEY

    def put(self, status: IndexStatus) -> None:
        try:
            self._redis.hset(self._key, status.docset, status.to_json())
        except redis.RedisError as error:
            log.warning("could not record the index status: %s", error)

    def statuses(self) -> list[IndexStatus]:
        try:
            raw = self._redis.hgetall(self._key)
        except redis.RedisError as error:
            raise IndexStatusUnavailable(str(error)) from error
        found = []
        for name, payload in sorted(raw.items()):
            try:
                found.append(IndexStatus.from_json(payload))
            except ValueError as error:
                log.warning("index status of %r unreadable: %s", name, error)
        return found


class IndexStatusStore:
    """The last :class:`IndexStatus` of each doc set, in Redis when a client is given,
    else here."""

    def __init__(self, redis_client: redis.Redis | None, *, prefix: str = "ragbot:") -> None:
        self._records: StatusRecords = (
            MemoryStatusRecords()
            if redis_client is None
            else RedisStatusRecords(redis_client, prefix=prefix)
        )

    def put(self, status: IndexStatus) -> None:
        """Record ``status`` (stamped with ``recorded_at`` now); a Redis error is logged."""
        self._records.put(IndexStatus(**{**asdict(status), "recorded_at": time.time()}))

    def statuses(self) -> list[IndexStatus]:
        """The last status recorded for each doc set, by name; empty when none was.
        Raises :class:`IndexStatusUnavailable` while Redis is down."""
        return self._records.statuses()

    def record_served(self, status: IndexStatus) -> None:
        """Record the served index of ``status.docset`` (at worker start-up, or after a
        background refresh) unless the last record is of the same version already: it
        then keeps its documents count, build time and who built it."""
        try:
            known = {s.docset: s for s in self.statuses()}
        except IndexStatusUnavailable:
            return
        previous = known.get(status.docset)
        if previous is not None and previous.version == status.version:
            return
        self.put(status)
