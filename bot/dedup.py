"""Drop Slack events the app has already accepted.

One mention arrives twice (an ``app_mention`` and a ``message`` event with different
event ids but the same channel and ``ts``), and Slack re-sends any event not acknowledged
within three seconds. The app calls ``first_time(f"event:{event_id}", f"msg:{channel}:{ts}")``
and handles the event only when it returns ``True``.

Only the standard library and redis are imported: the app process stays light.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import redis

from rag_core.errors import ConfigError, InputError
from rag_core.redis_outage import RedisOutageLog

log = logging.getLogger(__name__)

DEDUP_KEY = "dedup:"  # under the prefix: one string key per claimed event key
DEFAULT_TTL_S = 3600.0

# Claim every key not yet claimed (so a later event sharing any of them is also a
# duplicate) and say whether all of them were new. KEYS: the keys; ARGV[1]: TTL in ms.
_CLAIM_LUA = """
local fresh = 1
for _, key in ipairs(KEYS) do
  if not redis.call('SET', key, '1', 'NX', 'PX', ARGV[1]) then fresh = 0 end
end
return fresh
"""


class Claims(Protocol):
    """Where claimed keys live; :class:`EventDeduplicator` validates and delegates."""

    def claim(self, keys: tuple[str, ...], ttl_s: float) -> bool:
        """Claim every key not yet claimed, for ``ttl_s``; True when all were new."""
        ...

    def forget(self, keys: tuple[str, ...]) -> None: ...


class MemoryClaims:
    """:class:`Claims` of this process, with the same expiry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}  # key -> time.monotonic() expiry

    def claim(self, keys: tuple[str, ...], ttl_s: float) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._until) > 10_000:
                self._until = {k: exp for k, exp in self._until.items() if exp > now}
            fresh = all(self._until.get(key, 0.0) <= now for key in keys)
            for key in keys:
                if self._until.get(key, 0.0) <= now:
                    self._until[key] = now + ttl_s
        return fresh

    def forget(self, keys: tuple[str, ...]) -> None:
        with self._lock:
            for key in keys:
                self._until.pop(key, None)


class RedisClaims:
    """:class:`Claims` every app replica shares: claiming several keys is one atomic
    script. While Redis is unavailable (unreachable, or refusing writes: ``OOM``,
    ``READONLY``) every event counts as new: a rare duplicate answer is better than a
    question silently dropped (a warning is logged once per outage)."""

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self._redis = client
        self._prefix = f"{prefix}{DEDUP_KEY}"
        self._script = client.register_script(_CLAIM_LUA)
        self._outage = RedisOutageLog(log, "treating events as new")

    def claim(self, keys: tuple[str, ...], ttl_s: float) -> bool:
        names = [f"{self._prefix}{key}" for key in keys]
        ttl_ms = max(1, round(ttl_s * 1000))
        return self._outage.run(lambda: bool(self._script(keys=names, args=[ttl_ms])), True)

    def forget(self, keys: tuple[str, ...]) -> None:
        names = [f"{self._prefix}{key}" for key in keys]
        self._outage.run(lambda: self._redis.delete(*names), 0)


class EventDeduplicator:
    """Remembers event keys for ``ttl_s`` seconds, in Redis when a client is given
    (:class:`RedisClaims`, shared by every replica), else in this process."""

    def __init__(
        self,
        redis_client: redis.Redis | None,
        *,
        prefix: str = "ragbot:",
        ttl_s: float = DEFAULT_TTL_S,
    ) -> None:
        if ttl_s <= 0:
            raise ConfigError(f"The de-duplication TTL must be positive, got {ttl_s}.")
        self.ttl_s = ttl_s
        self._claims: Claims = (
            MemoryClaims() if redis_client is None else RedisClaims(redis_client, prefix=prefix)
        )

    def first_time(self, *keys: str) -> bool:
        """True only for the first caller of every one of ``keys``; all are claimed for
        ``ttl_s`` either way, so a later event sharing any of them is a duplicate too."""
        if not keys or not all(keys):
            raise InputError("Event de-duplication needs at least one non-empty key.")
        return self._claims.claim(keys, self.ttl_s)

    def release(self, *keys: str) -> None:
        """Forget ``keys`` claimed by :meth:`first_time`, so Slack's retry of an event the
        app could not queue is handled instead of dropped. Best effort: while Redis is
        unavailable nothing is claimed there anyway."""
        if keys:
            self._claims.forget(keys)
