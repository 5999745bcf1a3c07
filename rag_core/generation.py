"""Answers written by an OpenAI-compatible chat model, with numbered citations.

:func:`build_openai_client` is called once at start-up; the client's own retry
loop (exponential backoff with jitter, honouring ``Retry-After`` and
``retry-after-ms``) repeats requests that time out, fail to connect, or get
HTTP 408, 409, 429 or 5xx. :class:`ChatGenerator` turns what is left after
those retries into a one-line :class:`~rag_core.errors.GenerationError`.

When no model is configured, :mod:`rag_core.offline_answers` quotes the best
passages instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai

from rag_core.citations import extract_citations
from rag_core.errors import ConfigError, GenerationError, InputError
from rag_core.offline_answers import GeneratedAnswer
from rag_core.prompts import Message, answer_messages, condense_messages
from rag_core.query_translation import (
    TRANSLATE_MAX_TOKENS,
    clean_translation,
    translation_messages,
)
from rag_core.types import ScoredChunk, Turn

__all__ = [
    "BUSY_MESSAGE",
    "ChatGenerator",
    "GeneratedAnswer",
    "build_openai_client",
    "extract_citations",
]

log = logging.getLogger(__name__)

LIMIT_PARAMS = ("max_completion_tokens", "max_tokens")
"""Names of the reply's token limit, preferred first (newer OpenAI models refuse the
second; some older OpenAI-compatible servers do not know the first)."""

TextSink = Callable[[str], None]
"""Receives an answer's text piece by piece as the model streams it."""

OPENAI_BASE_URL = "https://api.openai.com/v1"
LOCAL_API_KEY = "not-needed"
"""Sent when only a base URL is set: local OpenAI-compatible servers ignore the key."""

BUSY_MESSAGE = "The answer service is busy; try again in a minute."
CONDENSE_MAX_TOKENS = 200

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_THINKING = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)
_KEY_LIKE = re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9*_.\-]{4,}")


def build_openai_client(
    *, api_key: str, base_url: str, timeout_s: float, max_retries: int
) -> openai.OpenAI:
    """An ``openai.OpenAI`` client for OpenAI itself or any compatible server.

    ``timeout_s`` bounds each attempt (connect, read and write, in seconds);
    ``max_retries`` is how many times the client repeats a failed attempt. An
    empty ``base_url`` means OpenAI; an empty ``api_key`` with a base URL sends a
    placeholder. Nothing is read from the environment and no request is made.
    """
    if not api_key and not base_url:
        raise ConfigError("Set OPENAI_API_KEY or RAGBOT_LLM_BASE_URL to use a language model.")
    if base_url and not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"RAGBOT_LLM_BASE_URL must start with http:// or https://: {base_url!r}.")
    if timeout_s <= 0:
        raise ConfigError(f"RAGBOT_LLM_TIMEOUT_S must be positive, not {timeout_s}.")
    if max_retries < 0:
        raise ConfigError(f"RAGBOT_LLM_MAX_RETRIES must be 0 or more, not {max_retries}.")
    return openai.OpenAI(
        api_key=api_key or LOCAL_API_KEY,
        base_url=base_url or OPENAI_BASE_URL,
        timeout=timeout_s,
        max_retries=max_retries,
    )


