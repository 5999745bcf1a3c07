"""Redis calls with a safe fallback: one warning per outage, not one per call."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import redis

T = TypeVar("T")


class RedisOutageLog:
    """Runs Redis calls that have a safe fallback, logging one warning when Redis stops
    answering and one info line when it answers again, not one warning per call.

    "Not answering" is any :class:`redis.exceptions.RedisError`: a lost connection or a
    timeout, but also a Redis that refuses writes (``OOM`` under ``noeviction``,
    ``READONLY`` after a failover turned it into a replica). Thread-safe.
    """

    def __init__(self, logger: logging.Logger, fallback_note: str) -> None:
        self._log = logger
        self._note = fallback_note
        self._down = False
        self._lock = threading.Lock()

    def run(self, action: Callable[[], T], fallback: T) -> T:
        """``action()``, or ``fallback`` when Redis cannot serve it."""
        try:
            result = action()
        except redis.exceptions.RedisError as exc:
            with self._lock:
                first, self._down = not self._down, True
            if first:
                self._log.warning("Redis unavailable (%s); %s until it is back", exc, self._note)
            return fallback
        if self._down:
            with self._lock:
                recovered, self._down = self._down, False
            if recovered:
                self._log.info("Redis reachable again; no longer %s", self._note)
        return result
