"""Thumbs up/down on answers: one vote per user per answer, what it was a vote on, an
optional reason for a 👎, a recent list to review, and every vote since a date to export.

A vote keeps the question, the answer, its sources and the index version it came from
(see :class:`~bot.answer_records.AnswerRecord`), so ``ragbot feedback export`` can turn
👍'd answers into evaluation questions long after the answer record expired.

In Redis, under the prefix:

* ``feedback:votes:{answer_id}``: hash of user -> vote, for the per-answer counts;
* ``feedback:vote:{answer_id}:{user}``: the latest vote of that user as JSON;
* ``feedback:log``: sorted set of ``{answer_id}:{user}`` by vote time, for exports;
* ``feedback:recent``: the last ``recent_limit`` votes as JSON, newest first.

All but the recent list expire after ``ttl_s`` (refreshed by each vote). If Redis cannot
be reached a vote is dropped and reads come back empty (logged once per outage):
feedback is not worth failing a button click for.

Only the standard library and redis are imported: the app process stays light.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, Protocol, get_args

import redis

from bot.answer_records import AnswerRecord, SourceRecord
from bot.jobs import decode_text
from rag_core.errors import ConfigError, InputError
from rag_core.redis_outage import RedisOutageLog

log = logging.getLogger(__name__)

VOTES_KEY = "feedback:votes:"  # under the prefix: one hash per answer id
VOTE_KEY = "feedback:vote:"  # under the prefix: one JSON entry per answer id and user
LOG_KEY = "feedback:log"  # under the prefix: who voted on what, scored by Unix time
RECENT_KEY = "feedback:recent"  # under the prefix: the review list
DEFAULT_TTL_S = 90 * 86_400
MAX_QUESTION_CHARS = 500
MAX_ANSWER_CHARS = 12_000
MAX_REASON_CHARS = 300
EXPORT_BATCH = 500

Vote = Literal["up", "down"]
VOTES: tuple[str, ...] = get_args(Vote)


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    """One vote as recorded; ``at`` is Unix time. The answer's fields are empty when its
    record had expired (or was never kept) by the time of the vote."""

    answer_id: str
    user_id: str
    vote: str
    question: str
    at: float
    answer: str = ""
    kind: str = ""
    sources: tuple[SourceRecord, ...] = ()
    index_version: str = ""
    channel: str = ""
    reason: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, payload: str | bytes) -> FeedbackEntry:
        """Parse :meth:`to_json` output (older, shorter entries too); unknown keys are
        ignored. Raises ``ValueError``."""
        try:
            data: dict[str, Any] = json.loads(payload)
            known = {f.name for f in fields(cls)}
            values = {k: v for k, v in data.items() if k in known}
            values["sources"] = tuple(SourceRecord(**s) for s in values.get("sources", ()))
            return cls(**values)
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed feedback entry: {exc}") from exc

    @property
    def member(self) -> str:
        """This vote's name in the export log: one per answer and user."""
        return f"{self.answer_id}:{self.user_id}"


class FeedbackBackend(Protocol):
    """Where votes live; :class:`FeedbackStore` validates and delegates."""

    def put(self, entry: FeedbackEntry) -> str | None:
        """Store ``entry`` as its user's vote on its answer; returns the vote it replaced."""
        ...

    def get(self, answer_id: str, user_id: str) -> FeedbackEntry | None: ...

    def update(self, entry: FeedbackEntry) -> bool:
        """Rewrite a stored vote in place (same answer and user); False when it is gone."""
        ...

    def votes_on(self, answer_id: str) -> list[str]: ...

    def recent(self, count: int) -> list[FeedbackEntry]: ...

    def since(self, at: float) -> list[FeedbackEntry]:
        """Every user's latest vote on every answer cast at or after ``at``, oldest first."""
        ...


