"""An answer streamed into its thread as the chat model writes it.

``chat.startStream`` opens the reply with the first words, ``chat.appendStream`` adds
what came since at most once per :data:`APPEND_INTERVAL_S` (Slack rate-limits the
method; text is buffered meanwhile), ``chat.stopStream`` closes it with the sources and
buttons. The stream is a preview: the finished answer is then written over it by
:class:`~bot.posting.ThreadPoster` (``chat.update``), so what stays in the thread is
always the whole answer, cited and checked, whatever happened to the stream.

The job ledger learns the stream's ts the moment it exists (``mark_posting`` before,
``record_posted`` after ``chat.startStream``): a worker killed mid-stream leaves a
half-written message that the next delivery of the job finds and completes, instead of
posting a second answer.

When Slack refuses the stream (no streaming in that conversation, the stream expired
with ``message_not_in_streaming_state``, any other error) the stream just stops being
written to; the answer is then posted or written over the half stream as usual.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.jobs import QueueUnavailableError
from bot.ledger import JobLedger
from bot.posting import PostGuard, answer_metadata
from bot.slack_markdown import StreamGuard
from bot.slack_retry import classify, slack_error_code

log = logging.getLogger(__name__)

APPEND_INTERVAL_S = 1.0
"""At most one ``chat.appendStream`` a second per stream, whatever the token rate."""
MAX_STREAM_CHARS = 11_000
"""Text streamed at most (Slack takes 12,000 per call); the rest comes with the update."""
MAX_TRANSIENT_FAILURES = 3


@dataclass(slots=True)
class AnswerStream:
    """Streams one job's answer into ``thread_ts``; feed it with :meth:`write`.

    ``recipient_user_id``/``recipient_team_id`` are the asker's: Slack wants them for
    streams outside DMs. Not thread-safe: one job, one thread.
    """

    client: WebClient
    ledger: JobLedger
    guard: PostGuard
    job_id: str
    channel: str
    thread_ts: str
    recipient_user_id: str
    recipient_team_id: str
    on_start: Callable[[], None] | None = None  # called once the stream exists in Slack
    interval_s: float = APPEND_INTERVAL_S
    clock: Callable[[], float] = time.monotonic
    ts: str | None = None
    first_text_time: float | None = None  # Unix time the first words reached Slack
    broken: str = ""  # why the stream stopped being written to ("" while it works)
    streamed_chars: int = 0
    _buffer: str = ""
    _next_at: float = 0.0
    _failures: int = 0
    _safe: StreamGuard = field(default_factory=StreamGuard)

    def write(self, text: str) -> None:
        """Add model text; sends it when the interval allows. Raises
        :class:`~bot.jobs.LeaseLost` when the job is no longer this worker's."""
        if self.broken:
            return
        self._buffer += self._safe.feed(text)
        if self._buffer.strip() and self.clock() >= self._next_at:
            self._send()

    def finish(self, *, blocks: list[dict[str, Any]]) -> bool:
        """Close the stream with the rest of the text, ``blocks`` at the bottom and the
        job's metadata. True when the stream was closed cleanly."""
        if self.broken or self.ts is None:
            return False
        self._buffer += self._safe.flush()
        self._send()
        if self.broken or self.ts is None:
            return False
        text, self._buffer = self._room(self._buffer), ""
        try:
            self.client.chat_stopStream(
                channel=self.channel,
                ts=self.ts,
                markdown_text=text or None,
                blocks=blocks,
                metadata=answer_metadata(self.job_id),
            )
        except Exception as error:
            self._break(error)
            return False
        return True

    def _send(self) -> None:
        if not self._buffer.strip() and self.ts is not None:
            return
        self.guard.check()
        text = self._room(self._buffer)
        try:
            if self.ts is None:
                if not text.strip():
                    return
                self._start(text)
            elif text:
                self.client.chat_appendStream(channel=self.channel, ts=self.ts, markdown_text=text)
        except Exception as error:
            verdict = classify(error)
            if verdict is None or isinstance(error, QueueUnavailableError):
                self._break(error)  # the ledger is down: no stream it cannot account for
                return
            if verdict.retry and self._failures < MAX_TRANSIENT_FAILURES:
                self._failures += 1
                self._next_at = self.clock() + max(self.interval_s, verdict.wait_s or 0.0)
                return
            self._break(error)
            return
        self._failures = 0
        self.streamed_chars += len(text)
        self._buffer = ""
        self._next_at = self.clock() + self.interval_s

    def _start(self, text: str) -> None:
        self.ledger.mark_posting(self.job_id)
        response = self.client.chat_startStream(
            channel=self.channel,
            thread_ts=self.thread_ts,
            markdown_text=text,
            recipient_user_id=self.recipient_user_id or None,
            recipient_team_id=self.recipient_team_id or None,
        )
        self.ts = str(response["ts"])
        self.first_text_time = time.time()
        self.ledger.record_posted(self.job_id, self.ts)
        if self.on_start is not None:
            self.on_start()

    def _room(self, text: str) -> str:
        """``text`` cut to what may still be streamed (the update shows the rest)."""
        return text[: max(0, MAX_STREAM_CHARS - self.streamed_chars)]

    def _break(self, error: Exception) -> None:
        code = slack_error_code(error) if isinstance(error, SlackApiError) else repr(error)
        self.broken = code or "error"
        self._buffer = ""
        log.info("streaming job %s stopped (%s); the answer is posted whole", self.job_id, code)
