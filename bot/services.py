"""The long-lived collaborators the listeners and the worker share, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from bot.answer_records import AnswerRecords
from bot.answer_stats import AnswerStats
from bot.conversation_state import ReindexLock, ThreadRegistry
from bot.dedup import EventDeduplicator
from bot.feedback import FeedbackStore
from bot.index_status import IndexStatusStore
from bot.metrics import BotMetrics
from bot.queue import JobQueue
from bot.ratelimit import RateLimiter
from bot.settings import BotSettings
from bot.shared_answers import SharedAnswers


@dataclass(slots=True)
class BotServices:
    settings: BotSettings
    queue: JobQueue
    dedup: EventDeduplicator
    rate_limiter: RateLimiter
    feedback: FeedbackStore
    answers: AnswerRecords  # what each answer was, for votes, sharing and the home tab
    shares: SharedAnswers  # which private answers were shared in their channel (once each)
    threads: ThreadRegistry
    reindex_lock: ReindexLock
    metrics: BotMetrics  # the registry this process exports
    stats: AnswerStats  # last week's questions, answers, votes and gaps (App Home tab)
    index_status: IndexStatusStore  # what is indexed, written by workers (App Home tab)
