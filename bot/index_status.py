"""What is indexed, as the App Home tab shows it, without the app process touching Milvus.

Workers write a summary when a re-index finishes (with who started it) and at start-up
(what they found served); the app reads it. In Redis it is ``{prefix}index:last``, one
JSON string with no expiry; without Redis it lives in this process (single-process mode,
where the worker shares the app's services). A Redis outage makes :meth:`get` raise
:class:`IndexStatusUnavailable`, so the home tab can say so instead of "nothing indexed".

Only the standard library and redis are imported: the app process stays light.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

import redis

log = logging.getLogger(__name__)

STATUS_KEY = "index:last"  # under the prefix


class IndexStatusUnavailable(Exception):
    """The summary cannot be read now (Redis is down)."""


@dataclass(frozen=True, slots=True)
class IndexStatus:
    """The served index. ``documents`` is None when unknown (found at start-up, built by
    ``ragbot index``); ``built_by`` is the Slack user who started the re-index, "" when it
    was not started from Slack; ``built_at`` is Unix time, 0 when unknown."""

    version: str
    chunks: int
    documents: int | None = None
    built_at: float = 0.0
    built_by: str = ""
    embed_model: str = ""
    recorded_at: float = 0.0

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


class IndexStatusStore:
    """The last :class:`IndexStatus`, in Redis when a client is given, else here."""

    def __init__(self, redis_client: redis.Redis | None, *, prefix: str = "ragbot:") -> None:
        self._redis = redis_client
        self._key = prefix + STATUS_KEY
        self._lock = threading.Lock()
        self._memory: IndexStatus | None = None

    def put(self, status: IndexStatus) -> None:
        """Record ``status`` (stamped with ``recorded_at`` now); a Redis error is logged."""
        stamped = IndexStatus(**{**asdict(status), "recorded_at": time.time()})
        if self._redis is None:
            with self._lock:
                self._memory = stamped
            return
        try:
            self._redis.set(self._key, stamped.to_json())
        except redis.RedisError as error:
            log.warning("could not record the index status: %s", error)

    def get(self) -> IndexStatus | None:
        """The last status recorded; None when none was. Raises
        :class:`IndexStatusUnavailable` while Redis is down."""
        if self._redis is None:
            with self._lock:
                return self._memory
        try:
            raw = self._redis.get(self._key)
        except redis.RedisError as error:
            raise IndexStatusUnavailable(str(error)) from error
        if raw is None:
            return None
        try:
            return IndexStatus.from_json(raw)
        except ValueError as error:
            log.warning("index status unreadable: %s", error)
            return None

    def record_served(
        self, *, version: str, chunks: int, built_at: float, embed_model: str
    ) -> None:
        """At worker start-up: record the served index unless the last record is of the
        same version already (it then keeps its documents count and who built it)."""
        try:
            known = self.get()
        except IndexStatusUnavailable:
            return
        if known is not None and known.version == version:
            return
        self.put(
            IndexStatus(version=version, chunks=chunks, built_at=built_at, embed_model=embed_model)
        )