class ChatGenerator:
    """Writes cited answers and standalone follow-up questions with a chat model.

    Each call is one Chat Completions request (plus the client's retries); the
    client is shared and thread-safe, so one generator serves every worker thread.
    """

    def __init__(
        self,
        client: openai.OpenAI,
        *,
        model: str,
        temperature: float = 0.1,
        max_tokens: int = 800,
    ) -> None:
        if not model.strip():
            raise ConfigError("RAGBOT_LLM_MODEL is empty; name the chat model to use.")
        if not 0.0 <= temperature <= 2.0:
            raise ConfigError(f"The LLM temperature must be between 0 and 2, not {temperature}.")
        if max_tokens < 1:
            raise ConfigError(f"The LLM max_tokens must be at least 1, not {max_tokens}.")
        self.client = client
        self.model = model.strip()
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._limit_param = LIMIT_PARAMS[0]  # switched once if the server refuses it

    @property
    def base_url(self) -> str:
        """The server's URL without credentials, query or trailing slash, for messages and logs."""
        parts = urlsplit(str(self.client.base_url))
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))

    def answer(
        self,
        question: str,
        passages: Sequence[ScoredChunk],
        *,
        history: Sequence[Turn] = (),
        on_text: TextSink | None = None,
    ) -> GeneratedAnswer:
        """Answer ``question`` from ``passages`` (numbered from 1 in the prompt), citing them.

        ``history`` is the earlier conversation, oldest first; the most recent turns
        that fit a budget are sent. With ``on_text`` the reply is streamed: each piece
        of text is passed to it as the model writes it (a leading ``<think>`` block left
        out), and whatever ``on_text`` raises ends the request and propagates. The
        returned answer is the whole reply with its citation markers renumbered (see
        :func:`extract_citations`), so it may differ from the streamed text there.
        Raises :class:`GenerationError` when the model fails, mid-stream included, or
        returns nothing, :class:`InputError` for an empty question.
        """
        if not question.strip():
            raise InputError("The question is empty.")
        messages = answer_messages(question, passages, history)
        if on_text is None:
            text = self._complete(
                messages, temperature=self.temperature, max_tokens=self.max_tokens
            )
        else:
            text = self._stream(messages, on_text)
        if not text:
            raise GenerationError(
                f"The language model {self.model} at {self.base_url} returned an empty answer."
            )
        text, citations, cited = extract_citations(text, passages)
        return GeneratedAnswer(text=text, citations=citations, passages=cited)

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        """Rewrite a follow-up (``"and on Windows?"``) as a question that stands alone.

        Returns ``question`` unchanged, without a request, when ``history`` is empty,
        and also when the model's reply is empty. Raises :class:`GenerationError`.
        """
        if not any(turn.text.strip() for turn in history):
            return question
        messages = condense_messages(question, history)
        reply = self._complete(messages, temperature=0.0, max_tokens=CONDENSE_MAX_TOKENS)
        return _clean_rewrite(reply) or question

    def translate_query(self, question: str, language: str) -> str:
        """``question`` rewritten into ``language`` for searching docs written in it
        (code and identifiers kept as written); one short request at temperature 0.
        An empty reply gives ``""``. Raises :class:`GenerationError`."""
        if not question.strip():
            raise InputError("The question is empty.")
        messages = translation_messages(question, language)
        reply = self._complete(messages, temperature=0.0, max_tokens=TRANSLATE_MAX_TOKENS)
        return clean_translation(reply)

    def _complete(self, messages: list[Message], *, temperature: float, max_tokens: int) -> str:
        """One chat completion; the reply text with any leading ``<think>`` block removed."""
        try:
            completion = self._create(messages, temperature=temperature, limit=max_tokens)
        except openai.APIError as error:
            raise self._error(error) from error
        if not completion.choices:
            return ""
        choice = completion.choices[0]
        if choice.finish_reason == "length":
            log.warning("Answer from %s was cut at max_tokens=%d", self.model, max_tokens)
        return _THINKING.sub("", choice.message.content or "").strip()

    def _stream(self, messages: list[Message], on_text: TextSink) -> str:
        """One streamed chat completion; ``on_text`` gets the visible text piece by piece."""
        visible = ThinkingFilter()
        pieces: list[str] = []
        refused: list[BaseException] = []  # what on_text raised: not the model's fault

        def emit(text: str) -> None:
            if text:
                pieces.append(text)
                try:
                    on_text(text)
                except BaseException as error:
                    refused.append(error)
                    raise

        finish = None
        try:
            stream = self._create(
                messages, temperature=self.temperature, limit=self.max_tokens, stream=True
            )
            with stream:
                for chunk in stream:
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    finish = choice.finish_reason or finish
                    emit(visible.feed(choice.delta.content or ""))
        except openai.APIError as error:
            raise self._error(error) from error
        except Exception as error:  # the connection broke mid-stream, or on_text failed
            if refused and error is refused[0]:
                raise
            raise GenerationError(
                f"The language model {self.model} at {self.base_url} stopped mid-answer "
                f"({type(error).__name__})."
            ) from error
        if finish is None:  # the server closed the stream without saying it was done
            raise GenerationError(
                f"The language model {self.model} at {self.base_url} stopped mid-answer."
            )
        emit(visible.close())
        if finish == "length":
            log.warning("Answer from %s was cut at max_tokens=%d", self.model, self.max_tokens)
        return "".join(pieces).strip()

    def _create(
        self, messages: list[Message], *, temperature: float, limit: int, stream: bool = False
    ) -> Any:
        """``chat.completions.create`` with the reply's token limit under the name the
        server takes: ``max_completion_tokens``, which newer OpenAI models require, or,
        once a server has refused it, the older ``max_tokens``."""
        param = self._limit_param
        request: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": temperature,
            **({"stream": True} if stream else {}),
        }
        try:
            return self.client.chat.completions.create(**request, **{param: limit})
        except openai.BadRequestError as error:
            if getattr(error, "param", None) != param and param not in str(error.message):
                raise
            older = next(name for name in LIMIT_PARAMS if name != param)
            log.info("%s refuses %s; sending %s instead", self.base_url, param, older)
            self._limit_param = older
            return self.client.chat.completions.create(**request, **{older: limit})

    def _timeout_s(self) -> float:
        """Seconds each attempt may take, from the client (a number or an httpx timeout)."""
        timeout = self.client.timeout
        seconds = getattr(timeout, "read", timeout)
        return float(seconds) if isinstance(seconds, int | float) else float("inf")

    def _error(self, error: openai.APIError) -> GenerationError:
        """A one-line, user-facing error that names the model and server, never the key."""
        where = f"{self.model} at {self.base_url}"
        detail = _summarise(error, secret=self.client.api_key)
        if isinstance(error, openai.RateLimitError):
            if error.code == "insufficient_quota":
                return GenerationError(f"The language model {where} is out of quota: {detail}")
            return GenerationError(BUSY_MESSAGE, busy=True)
        if isinstance(error, openai.APITimeoutError):
            return GenerationError(
                f"The language model {where} timed out after {self._timeout_s():g} s."
            )
        if isinstance(error, openai.APIConnectionError):
            return GenerationError(f"Could not connect to the language model {where}.")
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            if status >= 500:
                return GenerationError(
                    f"The language model {where} failed with HTTP {status}; try again later."
                )
            if status in (401, 403):
                return GenerationError(
                    f"The language model server at {self.base_url} refused the API key "
                    f"(HTTP {status}): {detail}"
                )
            if status == 404:
                return GenerationError(
                    f"The model {self.model} was not found at {self.base_url} (HTTP 404): {detail}"
                )
            return GenerationError(
                f"The language model {where} rejected the request (HTTP {status}): {detail}"
            )
        return GenerationError(f"The language model {where} sent an unusable reply: {detail}")


