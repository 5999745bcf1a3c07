"""How the bot did lately, for the App Home tab: questions, answers, votes, and the
questions the docs did not cover.

Counts are kept per UTC day. In Redis, ``{prefix}stats:day:{YYYY-MM-DD}`` is a hash of
counters (``questions``, ``answered``, ``not_covered``, ``up``, ``down``) and
``{prefix}stats:gaps:{YYYY-MM-DD}`` a sorted set of normalised not-covered questions
scored by how often they were asked; both expire after ``ttl_days`` days. Without Redis
(single-process mode) the same lives in this process. A Redis outage drops the counts
(logged once per outage) and :meth:`AnswerStats.week` then says it is unavailable:
statistics are never worth failing an answer for.

Only the standard library and redis are imported: the app process stays light.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import redis

from rag_core.errors import ConfigError, InputError
from rag_core.redis_outage import RedisOutageLog

log = logging.getLogger(__name__)

DAY_KEY = "stats:day:"  # under the prefix: one hash of counters per UTC day
GAPS_KEY = "stats:gaps:"  # under the prefix: one sorted set of questions per UTC day
WEEK_DAYS = 7
DEFAULT_TTL_DAYS = 8  # a week back from any hour of today, plus a margin
MAX_GAP_CHARS = 300
MAX_GAPS_PER_DAY = 1000  # the least asked beyond this are forgotten
DEFAULT_GAP_COUNT = 10

ANSWERED_KINDS = frozenset({"generated", "extractive"})
NOT_COVERED_KIND = "not_covered"
COUNTERS = ("questions", "answered", "not_covered", "up", "down")
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


@dataclass(frozen=True, slots=True)
class WeekStats:
    """The last :data:`WEEK_DAYS` UTC days, today included. ``gaps``: not-covered
    questions (normalised) with how often each was asked, most frequent first.
    ``available`` is False when the counts could not be read (Redis down)."""

    questions: int = 0
    answered: int = 0
    not_covered: int = 0
    up: int = 0
    down: int = 0
    gaps: tuple[tuple[str, int], ...] = ()
    available: bool = True


class StatsBackend(Protocol):
    """Where per-day counters and gap questions live."""

    def add(self, day: str, counts: dict[str, int], gap: str | None) -> None:
        """Add ``counts`` to ``day``'s counters and one ask of ``gap`` to its gaps."""
        ...

    def read(self, days: list[str]) -> tuple[Counter[str], Counter[str]]:
        """The counters and the gap counts of ``days``, summed."""
        ...


def normalise_question(question: str) -> str:
    """The form gaps are grouped by: mentions removed, lowercased, whitespace collapsed,
    trailing punctuation dropped, cut to :data:`MAX_GAP_CHARS` characters."""
    text = " ".join(_MENTION.sub(" ", question).lower().split()).rstrip("?!. ")
    return text[:MAX_GAP_CHARS]


