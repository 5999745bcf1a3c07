"""A website's pages, listed by its ``sitemap.xml``, mirrored as HTML files for the indexer.

:class:`SitemapSource` reads the sitemap (or a sitemap index and the sitemaps it names, one
level deep), keeps the pages on the sitemap's own host that match the ``include`` and
``exclude`` globs, and downloads them politely: robots.txt is honoured (``Crawl-delay``
and ``Request-rate`` too), at most ``concurrency`` requests run at a time, each under a
timeout, and with ETag/Last-Modified kept from the last sync pages come back as 304 when
the server supports it. Pages land under ``cache_dir/pages/`` as UTF-8 ``.html`` files
(``/docs/`` -> ``docs/index.html``, ``/docs/a`` -> ``docs/a.html``).

A page that cannot be fetched does not fail the sync: it is reported in
:attr:`SiteSnapshot.failed`. A page answering 404/410, a non-HTML page or one robots.txt
forbids has its stored copy removed; after a timeout, a network error or another status
the copy from the previous sync is kept (and still listed in ``urls``), so a flaky server
does not empty the index. Only when no page at all could be read does the sync raise.

Sitemaps are parsed by :mod:`rag_core.sources.sitemap_xml`, which refuses DOCTYPE and
ENTITY declarations.
"""

from __future__ import annotations

import json
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from urllib.parse import unquote, urlsplit, urlunsplit
from urllib.request import build_opener
from urllib.robotparser import RobotFileParser

from rag_core.ingest.globs import PathFilter
from rag_core.sources.errors import SourceError
from rag_core.sources.polite_http import (
    FETCH_ERRORS,
    Pacer,
    Response,
    as_utf8,
    conditional_headers,
    crawl_delay_s,
    failure_reason,
    get,
    validators_of,
)
from rag_core.sources.sitemap_xml import (
    local_name,
    page_path,
    parse_sitemap,
    sitemap_locs,
)

log = logging.getLogger(__name__)

_STATE_FILE = "sitemap_state.json"
_PAGES_DIR = "pages"
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
DISALLOWED = "disallowed by robots.txt"


@dataclass(frozen=True, slots=True)
class SiteSnapshot:
    """What one :meth:`SitemapSource.sync` left in ``root``, and how it got there.

    ``fetched`` counts pages downloaded (200) whose content is new or changed, so it equals
    ``len(changed)``; ``unchanged`` counts pages answered 304 or downloaded with identical
    bytes. A page kept from an earlier sync after a transient failure is in ``urls`` and
    in ``failed`` but in neither count.
    """

    root: Path
    urls: Mapping[str, str]
    changed: frozenset[str]
    deleted: frozenset[str]
    fetched: int
    unchanged: int
    failed: tuple[tuple[str, str], ...]
    seconds: float


