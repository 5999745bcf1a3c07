"""Polite HTTP for crawling: paced request starts, capped and timed bodies, conditional
GETs, pages re-encoded to UTF-8, and one-line reasons for failures."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.request import OpenerDirector, Request
from urllib.robotparser import RobotFileParser

from rag_core.sources.sitemap_xml import MAX_BYTES

META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([\w-]+)""", re.IGNORECASE)
FETCH_ERRORS = (OSError, HTTPException, ValueError)
"""What a request raises for a network failure, a timeout or an oversized body."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    headers: Message


class Pacer:
    """Spaces request starts ``interval_s`` apart across threads (robots.txt Crawl-delay)."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        if self._interval_s <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval_s
        time.sleep(start - now)


def get(
    opener: OpenerDirector,
    url: str,
    *,
    user_agent: str,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """GET ``url``: any HTTP status is returned; network failures, timeouts and bodies
    over :data:`MAX_BYTES` raise one of :data:`FETCH_ERRORS`."""
    request = Request(url, headers={"User-Agent": user_agent, **(headers or {})})
    deadline = time.monotonic() + timeout_s
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return Response(response.status, read_capped(response, deadline), response.headers)
    except HTTPError as error:
        error.close()
        return Response(error.code, b"", error.headers)


def conditional_headers(validators: Mapping[str, str]) -> dict[str, str]:
    headers = {
        "If-None-Match": validators.get("etag"),
        "If-Modified-Since": validators.get("last_modified"),
    }
    return {name: value for name, value in headers.items() if value}


def validators_of(headers: Message) -> dict[str, str]:
    found = {"etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified")}
    return {name: value for name, value in found.items() if value}


def crawl_delay_s(robots: RobotFileParser, user_agent: str) -> float:
    """Seconds between request starts that robots.txt asks for (0 when it asks nothing)."""
    delay = float(robots.crawl_delay(user_agent) or 0)
    rate = robots.request_rate(user_agent)
    if rate and rate.requests:
        delay = max(delay, rate.seconds / rate.requests)
    return delay


def read_capped(response: io.BufferedIOBase, deadline: float) -> bytes:
    """Read a body in chunks so a trickling server still hits the timeout and size cap."""
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read(65536):
        size += len(chunk)
        if size > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES // 1024 // 1024} MB")
        if time.monotonic() > deadline:
            raise TimeoutError("timed out")
        chunks.append(chunk)
    return b"".join(chunks)


def as_utf8(body: bytes, charset: str | None) -> bytes:
    """The page re-encoded as UTF-8 (the indexer reads files as UTF-8)."""
    if not charset and (match := META_CHARSET.search(body[:4096])):
        charset = match.group(1).decode("ascii")
    try:
        return body.decode(charset or "utf-8").encode("utf-8")
    except (LookupError, UnicodeDecodeError):
        return body.decode("utf-8", "replace").encode("utf-8")


def failure_reason(error: BaseException, timeout_s: float) -> str:
    """A short, one-line reason for a failed request."""
    cause = error.reason if isinstance(error, URLError) else error
    if isinstance(cause, TimeoutError):
        return f"timed out after {timeout_s:g} s"
    return str(cause).splitlines()[0] if str(cause) else type(cause).__name__
