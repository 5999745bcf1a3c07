"""Slack Web API calls that outlast Slack's bad minutes, without re-running the pipeline.

A worker that has an answer keeps it: a 429 (after its ``Retry-After``), a 5xx or a
network error is retried in the worker, with exponential backoff, for up to a window
(``RAGBOT_SLACK_RETRY_WINDOW_S``) while the job's lease is kept; then
:class:`SlackUnavailable` tells the worker to put the job back on the queue. Any other
Slack error (``not_in_channel``, ``invalid_blocks``, ``token_revoked``...) will not
get better by trying again: :class:`SlackRejected` at once.

This is the only retry layer on the worker's side: the worker's ``WebClient`` has no
retry handlers of its own (:func:`without_sdk_retries`), so the two never multiply, and
a post that may have landed is looked for before it is sent again (see
:mod:`bot.posting`).
"""

from __future__ import annotations

import copy
import http.client
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
"""Error codes Slack answers with HTTP 200 that still mean "try again later"."""
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    URLError,
    TimeoutError,  # socket.timeout
    ConnectionError,
    http.client.HTTPException,
)
BASE_DELAY_S = 1.0
MAX_DELAY_S = 30.0


class SlackUnavailable(Exception):
    """Slack kept failing (429, 5xx, network) for the whole retry window: retry the job
    later through the queue. ``wait_s``: the wait, in seconds, that would have come
    before the next try (Slack's ``Retry-After`` when it sent one, else the backoff's
    delay); the job should not run again sooner."""

    def __init__(self, method: str, reason: str, *, wait_s: float) -> None:
        super().__init__(f"Slack {method} kept failing: {reason}")
        self.method = method
        self.reason = reason
        self.wait_s = wait_s


class SlackRejected(Exception):
    """Slack refused the call for good (``error`` is its code): do not retry the job."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"Slack {method} refused: {error}")
        self.method = method
        self.error = error


@dataclass(frozen=True, slots=True)
class Verdict:
    """How to treat one failed call: ``retry`` or not, after ``wait_s`` (Slack's own
    ``Retry-After``) or the backoff's delay when ``None``."""

    retry: bool
    reason: str
    wait_s: float | None = None


def slack_error_code(error_or_response: SlackApiError | SlackResponse | Any) -> str:
    """The ``error`` code of a failed Slack call (from the ``SlackApiError`` or its
    response), else ``http_{status}`` when the body has none."""
    response = (
        error_or_response.response
        if isinstance(error_or_response, SlackApiError)
        else error_or_response
    )
    data = getattr(response, "data", response)
    code = data.get("error") if isinstance(data, dict) else None
    if code:
        return str(code)
    return f"http_{getattr(response, 'status_code', None) or 0}"


def classify(error: BaseException) -> Verdict | None:
    """The verdict on ``error`` raised by a ``WebClient`` call; ``None`` when it is no
    Slack or network error at all (a bug: let it surface)."""
    if isinstance(error, SlackApiError):
        status = int(getattr(error.response, "status_code", 200) or 200)
        code = slack_error_code(error)
        if status == 429 or code == "ratelimited":
            return Verdict(True, "ratelimited", _retry_after(error))
        if status >= 500 or code in TRANSIENT_ERRORS:
            return Verdict(True, f"{code} (HTTP {status})")
        return Verdict(False, code)
    if isinstance(error, NETWORK_ERRORS):
        return Verdict(True, f"{type(error).__name__}: {error}")
    return None


def _retry_after(error: SlackApiError) -> float | None:
    headers = getattr(error.response, "headers", None) or {}
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


class SlackRetry:
    """Runs a Slack call again on transient failures for up to ``window_s`` seconds.

    ``base_delay_s`` doubles per attempt up to ``max_delay_s`` (with jitter); a 429's
    ``Retry-After`` replaces it. A wait that would end past the window gives up at once.
    """

    def __init__(
        self,
        *,
        window_s: float,
        base_delay_s: float = BASE_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
    ) -> None:
        if window_s < 0 or base_delay_s <= 0 or max_delay_s < base_delay_s:
            raise ValueError("SlackRetry needs window_s >= 0 and 0 < base_delay_s <= max_delay_s")
        self.window_s = window_s
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s

    def call(
        self,
        method: str,
        action: Callable[[], T],
        *,
        before_attempt: Callable[[], object] | None = None,
        wait: Callable[[float], object] | None = None,
        window_s: float | None = None,
    ) -> T:
        """``action()``'s result. ``before_attempt`` runs before every try (the lease check:
        it raises to stop); ``wait`` sleeps between tries (default ``time.sleep``).

        Raises :class:`SlackRejected` or :class:`SlackUnavailable`; other errors pass.
        """
        window = self.window_s if window_s is None else window_s
        deadline = time.monotonic() + window
        sleep = time.sleep if wait is None else wait
        attempt = 0
        while True:
            if before_attempt is not None:
                before_attempt()
            try:
                return action()
            except Exception as error:
                verdict = classify(error)
                if verdict is None:
                    raise
                if not verdict.retry:
                    raise SlackRejected(method, verdict.reason) from error
                attempt += 1
                delay = self._delay(attempt) if verdict.wait_s is None else verdict.wait_s
                if time.monotonic() + delay > deadline:
                    raise SlackUnavailable(method, verdict.reason, wait_s=delay) from error
                log.warning(
                    "Slack %s failed (%s); try %d again in %.1f s",
                    method,
                    verdict.reason,
                    attempt + 1,
                    delay,
                    extra={"method": method, "attempt": attempt},
                )
            sleep(delay)

    def _delay(self, attempt: int) -> float:
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return ceiling * random.uniform(0.75, 1.0)


def without_sdk_retries(client: WebClient) -> WebClient:
    """A copy of ``client`` (same class, token, URL, metering) without retry handlers:
    :class:`SlackRetry` decides alone, and never re-sends a post blindly after an
    ambiguous failure."""
    clone = copy.copy(client)
    clone.retry_handlers = []
    return clone