class FeedbackStore:
    """Votes on answers, in Redis when a client is given, else in this process."""

    def __init__(
        self,
        redis_client: redis.Redis | None,
        *,
        prefix: str = "ragbot:",
        ttl_s: int = DEFAULT_TTL_S,
        recent_limit: int = 500,
    ) -> None:
        if ttl_s < 1 or recent_limit < 1:
            raise ConfigError("The feedback store needs ttl_s and recent_limit of at least 1.")
        self.ttl_s = ttl_s
        self.recent_limit = recent_limit
        self._backend: FeedbackBackend = (
            MemoryFeedback(ttl_s=ttl_s, recent_limit=recent_limit)
            if redis_client is None
            else RedisFeedback(redis_client, prefix=prefix, ttl_s=ttl_s, recent_limit=recent_limit)
        )

    def record(
        self,
        answer_id: str,
        user_id: str,
        vote: Vote,
        *,
        question: str = "",
        answer: AnswerRecord | None = None,
    ) -> str | None:
        """Store ``user_id``'s vote on ``answer_id``, replacing any earlier one by them;
        ``answer`` is what was voted on (its question wins over ``question``). Returns the
        vote replaced (None: first vote, or unknown while Redis is down)."""
        if vote not in VOTES:
            raise InputError(f"A vote must be 'up' or 'down', not {vote!r}.")
        if not answer_id or not user_id:
            raise InputError("A vote needs an answer id and a user id.")
        entry = FeedbackEntry(answer_id, user_id, vote, question[:MAX_QUESTION_CHARS], time.time())
        if answer is not None:
            entry = replace(
                entry,
                question=answer.question[:MAX_QUESTION_CHARS],
                answer=answer.text[:MAX_ANSWER_CHARS],
                kind=answer.kind,
                sources=answer.sources,
                index_version=answer.index_version,
                channel=answer.channel,
            )
        return self._backend.put(entry)

    def add_reason(self, answer_id: str, user_id: str, reason: str) -> bool:
        """Attach ``reason`` (one line, cut to :data:`MAX_REASON_CHARS`) to ``user_id``'s
        👎 on ``answer_id``. False when there is no such 👎 (expired, changed to 👍, or
        Redis is down): nothing is stored then."""
        text = " ".join(reason.split())[:MAX_REASON_CHARS]
        entry = self._backend.get(answer_id, user_id)
        if entry is None or entry.vote != "down":
            return False
        return self._backend.update(replace(entry, reason=text))

    def counts(self, answer_id: str) -> dict[str, int]:
        """``{"up": n, "down": m}`` for ``answer_id``, counting each user's latest vote."""
        tally = Counter(self._backend.votes_on(answer_id))
        return {vote: tally[vote] for vote in VOTES}

    def recent(self, count: int = 50) -> list[FeedbackEntry]:
        """The latest votes, newest first (a replaced vote still appears, as it happened)."""
        return self._backend.recent(count)

    def since(self, at: float = 0.0) -> list[FeedbackEntry]:
        """Each user's latest vote on each answer, cast at or after Unix time ``at``,
        oldest first (what ``ragbot feedback export`` writes)."""
        return self._backend.since(at)


class MemoryFeedback:
    """Votes in this process: single-process mode and tests."""

    def __init__(self, *, ttl_s: int, recent_limit: int) -> None:
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._votes: dict[str, FeedbackEntry] = {}  # by member, oldest vote first
        self._recent: deque[FeedbackEntry] = deque(maxlen=recent_limit)

    def put(self, entry: FeedbackEntry) -> str | None:
        with self._lock:
            previous = self._votes.pop(entry.member, None)
            self._votes[entry.member] = entry
            self._recent.appendleft(entry)
            cutoff = time.time() - self._ttl_s
            for member in [m for m, e in self._votes.items() if e.at < cutoff]:
                del self._votes[member]
        return previous.vote if previous else None

    def get(self, answer_id: str, user_id: str) -> FeedbackEntry | None:
        with self._lock:
            return self._votes.get(f"{answer_id}:{user_id}")

    def update(self, entry: FeedbackEntry) -> bool:
        with self._lock:
            if entry.member not in self._votes:
                return False
            self._votes[entry.member] = entry
            return True

    def votes_on(self, answer_id: str) -> list[str]:
        with self._lock:
            return [e.vote for e in self._votes.values() if e.answer_id == answer_id]

    def recent(self, count: int) -> list[FeedbackEntry]:
        with self._lock:
            return list(self._recent)[:count]

    def since(self, at: float) -> list[FeedbackEntry]:
        with self._lock:
            return sorted((e for e in self._votes.values() if e.at >= at), key=lambda e: e.at)