class ThinkingFilter:
    """Leaves a leading ``<think>…</think>`` block (and the blank space after it) out of
    streamed text, as :data:`_THINKING` does for a whole reply; text is held back only
    while it could still be the start of such a block."""

    def __init__(self) -> None:
        self._held = ""
        self._state = "start"  # "start" → "thinking" → "text"

    def feed(self, text: str) -> str:
        """The part of ``text`` (after what came before) that is visible answer text."""
        if self._state == "text":
            return text
        self._held += text
        if self._state == "start":
            opening = self._held.lstrip()
            if opening.startswith(THINK_OPEN):
                self._state = "thinking"
            elif THINK_OPEN.startswith(opening):
                return ""  # maybe "<thi…": wait for more
            else:
                self._state, held, self._held = "text", self._held, ""
                return held.lstrip()
        end = self._held.find(THINK_CLOSE)
        if end < 0:
            return ""
        rest = self._held[end + len(THINK_CLOSE) :].lstrip()
        self._held = ""
        if rest:
            self._state = "text"
        else:
            self._state = "start"  # only blank space so far after the block
        return rest

    def close(self) -> str:
        """What is still held when the reply ends (an unfinished block is dropped)."""
        held, self._held = self._held, ""
        visible = self._state == "start" and not held.lstrip().startswith(THINK_OPEN)
        return held.lstrip() if visible else ""


def _clean_rewrite(reply: str) -> str:
    """The first non-empty line of a rewrite, without a label or surrounding quotes."""
    line = next((line.strip() for line in reply.splitlines() if line.strip()), "")
    line = re.sub(r"^(standalone question|question)\s*:\s*", "", line, flags=re.IGNORECASE)
    return line.strip().strip("\"'“”«»").strip()


def _summarise(error: openai.APIError, *, secret: str) -> str:
    """The server's own error message on one line, at most 200 characters, keys masked."""
    body = error.body
    message = body.get("message") if isinstance(body, dict) else body
    if not isinstance(message, str) or not message.strip():
        message = error.message
    message = " ".join(message.split())
    if len(secret) >= 4:
        message = message.replace(secret, "***")
    message = _KEY_LIKE.sub(r"\1-***", message)
    if len(message) > 200:
        message = message[:199].rstrip() + "…"
    return message if message.endswith((".", "!", "?", "…")) else f"{message}."
