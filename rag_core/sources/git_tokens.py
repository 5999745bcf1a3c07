"""Which HTTPS token a git source gets: ``RAGBOT_GIT_TOKEN`` read per host.

The setting is either one token, sent to the host of every HTTPS git source (an install
whose private repositories live on one host), or ``host=token`` pairs separated by
commas, so that each host gets its own token and no host gets another's::

    RAGBOT_GIT_TOKEN=github.com=ghp_abc,gitlab.example.com:8443=glpat-def

A pair's host matches the URL's host (any port), or host and port when it names one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from rag_core.errors import ConfigError

_PAIR = re.compile(
    r"\s*(?P<host>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|localhost)(?::(?P<port>\d+))?=(?P<token>.*)"
)


@dataclass(frozen=True, slots=True)
class GitTokens:
    """The parsed setting: one token for every host, or a token per host."""

    every_host: str = ""
    per_host: tuple[tuple[str, int | None, str], ...] = ()  # (host, port or None, token)

    @classmethod
    def parse(cls, setting: str) -> GitTokens:
        """Read the setting; a pair with an empty token is a :class:`ConfigError`."""
        text = setting.strip()
        parts = text.split(",")
        pairs = [_PAIR.fullmatch(part) for part in parts]
        if not text or not all(pairs):
            return cls(every_host=text)  # one token (which may itself hold "=")
        per_host = []
        for match in pairs:
            assert match is not None
            token = match["token"].strip()
            if not token:
                raise ConfigError(
                    f"RAGBOT_GIT_TOKEN gives {match['host']} an empty token; "
                    "write host=token pairs separated by commas."
                )
            port = int(match["port"]) if match["port"] else None
            per_host.append((match["host"].lower(), port, token))
        return cls(per_host=tuple(per_host))

    def for_url(self, url: str) -> str:
        """The token to send to ``url``'s host; "" for none (or a URL that is not HTTPS)."""
        if not url.lower().startswith(("http://", "https://")):
            return ""
        if self.every_host:
            return self.every_host
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        for pair_host, port, token in self.per_host:
            if pair_host == host and port in (None, parts.port):
                return token
        return ""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every token, for redaction."""
        return tuple(t for t in (self.every_host, *(p[2] for p in self.per_host)) if t)