class RedisFeedback:
    """Votes in Redis, shared by every app replica (see the module docstring)."""

    def __init__(self, client: redis.Redis, *, prefix: str, ttl_s: int, recent_limit: int) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._recent_limit = recent_limit
        self._outage = RedisOutageLog(log, "dropping feedback")

    def put(self, entry: FeedbackEntry) -> str | None:
        def write() -> str | None:
            votes = f"{self._prefix}{VOTES_KEY}{entry.answer_id}"
            vote_log = f"{self._prefix}{LOG_KEY}"
            recent = f"{self._prefix}{RECENT_KEY}"
            pipe = self._redis.pipeline(transaction=True)
            pipe.hget(votes, entry.user_id)
            pipe.hset(votes, entry.user_id, entry.vote)
            pipe.expire(votes, self._ttl_s)
            pipe.set(self._vote_key(entry.member), entry.to_json(), ex=self._ttl_s)
            pipe.zadd(vote_log, {entry.member: entry.at})
            pipe.zremrangebyscore(vote_log, "-inf", f"({entry.at - self._ttl_s}")
            pipe.lpush(recent, entry.to_json())
            pipe.ltrim(recent, 0, self._recent_limit - 1)
            return decode_text(pipe.execute()[0])

        return self._outage.run(write, None)

    def get(self, answer_id: str, user_id: str) -> FeedbackEntry | None:
        key = self._vote_key(f"{answer_id}:{user_id}")
        raw = self._outage.run(lambda: self._redis.get(key), None)
        return _parse(raw) if raw is not None else None

    def update(self, entry: FeedbackEntry) -> bool:
        key = self._vote_key(entry.member)
        stored = self._outage.run(
            lambda: self._redis.set(key, entry.to_json(), xx=True, keepttl=True), None
        )
        return bool(stored)

    def votes_on(self, answer_id: str) -> list[str]:
        key = f"{self._prefix}{VOTES_KEY}{answer_id}"
        values = self._outage.run(lambda: self._redis.hvals(key), [])
        return [str(decode_text(v)) for v in values]

    def recent(self, count: int) -> list[FeedbackEntry]:
        key = f"{self._prefix}{RECENT_KEY}"
        raw = self._outage.run(lambda: self._redis.lrange(key, 0, count - 1), [])
        return [entry for item in raw if (entry := _parse(item)) is not None]

    def since(self, at: float) -> list[FeedbackEntry]:
        def read() -> list[FeedbackEntry]:
            members = self._redis.zrangebyscore(f"{self._prefix}{LOG_KEY}", at, "+inf")
            found: list[FeedbackEntry] = []
            for start in range(0, len(members), EXPORT_BATCH):
                keys = [
                    self._vote_key(str(decode_text(m)))
                    for m in members[start : start + EXPORT_BATCH]
                ]
                found.extend(e for raw in self._redis.mget(keys) if raw and (e := _parse(raw)))
            return found

        return self._outage.run(read, [])

    def _vote_key(self, member: str) -> str:
        return f"{self._prefix}{VOTE_KEY}{member}"


def _parse(raw: bytes | str) -> FeedbackEntry | None:
    try:
        return FeedbackEntry.from_json(raw)
    except ValueError as error:
        log.warning("feedback entry unreadable: %s", error)
        return None
