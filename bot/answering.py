"""The worker's half of a question: read the thread, run the pipeline, post once.

"Once" holds across worker crashes and Slack failures: :class:`~bot.posting.ThreadPoster`
finds an earlier post of the same job and edits it instead of posting again, and Slack
hiccups are retried in-process (:mod:`bot.slack_retry`) so the computed answer is posted
without running the pipeline a second time. Once it is posted, the :eyes: reaction
intake put on the question comes off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from slack_sdk import WebClient

from bot import blocks
from bot.conversation_state import ThreadRegistry
from bot.jobs import AskJob, RetryJob
from bot.metrics import BotMetrics
from bot.posting import PostGuard, ThreadPoster
from bot.slack_retry import SlackRejected, SlackUnavailable
from bot.text import question_from_text
from rag_core.errors import (
    GenerationError,
    IndexMismatchError,
    IndexNotFoundError,
    InputError,
    StoreUnavailableError,
)
from rag_core.pipeline import RagPipeline
from rag_core.types import Answer, AnswerKind, Turn

log = logging.getLogger(__name__)

SEARCH_DOWN_RETRYING = "I couldn't reach the search index; I'll retry."
SEARCH_DOWN_FINAL = "I couldn't reach the search index. Please try again in a few minutes."
LLM_BUSY = "The answer service is busy, try again in a minute."
LLM_DOWN = "The answer service is unavailable right now; please try again later."
NOT_INDEXED = "Nothing is indexed yet. An admin can run `/reindex` to index the docs."
INDEX_MISMATCH = (
    "The search index was built with a different embedding model. An admin needs to run `/reindex`."
)
UNEXPECTED = "Something went wrong while answering. The details are in the bot's logs."
EXTRACTIVE_NOTE = "Extractive answer: no language model is configured, so these are quotes."
HISTORY_RETRY_WINDOW_S = 30.0  # a follow-up without history beats none at all


@dataclass(slots=True)
class AskHandler:
    """Handles :class:`AskJob` for one worker; every collaborator is built once and shared."""

    pipeline: RagPipeline
    client: WebClient
    poster: ThreadPoster
    threads: ThreadRegistry
    bot_user_id: str
    history_max_messages: int = 12
    metrics: BotMetrics = field(default_factory=BotMetrics)

    def handle(self, job: AskJob, *, final_attempt: bool, guard: PostGuard) -> None:
        """Answer ``job``; raises :class:`RetryJob` for failures worth another attempt.

        Slack failures raise :class:`~bot.slack_retry.SlackRejected` or
        :class:`~bot.slack_retry.SlackUnavailable`, a lost lease
        :class:`~bot.jobs.LeaseLost`: the worker decides what then.
        """
        try:
            history = self.thread_history(job) if job.is_followup else []
            answer = self.pipeline.ask(job.text, history=history)
        except StoreUnavailableError as error:
            log.warning("search index unreachable for %s: %s", job.job_id, error)
            if final_attempt:
                self.post_text(job, SEARCH_DOWN_FINAL, guard=guard)
                return
            self.post_text(job, SEARCH_DOWN_RETRYING, guard=guard)
            raise RetryJob(str(error)) from error
        except (InputError, IndexNotFoundError, IndexMismatchError, GenerationError) as error:
            log.warning("cannot answer %s: %s", job.job_id, error)
            self.post_text(job, user_message(error), guard=guard)
            return
        self.record(answer)
        self.post_answer(job, answer, guard=guard)

    def record(self, answer: Answer) -> None:
        """Stage timings and the answer cache's hit or miss, into the metrics."""
        for stage, ms in answer.timings_ms.items():
            self.metrics.answer_seconds.labels(stage=stage).observe(ms / 1000)
        counter = self.metrics.cache_hits if answer.cached else self.metrics.cache_misses
        counter.labels(cache="answer").inc()

    def thread_history(self, job: AskJob) -> list[Turn]:
        """The thread before this message, oldest first, as conversation turns."""
        try:
            response = self.poster.retry.call(
                "conversations.replies",
                lambda: self.client.conversations_replies(
                    channel=job.channel, ts=job.thread_ts, limit=200
                ),
                window_s=min(HISTORY_RETRY_WINDOW_S, self.poster.retry.window_s),
            )
        except (SlackRejected, SlackUnavailable) as error:
            log.warning("could not read thread %s: %s", job.thread_ts, error)
            return []
        turns = []
        asked_at = Decimal(job.message_ts)
        for message in response.get("messages", []):
            if Decimal(message.get("ts", "0")) >= asked_at:
                break
            text = question_from_text(message.get("text", ""), bot_user_id=self.bot_user_id)
            if not text or text in (blocks.WORKING_TEXT, SEARCH_DOWN_RETRYING):
                continue
            from_bot = bool(message.get("bot_id")) or message.get("user") == self.bot_user_id
            turns.append(Turn("assistant" if from_bot else "user", text))
        return turns[-self.history_max_messages :] if self.history_max_messages else []

    def post_answer(self, job: AskJob, answer: Answer, *, guard: PostGuard) -> None:
        note = EXTRACTIVE_NOTE if answer.kind == AnswerKind.EXTRACTIVE else None
        # Before the post: a reply that comes the moment the answer shows is a follow-up.
        self.threads.remember(job.channel, job.thread_ts)
        self._post(
            job,
            text=blocks.answer_fallback_text(answer.text, answer.citations),
            message_blocks=blocks.answer_blocks(
                answer.text, answer.citations, answer_id=job.job_id, note=note
            ),
            guard=guard,
        )
        log.info(
            "answer posted for job %s (%s%s)",
            job.job_id,
            answer.kind.value,
            ", cached" if answer.cached else "",
            extra={"job_id": job.job_id, "kind": answer.kind.value, "cached": answer.cached},
        )

    def post_text(
        self, job: AskJob, text: str, *, guard: PostGuard, retry_window_s: float | None = None
    ) -> None:
        """A short message instead of an answer (the job's one message all the same);
        ``retry_window_s`` bounds Slack retries (0: one try, for a best-effort word)."""
        self._post(
            job,
            text=text,
            message_blocks=blocks.error_blocks(text),
            guard=guard,
            retry_window_s=retry_window_s,
        )

    def _post(
        self,
        job: AskJob,
        *,
        text: str,
        message_blocks: list[dict],
        guard: PostGuard,
        retry_window_s: float | None = None,
    ) -> None:
        self.poster.post(
            job_id=job.job_id,
            channel=job.channel,
            thread_ts=job.thread_ts,
            text=text,
            blocks=message_blocks,
            guard=guard,
            retry_window_s=retry_window_s,
        )
        if text != SEARCH_DOWN_RETRYING:  # still working on it: the :eyes: stay
            self.poster.unreact(job.channel, job.message_ts)


def user_message(error: Exception) -> str:
    """What to tell the asker about an error; details stay in the logs."""
    if isinstance(error, InputError):
        return str(error)
    if isinstance(error, IndexNotFoundError):
        return NOT_INDEXED
    if isinstance(error, IndexMismatchError):
        return INDEX_MISMATCH
    if isinstance(error, GenerationError):
        return LLM_BUSY if error.busy else LLM_DOWN
    return UNEXPECTED
