"""Per-user question rate limit, shared by every app replica when Redis is configured.

A sliding-window log: each accepted question is a member of the sorted set
``{prefix}ratelimit:{user_id}`` scored by Redis server time in milliseconds, so replicas
with skewed clocks agree. A question is allowed while fewer than ``limit`` were accepted
in the last ``window_s`` seconds; refused ones are not counted. While Redis is
unavailable (unreachable, or refusing writes: ``OOM``, ``READONLY``) every question is
allowed (logged once per outage).

Only the standard library and redis are imported: the app process stays light.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import redis

from rag_core.errors import ConfigError
from rag_core.redis_outage import RedisOutageLog

log = logging.getLogger(__name__)

RATELIMIT_KEY = "ratelimit:"  # under the prefix: one sorted set per user

# KEYS[1] the user's set; ARGV limit, window (ms), a unique member for this request.
# Returns {allowed (0/1), milliseconds until a slot frees up}.
_SLIDING_WINDOW_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now}
"""


@dataclass(frozen=True, slots=True)
class RateDecision:
    """``retry_after_s`` is whole seconds until the user may ask again (0 when allowed)."""

    allowed: bool
    retry_after_s: int


ALLOWED = RateDecision(allowed=True, retry_after_s=0)


def _seconds(ms: float) -> int:
    return max(1, math.ceil(ms / 1000))


class Windows(Protocol):
    """Where the accepted questions of each user are counted."""

    def allow(self, user_id: str, limit: int, window_s: float) -> RateDecision:
        """Count one question by ``user_id`` if fewer than ``limit`` were accepted in the
        last ``window_s`` seconds."""
        ...


class MemoryWindows:
    """:class:`Windows` of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accepted: dict[str, deque[float]] = {}  # user -> time.monotonic() stamps

    def allow(self, user_id: str, limit: int, window_s: float) -> RateDecision:
        now = time.monotonic()
        with self._lock:
            if len(self._accepted) > 10_000:  # forget users idle for a whole window
                horizon = now - window_s
                self._accepted = {u: d for u, d in self._accepted.items() if d and d[-1] > horizon}
            stamps = self._accepted.setdefault(user_id, deque())
            while stamps and stamps[0] <= now - window_s:
                stamps.popleft()
            if len(stamps) < limit:
                stamps.append(now)
                return ALLOWED
            return RateDecision(False, _seconds((stamps[0] + window_s - now) * 1000))


class RedisWindows:
    """:class:`Windows` every replica shares (see the module docstring); while Redis is
    unavailable every question is allowed (logged once per outage)."""

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self._prefix = f"{prefix}{RATELIMIT_KEY}"
        self._script = client.register_script(_SLIDING_WINDOW_LUA)
        self._outage = RedisOutageLog(log, "not rate-limiting questions")

    def allow(self, user_id: str, limit: int, window_s: float) -> RateDecision:
        window_ms = max(1, round(window_s * 1000))

        def call() -> RateDecision:
            allowed, wait_ms = self._script(
                keys=[f"{self._prefix}{user_id}"], args=[limit, window_ms, uuid.uuid4().hex]
            )
            return ALLOWED if int(allowed) else RateDecision(False, _seconds(int(wait_ms)))

        return self._outage.run(call, ALLOWED)


class RateLimiter:
    """At most ``limit`` questions per user in any ``window_s`` seconds; ``limit <= 0``
    turns the limit off. Backed by Redis when a client is given, else per-process.
    """

    def __init__(
        self,
        redis_client: redis.Redis | None,
        *,
        prefix: str = "ragbot:",
        limit: int,
        window_s: float,
    ) -> None:
        if limit > 0 and window_s <= 0:
            raise ConfigError(f"The rate-limit window must be positive, got {window_s} s.")
        self.limit = limit
        self.window_s = window_s
        self._windows: Windows = (
            MemoryWindows() if redis_client is None else RedisWindows(redis_client, prefix=prefix)
        )

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def allow(self, user_id: str) -> RateDecision:
        """Count one question by ``user_id`` if the limit allows it (side effect: recorded)."""
        if not self.enabled:
            return ALLOWED
        return self._windows.allow(user_id, self.limit, self.window_s)
