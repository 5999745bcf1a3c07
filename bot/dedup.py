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
from typing import TypeVar

import redis

from rag_core.errors import ConfigError, InputError
from rag_core.redis_outage import RedisOutageLog

log = logging.getLogger(__name__)

DEDUP_KEY = "dedup:"  # under the prefix: one string key per claimed event key
DEFAULT_TTL_S = 3600.0

T = TypeVar("T")

# Claim every key not yet claimed (so a later event sharing any of them is also a
# duplicate) and say whether all of them were new. KEYS: the keys; ARGV[1]: TTL in ms.
_CLAIM_LUA = """
local fresh = 1
for _, key in ipairs(KEYS) do
  if not redis.call('SET', key, '1', 'NX', 'PX', ARGV[1]) then fresh = 0 end
end
return fresh
"""


class EventDeduplicator:
    """Remembers event keys for ``ttl_s`` seconds, in Redis when a client is given.

    With Redis, all app replicas share the memory and claiming several keys is one atomic
    script. If Redis is unavailable (unreachable, or refusing writes: ``OOM``,
    ``READONLY``), :meth:`first_time` answers ``True``: a rare duplicate answer is better
    than a question silently dropped (a warning is logged once per outage). Without Redis
    it is per-process, with the same expiry.
    """

    def __init__(
        self,
        redis_client: redis.Redis | None,
        *,
        prefix: str = "ragbot:",
        ttl_s: float = DEFAULT_TTL_S,
    ) -> None:
        if ttl_s <= 0:
            raise ConfigError(f"The de-duplication TTL must be positive, got {ttl_s}.")
        self._redis = redis_client
        self._prefix = f"{prefix}{DEDUP_KEY}"
        self.ttl_s = ttl_s
        self._script = redis_client.register_script(_CLAIM_LUA) if redis_client else None
        self._outage = RedisOutageLog(log, "treating events as new")
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}  # key -> time.monotonic() expiry

    def first_time(self, *keys: str) -> bool:
        """True only for the first caller of every one of ``keys``; all are claimed for
        ``ttl_s`` either way, so a later event sharing any of them is a duplicate too."""
        if not keys or not all(keys):
            raise InputError("Event de-duplication needs at least one non-empty key.")
        script = self._script
        if script is None:
            return self._first_time_local(keys)
        names = [f"{self._prefix}{key}" for key in keys]
        ttl_ms = max(1, round(self.ttl_s * 1000))
        return self._outage.run(lambda: bool(script(keys=names, args=[ttl_ms])), True)

    def release(self, *keys: str) -> None:
        """Forget ``keys`` claimed by :meth:`first_time`, so Slack's retry of an event the
        app could not queue is handled instead of dropped. Best effort: while Redis is
        unavailable nothing is claimed there anyway."""
        if not keys:
            return
        if self._redis is None:
            with self._lock:
                for key in keys:
                    self._seen.pop(key, None)
            return
        client = self._redis
        names = [f"{self._prefix}{key}" for key in keys]
        self._outage.run(lambda: client.delete(*names), 0)

    def _first_time_local(self, keys: tuple[str, ...]) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: exp for k, exp in self._seen.items() if exp > now}
            fresh = all(self._seen.get(key, 0.0) <= now for key in keys)
            for key in keys:
                if self._seen.get(key, 0.0) <= now:
                    self._seen[key] = now + self.ttl_s
        return fresh