class _Outcome(StrEnum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    KEPT = "kept"  # failed now, the previous copy stays
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class _Page:
    url: str
    path: str
    outcome: _Outcome
    reason: str = ""
    validators: Mapping[str, str] = field(default_factory=dict)


class SitemapSource:
    """Mirrors the pages a sitemap lists into ``cache_dir/pages``; see the module docstring.

    ``include``/``exclude`` are globs on the decoded URL path, as for folders
    (:mod:`rag_core.ingest.globs`): ``/docs/**`` keeps ``/docs/`` and all below it.
    ``cache_dir`` belongs to this source: it holds the pages and a JSON state file with
    each page's ETag and Last-Modified.
    """

    def __init__(
        self,
        sitemap_url: str,
        *,
        cache_dir: Path,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        max_pages: int = 5000,
        concurrency: int = 4,
        timeout_s: float = 20.0,
        user_agent: str = "ragbot (+https://github.com/ragbot)",
    ) -> None:
        parts = urlsplit(sitemap_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceError(
                f"The sitemap URL {sitemap_url!r} is not an http(s) address; give the full "
                "URL of the site's sitemap.xml, e.g. https://example.com/sitemap.xml."
            )
        for name, value in (("max_pages", max_pages), ("concurrency", concurrency)):
            if value < 1:
                raise SourceError(f"{name} for {sitemap_url} is {value}; set it to 1 or more.")
        if timeout_s <= 0:
            raise SourceError(f"timeout_s for {sitemap_url} is {timeout_s}; set it above 0.")
        self._sitemap_url = sitemap_url
        self._site = (parts.hostname, parts.port)
        self._cache_dir = cache_dir
        self._pages_dir = cache_dir / _PAGES_DIR
        self._paths = PathFilter.of(include, exclude)
        self._max_pages = max_pages
        self._concurrency = concurrency
        self._timeout_s = timeout_s
        self._user_agent = user_agent
        self._opener = build_opener()

    def sync(self, progress: Callable[[int, int], None] | None = None) -> SiteSnapshot:
        """Bring ``cache_dir/pages`` up to date with the site; ``progress(done, total)``.

        Raises :class:`SourceError` when robots.txt or the sitemap cannot be read, the
        sitemap lists no usable page, or every page failed; the files are then untouched.
        """
        started = time.monotonic()
        robots = self._robots()
        plan, skipped = self._plan(self._listed_urls(), robots)
        pages = self._fetch_all(plan, robots, progress)
        failed = [*skipped, *((page.url, page.reason) for page in pages if page.reason)]
        if not any(page.outcome in (_Outcome.CHANGED, _Outcome.UNCHANGED) for page in pages):
            url, reason = failed[0]
            raise SourceError(
                f"No page listed by the sitemap {self._sitemap_url} could be fetched "
                f"({len(failed)} failed, e.g. {url}: {reason}); check that the site is up "
                "and that robots.txt and include/exclude leave pages to read."
            )
        kept = [page for page in pages if page.outcome != _Outcome.FAILED]
        urls = {page.path: page.url for page in sorted(kept, key=lambda page: page.path)}
        deleted = self._remove_others(urls.keys())
        self._save_state(kept)
        changed = frozenset(page.path for page in pages if page.outcome == _Outcome.CHANGED)
        return SiteSnapshot(
            root=self._pages_dir,
            urls=MappingProxyType(urls),
            changed=changed,
            deleted=deleted,
            fetched=len(changed),
            unchanged=sum(page.outcome == _Outcome.UNCHANGED for page in pages),
            failed=tuple(failed),
            seconds=time.monotonic() - started,
        )

    def _robots(self) -> RobotFileParser:
        """Read robots.txt as RFC 9309 says: 4xx allows all, 401/403 forbids, 5xx waits."""
        parts = urlsplit(self._sitemap_url)
        url = urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))
        robots = RobotFileParser(url)
        try:
            response = self._get(url)
        except FETCH_ERRORS as error:
            raise SourceError(
                f"{url} could not be read ({failure_reason(error, self._timeout_s)}); "
                "check that the site is reachable and try again."
            ) from error
        if response.status in (401, 403):
            robots.disallow_all = True
        elif response.status >= 500:
            raise SourceError(
                f"{url} answered HTTP {response.status}, which asks crawlers to stay away "
                "until the site recovers; try again later."
            )
        elif response.status >= 400:
            robots.allow_all = True
        else:
            robots.parse(response.body.decode("utf-8", "replace").splitlines())
        return robots

    def _listed_urls(self) -> list[str]:
        """The page URLs of the sitemap (and an index's sitemaps) worth fetching, in order."""
        root = self._read_sitemap(self._sitemap_url)
        if local_name(root.tag) == "sitemapindex":
            listed = []
            for url in filter(self._on_site, sitemap_locs(root, "sitemap")):
                listed += sitemap_locs(self._read_sitemap(url), "url")
        elif local_name(root.tag) == "urlset":
            listed = sitemap_locs(root, "url")
        else:
            kind = local_name(root.tag)
            raise SourceError(
                f"{self._sitemap_url} is XML but not a sitemap (its root is <{kind}>); point "
                "the doc set at the site's sitemap.xml."
            )
        wanted = [url for url in listed if self._on_site(url) and self._wanted(url)]
        if not wanted:
            raise SourceError(
                f"The sitemap {self._sitemap_url} lists no page on its own host that the "
                f"include/exclude globs keep ({len(listed)} listed); check the URL and globs."
            )
        return list(dict.fromkeys(urlsplit(url)._replace(fragment="").geturl() for url in wanted))

    def _read_sitemap(self, url: str) -> ET.Element:
        try:
            response = self._get(url)
        except FETCH_ERRORS as error:
            reason = failure_reason(error, self._timeout_s)
            raise SourceError(
                f"The sitemap {url} could not be fetched ({reason}); check the doc set's "
                "source URL and that the site is reachable."
            ) from error
        if response.status != 200:
            raise SourceError(
                f"The sitemap {url} could not be fetched (HTTP {response.status}); check "
                "the doc set's source URL."
            )
        return parse_sitemap(url, response.body)

    def _on_site(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            return parts.scheme in ("http", "https") and (parts.hostname, parts.port) == self._site
        except ValueError:
            return False

    def _wanted(self, url: str) -> bool:
        return self._paths(unquote(urlsplit(url).path).lstrip("/"))

    def _plan(
        self, urls: list[str], robots: RobotFileParser
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Split URLs into (url, file path) to fetch and (url, reason) never requested."""
        plan: list[tuple[str, str]] = []
        skipped: list[tuple[str, str]] = []
        owners: dict[str, str] = {}
        for url in urls:
            path = page_path(url)
            if not robots.can_fetch(self._user_agent, url):
                skipped.append((url, DISALLOWED))
            elif path in owners:
                skipped.append((url, f"would be stored as the same file as {owners[path]}"))
            elif len(plan) >= self._max_pages:
                skipped.append((url, f"beyond max_pages={self._max_pages}"))
            else:
                owners[path] = url
                plan.append((url, path))
        return plan, skipped

    def _fetch_all(
        self,
        plan: list[tuple[str, str]],
        robots: RobotFileParser,
        progress: Callable[[int, int], None] | None,
    ) -> list[_Page]:
        """Fetch the plan on ``concurrency`` threads; ``progress`` runs on this thread."""
        state = self._load_state()
        pacer = Pacer(crawl_delay_s(robots, self._user_agent))
        pages: list[_Page] = []
        if progress is not None:
            progress(0, len(plan))
        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="sitemap") as pool:
            futures = [
                pool.submit(self._fetch_page, url, path, state.get(url, {}), pacer)
                for url, path in plan
            ]
            for future in as_completed(futures):
                pages.append(future.result())
                if progress is not None:
                    progress(len(pages), len(plan))
        return pages

    def _fetch_page(
        self, url: str, path: str, validators: Mapping[str, str], pacer: Pacer
    ) -> _Page:
        """Download one page and store it when its content is new or changed."""
        file = self._pages_dir / path
        old = file.read_bytes() if file.is_file() else None
        headers = conditional_headers(validators) if old is not None else {}
        pacer.wait()
        try:
            response = self._get(url, headers)
        except FETCH_ERRORS as error:
            return _failure(url, path, failure_reason(error, self._timeout_s), old, validators)
        validators = {**validators, **validators_of(response.headers)}
        if response.status == 304 and old is not None:
            return _Page(url, path, _Outcome.UNCHANGED, validators=validators)
        if response.status != 200:
            return _failure(url, path, f"HTTP {response.status}", old, validators)
        content_type = response.headers.get("Content-Type")
        if content_type and response.headers.get_content_type() not in _HTML_TYPES:
            return _Page(url, path, _Outcome.FAILED, f"not an HTML page ({content_type})")
        body = as_utf8(response.body, response.headers.get_content_charset())
        if body == old:
            return _Page(url, path, _Outcome.UNCHANGED, validators=validators)
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(body)
        except OSError as error:
            return _Page(url, path, _Outcome.FAILED, f"could not be stored ({error})")
        return _Page(url, path, _Outcome.CHANGED, validators=validators)

    def _get(self, url: str, headers: Mapping[str, str] | None = None) -> Response:
        return get(
            self._opener,
            url,
            user_agent=self._user_agent,
            timeout_s=self._timeout_s,
            headers=headers,
        )

    def _load_state(self) -> dict[str, dict[str, str]]:
        try:
            state = json.loads((self._cache_dir / _STATE_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            log.warning("ignoring unreadable sitemap state in %s: %s", self._cache_dir, error)
            return {}
        return state.get("pages", {}) if isinstance(state, dict) else {}

    def _save_state(self, pages: list[_Page]) -> None:
        """Write ETag/Last-Modified per URL (atomically: a crash leaves the old state)."""
        state = {
            "sitemap_url": self._sitemap_url,
            "pages": {page.url: dict(page.validators) for page in pages},
        }
        path = self._cache_dir / _STATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
        temporary.replace(path)

    def _remove_others(self, keep: Iterable[str]) -> frozenset[str]:
        """Delete stored pages not in ``keep`` (and folders left empty); their paths."""
        kept = set(keep)
        deleted = set()
        for file in self._pages_dir.rglob("*.html"):
            relative = file.relative_to(self._pages_dir).as_posix()
            if relative not in kept:
                file.unlink()
                deleted.add(relative)
        for folder in sorted(self._pages_dir.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        return frozenset(deleted)


def _failure(
    url: str, path: str, reason: str, old: bytes | None, validators: Mapping[str, str]
) -> _Page:
    """A failed page: its old copy is kept unless the server said it is gone."""
    gone = reason in ("HTTP 404", "HTTP 410")
    if old is None or gone:
        return _Page(url, path, _Outcome.FAILED, reason)
    return _Page(
        url, path, _Outcome.KEPT, f"{reason}; kept the copy from the last sync", validators
    )
