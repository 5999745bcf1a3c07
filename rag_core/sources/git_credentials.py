"""Git credentials: which HTTPS token a source gets, and credentials in URLs.

``RAGBOT_GIT_TOKEN`` is read per host (:class:`GitTokens`).
The setting is either one token, sent to the host of every HTTPS git source (an install
whose private repositories live on one host), or ``host=token`` pairs separated by
commas, so that each host gets its own token and no host gets another's::

    RAGBOT_GIT_TOKEN=github.com=ghp_abc,gitlab.example.com:8443=glpat-def

A pair's host matches the URL's host (any port), or host and port when it names one.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rag_core.errors import ConfigError

DEFAULT_TOKEN_USER = "x-access-token"  # GitHub's name; GitLab and Gitea accept any user
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
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
        if not is_http(url):
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


def split_credentials(url: str) -> tuple[str, str, str]:
    """(URL git is given, user, password): an HTTPS password is taken out of the URL.

    A local path becomes absolute, so it matches what ``git clone`` records as origin.
    """
    if "://" not in url:
        if re.match(r"[^/]*:", url):  # scp-like user@host:path
            return url, "", ""
        return str(Path(url).expanduser().resolve()), "", ""
    parts = urlsplit(url)
    if not is_http(url) or parts.password is None:
        return url, parts.username or "", ""
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), parts.username or "", parts.password


def basic_auth_header(user: str, secret: str) -> str:
    """``Basic ...`` for ``secret`` (a token or password) sent as ``user`` (default:
    :data:`DEFAULT_TOKEN_USER`)."""
    return "Basic " + base64.b64encode(f"{user or DEFAULT_TOKEN_USER}:{secret}".encode()).decode()


def is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def http_origin(url: str) -> str:
    """``scheme://host[:port]/``: the extra header is sent to this host only."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme.lower()}://{netloc}/"


def strip_userinfo(text: str) -> str:
    """Remove ``user:password@`` from every URL in ``text``."""
    return _URL_USERINFO.sub("", text)
