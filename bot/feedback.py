"""Thumbs up/down on answers: one vote per user per answer, and a recent list to review.

In Redis, ``{prefix}feedback:votes:{answer_id}`` is a hash of user -> vote (kept
``ttl_s``, refreshed by each vote), so a second click replaces the first and the
per-answer counts are read from it; ``{prefix}feedback:recent`` is a list of the last
``recent_limit`` votes as JSON, newest first. If Redis cannot be reached a vote is
dropped and counts read as zero (logged once per outage): feedback is not worth failing
a button click for.

Only the standard library and redis are imported: the app process stays light.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Literal, get_args

import redis

from bot.jobs import decode_text
from rag_core.errors import ConfigError, InputError
from rag_core.redis_outage import RedisOutageLog

log = logging.getLogger(__name__)

VOTES_KEY = "feedback:votes:"  # under the prefix: one hash per answer id
RECENT_KEY = "feedback:recent"  # under the prefix: the review list
DEFAULT_TTL_S = 90 * 86_400

Vote = Literal["up", "down"]
VOTES: tuple[str, ...] = get_args(Vote)


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    """One vote as recorded; ``at`` is Unix time."""

    answer_id: str
    user_id: str
    vote: str
    question: str
    at: float


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
        self._redis = redis_client
        self._prefix = prefix
        self.ttl_s = ttl_s
        self.recent_limit = recent_limit
        self._outage = RedisOutageLog(log, "dropping feedback")
        self._lock = threading.Lock()
        self._votes: dict[str, dict[str, str]] = {}
        self._recent: deque[FeedbackEntry] = deque(maxlen=recent_limit)

    def record(self, answer_id: str, user_id: str, vote: Vote, *, question: str = "") -> None:
        """Store ``user_id``'s vote on ``answer_id``, replacing any earlier one by them."""
        if vote not in VOTES:
            raise InputError(f"A vote must be 'up' or 'down', not {vote!r}.")
        if not answer_id or not user_id:
            raise InputError("A vote needs an answer id and a user id.")
        entry = FeedbackEntry(answer_id, user_id, vote, question[:500], time.time())
        if self._redis is None:
            with self._lock:
                self._votes.setdefault(answer_id, {})[user_id] = vote
                self._recent.appendleft(entry)
            return
        client = self._redis
        self._outage.run(lambda: self._record_redis(client, entry), None)

    def counts(self, answer_id: str) -> dict[str, int]:
        """``{"up": n, "down": m}`` for ``answer_id``, counting each user's latest vote."""
        if self._redis is None:
            with self._lock:
                votes = list(self._votes.get(answer_id, {}).values())
        else:
            key = f"{self._prefix}{VOTES_KEY}{answer_id}"
            client = self._redis
            votes = self._outage.run(lambda: [decode_text(v) for v in client.hvals(key)], [])
        tally = Counter(votes)
        return {vote: tally[vote] for vote in VOTES}

    def recent(self, count: int = 50) -> list[FeedbackEntry]:
        """The latest votes, newest first (a replaced vote still appears, as it happened)."""
        if self._redis is None:
            with self._lock:
                return list(self._recent)[:count]
        client = self._redis
        raw = self._outage.run(
            lambda: client.lrange(f"{self._prefix}{RECENT_KEY}", 0, count - 1), []
        )
        return [FeedbackEntry(**json.loads(item)) for item in raw]

    def _record_redis(self, client: redis.Redis, entry: FeedbackEntry) -> None:
        key = f"{self._prefix}{VOTES_KEY}{entry.answer_id}"
        recent = f"{self._prefix}{RECENT_KEY}"
        pipe = client.pipeline(transaction=True)
        pipe.hset(key, entry.user_id, entry.vote)
        pipe.expire(key, self.ttl_s)
        pipe.lpush(recent, json.dumps(asdict(entry), ensure_ascii=False))
        pipe.ltrim(recent, 0, self.recent_limit - 1)
        pipe.execute()
