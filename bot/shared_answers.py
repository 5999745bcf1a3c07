"""Which private answers were shared in their channel: each one at most once.

A "Share in channel" click first :meth:`~SharedAnswers.claim`s the answer's job id (in
Redis ``SET NX`` on ``{prefix}shared:{job_id}``, so two app replicas and two quick
clicks agree), posts, then :meth:`~SharedAnswers.record`s where the post landed, so a
later click can link to it. A failed post :meth:`~SharedAnswers.release`s the claim.

While Redis is unavailable a claim is granted (logged once per outage): a rare second
share beats refusing the asker. Only the standard library and redis are imported.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import redis

from bot.jobs import decode_text
from rag_core.errors import ConfigError
from rag_core.redis_outage import RedisOutageLog

log = logging.getLogger(__name__)

SHARED_KEY = "shared:"  # under the prefix: one string per shared job id
DEFAULT_TTL_S = 90 * 86_400  # as long as the answer records themselves
PENDING = "pending"  # claimed, not yet posted
MEMORY_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class SharedPost:
    """Where a shared answer was posted; ``ts`` is empty while the post is under way."""

    channel: str
    ts: str

    def link(self) -> str:
        """A link to the message (Slack redirects it to the workspace's own domain)."""
        return f"https://slack.com/archives/{self.channel}/p{self.ts.replace('.', '')}"


class SharedAnswers(Protocol):
    """Claims on sharing an answer, by job id."""

    def claim(self, job_id: str) -> SharedPost | None:
        """``None`` when the claim is granted (share it now); else the earlier share."""
        ...

    def record(self, job_id: str, post: SharedPost) -> None:
        """The claimed answer is posted at ``post``."""
        ...

    def release(self, job_id: str) -> None:
        """The post failed: let a later click try again."""
        ...


def _encode(post: SharedPost) -> str:
    return f"{post.channel} {post.ts}"


def _decode(value: str | None) -> SharedPost:
    channel, _, ts = (value or "").partition(" ")
    return SharedPost(channel, ts) if ts else SharedPost("", "")


class RedisSharedAnswers:
    """Claims in Redis, shared by every app process; kept ``ttl_s`` seconds."""

    def __init__(self, client: redis.Redis, *, prefix: str, ttl_s: int = DEFAULT_TTL_S) -> None:
        if ttl_s < 1:
            raise ConfigError("Shared-answer claims need a TTL of at least 1 s.")
        self._redis = client
        self._prefix = f"{prefix}{SHARED_KEY}"
        self.ttl_s = ttl_s
        self._outage = RedisOutageLog(log, "letting answers be shared without a claim")

    def claim(self, job_id: str) -> SharedPost | None:
        key = f"{self._prefix}{job_id}"

        def attempt() -> SharedPost | None:
            if self._redis.set(key, PENDING, nx=True, ex=self.ttl_s):
                return None
            return _decode(decode_text(self._redis.get(key)))

        return self._outage.run(attempt, None)

    def record(self, job_id: str, post: SharedPost) -> None:
        key = f"{self._prefix}{job_id}"
        self._outage.run(lambda: self._redis.set(key, _encode(post), ex=self.ttl_s), None)

    def release(self, job_id: str) -> None:
        key = f"{self._prefix}{job_id}"
        self._outage.run(lambda: self._redis.delete(key), 0)


class InMemorySharedAnswers:
    """Claims in this process (single-process mode), the oldest forgotten past ``limit``."""

    def __init__(self, *, ttl_s: int = DEFAULT_TTL_S, limit: int = MEMORY_LIMIT) -> None:
        self.ttl_s = ttl_s
        self._limit = limit
        self._lock = threading.Lock()
        self._posts: dict[str, tuple[float, SharedPost]] = {}  # job id -> (expiry, post)

    def claim(self, job_id: str) -> SharedPost | None:
        now = time.monotonic()
        with self._lock:
            held = self._posts.get(job_id)
            if held is not None and held[0] > now:
                return held[1]
            if len(self._posts) >= self._limit:
                del self._posts[next(iter(self._posts))]
            self._posts[job_id] = (now + self.ttl_s, SharedPost("", ""))
            return None

    def record(self, job_id: str, post: SharedPost) -> None:
        with self._lock:
            self._posts[job_id] = (time.monotonic() + self.ttl_s, post)

    def release(self, job_id: str) -> None:
        with self._lock:
            self._posts.pop(job_id, None)


def shared_answers(client: redis.Redis | None, *, prefix: str) -> SharedAnswers:
    """The claims store for ``client`` (``None``: in this process)."""
    if client is None:
        return InMemorySharedAnswers()
    return RedisSharedAnswers(client, prefix=prefix)
