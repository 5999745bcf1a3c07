"""The long-lived collaborators the listeners and the worker share, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from bot.conversation_state import ReindexLock, ThreadRegistry
from bot.dedup import EventDeduplicator
from bot.feedback import FeedbackStore
from bot.metrics import BotMetrics
from bot.queue import JobQueue
from bot.ratelimit import RateLimiter
from bot.settings import BotSettings


@dataclass(slots=True)
class BotServices:
    settings: BotSettings
    queue: JobQueue
    dedup: EventDeduplicator
    rate_limiter: RateLimiter
    feedback: FeedbackStore
    threads: ThreadRegistry
    reindex_lock: ReindexLock
    metrics: BotMetrics  # the registry this process exports