def day_of(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%d")


def week_days(now: float) -> list[str]:
    """The :data:`WEEK_DAYS` UTC days ending with the day of ``now``, newest first."""
    today = datetime.fromtimestamp(now, UTC)
    return [(today - timedelta(days=n)).strftime("%Y-%m-%d") for n in range(WEEK_DAYS)]


class AnswerStats:
    """Answer and vote counts per day, in Redis when a client is given, else here."""

    def __init__(
        self,
        redis_client: redis.Redis | None,
        *,
        prefix: str = "ragbot:",
        ttl_days: int = DEFAULT_TTL_DAYS,
    ) -> None:
        if ttl_days < WEEK_DAYS:
            raise ConfigError(f"Answer stats must be kept at least {WEEK_DAYS} days.")
        self._backend: StatsBackend = (
            MemoryStatsBackend()
            if redis_client is None
            else RedisStatsBackend(redis_client, prefix=prefix, ttl_s=ttl_days * 86_400)
        )

    def record_answer(self, *, kind: str, question: str, at: float | None = None) -> None:
        """Count one answered question; ``kind`` is :class:`~rag_core.types.AnswerKind`'s
        value. A not-covered question is also added to the day's gaps. ``at``: Unix time
        (default now). Never raises for Redis trouble."""
        counts = {"questions": 1}
        gap = None
        if kind in ANSWERED_KINDS:
            counts["answered"] = 1
        elif kind == NOT_COVERED_KIND:
            counts["not_covered"] = 1
            gap = normalise_question(question) or None
        else:
            log.warning("answer of unknown kind %r counted as a question only", kind)
        self._backend.add(day_of(time.time() if at is None else at), counts, gap)

    def record_vote(
        self, vote: str, *, replaces: str | None = None, at: float | None = None
    ) -> None:
        """Count a 👍 (``"up"``) or 👎 (``"down"``); ``replaces``: the same user's earlier
        vote on the same answer, taken back (a changed mind is one vote, not two)."""
        if vote not in ("up", "down"):
            raise InputError(f"A vote must be 'up' or 'down', not {vote!r}.")
        if replaces == vote:
            return
        counts = {vote: 1}
        if replaces in ("up", "down"):
            counts[replaces] = -1
        self._backend.add(day_of(time.time() if at is None else at), counts, None)

    def week(self, now: float | None = None, *, gap_count: int = DEFAULT_GAP_COUNT) -> WeekStats:
        """The last seven days (see :class:`WeekStats`); at most ``gap_count`` gaps."""
        try:
            counters, gaps = self._backend.read(week_days(time.time() if now is None else now))
        except StatsUnavailable:
            return WeekStats(available=False)
        top = sorted(gaps.items(), key=lambda item: (-item[1], item[0]))[:gap_count]
        return WeekStats(
            **{name: max(0, counters[name]) for name in COUNTERS},
            gaps=tuple((question, count) for question, count in top if count > 0),
        )


class StatsUnavailable(Exception):
    """The counts cannot be read now (Redis is down)."""


class MemoryStatsBackend:
    """Counts in this process: single-process mode and tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._days: dict[str, Counter[str]] = {}
        self._gaps: dict[str, Counter[str]] = {}

    def add(self, day: str, counts: dict[str, int], gap: str | None) -> None:
        with self._lock:
            self._days.setdefault(day, Counter()).update(counts)
            if gap:
                gaps = self._gaps.setdefault(day, Counter())
                gaps[gap] += 1
                if len(gaps) > MAX_GAPS_PER_DAY:
                    del gaps[min(gaps, key=gaps.__getitem__)]
            for old in sorted(self._days)[:-DEFAULT_TTL_DAYS]:
                self._days.pop(old, None)
                self._gaps.pop(old, None)

    def read(self, days: list[str]) -> tuple[Counter[str], Counter[str]]:
        counters: Counter[str] = Counter()
        gaps: Counter[str] = Counter()
        with self._lock:
            for day in days:
                counters.update(self._days.get(day, {}))
                gaps.update(self._gaps.get(day, {}))
        return counters, gaps


class RedisStatsBackend:
    """Counts in Redis, shared by every app replica and worker (see the module docstring)."""

    def __init__(self, client: redis.Redis, *, prefix: str, ttl_s: int) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._outage = RedisOutageLog(log, "not counting answers and votes")

    def add(self, day: str, counts: dict[str, int], gap: str | None) -> None:
        day_key, gaps_key = self._keys(day)

        def write() -> None:
            pipe = self._redis.pipeline(transaction=False)
            for name, amount in counts.items():
                pipe.hincrby(day_key, name, amount)
            pipe.expire(day_key, self._ttl_s)
            if gap:
                pipe.zincrby(gaps_key, 1, gap)
                pipe.zremrangebyrank(gaps_key, 0, -(MAX_GAPS_PER_DAY + 1))
                pipe.expire(gaps_key, self._ttl_s)
            pipe.execute()

        self._outage.run(write, None)

    def read(self, days: list[str]) -> tuple[Counter[str], Counter[str]]:
        def fetch() -> list[object]:
            pipe = self._redis.pipeline(transaction=False)
            for day in days:
                day_key, gaps_key = self._keys(day)
                pipe.hgetall(day_key)
                pipe.zrange(gaps_key, 0, -1, withscores=True)
            return pipe.execute()

        replies = self._outage.run(fetch, None)
        if replies is None:
            raise StatsUnavailable("Redis is unavailable")
        counters: Counter[str] = Counter()
        gaps: Counter[str] = Counter()
        for hash_reply, gaps_reply in zip(replies[::2], replies[1::2], strict=True):
            assert isinstance(hash_reply, dict) and isinstance(gaps_reply, list)
            for name, value in hash_reply.items():
                counters[_text(name)] += int(value)
            for member, score in gaps_reply:
                gaps[_text(member)] += int(score)
        return counters, gaps

    def _keys(self, day: str) -> tuple[str, str]:
        return f"{self._prefix}{DAY_KEY}{day}", f"{self._prefix}{GAPS_KEY}{day}"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
