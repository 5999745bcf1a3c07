"""SitemapSource against a real loopback web site, and main-content extraction from HTML.

The site is a stdlib ``ThreadingHTTPServer`` whose answers each test sets: pages, a slow
page, a 404, a robots.txt rule, ETags answered with 304, broken sitemaps. The server
counts requests in flight so the concurrency limit is measured, not assumed.
"""

from __future__ import annotations

import gzip
import itertools
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from rag_core.ingest.html_format import markdown_from_html
from rag_core.sources.errors import SourceError
from rag_core.sources.sitemap import DISALLOWED, SitemapSource

TIMEOUT_S = 0.3
HTML = "text/html; charset=utf-8"


@dataclass
class Reply:
    body: bytes | str = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": HTML})
    delay_s: float = 0.0
    etag: str = ""  # answer 304 to a matching If-None-Match


@dataclass
class Hit:
    at: float
    path: str
    headers: dict[str, str]
    status: int = 0


class Site:
    """What the server answers (by raw request path) and what it was asked."""

    def __init__(self) -> None:
        self.base = ""
        self.replies: dict[str, Reply] = {}
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def url(self, path: str) -> str:
        return self.base + path

    def page(self, path: str, text: str, **options: object) -> str:
        html = f"<html><head><title>{text}</title></head><body><main><p>{text}</p></main></body>"
        self.replies[path] = Reply(html, **options)  # type: ignore[arg-type]
        return html

    def sitemap(self, paths: list[str], at: str = "/sitemap.xml") -> None:
        urls = "".join(
            f"<url><loc>{self.url(p) if p.startswith('/') else p}</loc></url>" for p in paths
        )
        self.replies[at] = Reply(
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>',
            headers={"Content-Type": "application/xml"},
        )

    def robots(self, text: str) -> None:
        self.replies["/robots.txt"] = Reply(text, headers={"Content-Type": "text/plain"})

    def requested(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.path == path]


class Handler(BaseHTTPRequestHandler):
    server: SiteServer

    def do_GET(self) -> None:
        site = self.server.site
        hit = Hit(time.monotonic(), self.path, dict(self.headers))
        with site.lock:
            site.hits.append(hit)
            site.in_flight += 1
            site.max_in_flight = max(site.max_in_flight, site.in_flight)
        try:
            reply = site.replies.get(self.path) or site.replies.get(urlsplit(self.path).path)
            time.sleep(reply.delay_s if reply else 0)
        finally:
            with site.lock:
                site.in_flight -= 1
        if reply is None:
            reply = Reply("not found", status=404)
        elif reply.etag and self.headers.get("If-None-Match") == reply.etag:
            reply = Reply(status=304, headers={"ETag": reply.etag})
        hit.status = reply.status
        body = reply.body.encode() if isinstance(reply.body, str) else reply.body
        try:
            self.send_response(reply.status)
            for name, value in {
                **reply.headers,
                **({"ETag": reply.etag} if reply.etag else {}),
            }.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on a slow page

    def log_message(self, format: str, *args: object) -> None:
        pass


class SiteServer(ThreadingHTTPServer):
    daemon_threads = True
    site: Site


@pytest.fixture
def site() -> Iterator[Site]:
    server = SiteServer(("127.0.0.1", 0), Handler)
    server.site = Site()
    server.site.base = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server.site
    server.shutdown()
    server.server_close()


def docs_site(site: Site) -> dict[str, str]:
    """A small docs site: good pages, a slow one, a 404, a disallowed and an offsite one."""
    site.robots("User-agent: *\nDisallow: /private/\n")
    pages = {
        "/docs/": site.page("/docs/", "Home"),
        "/docs/intro": site.page(
            "/docs/intro",
            "Intro",
            headers={"Content-Type": HTML, "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"},
        ),
        "/docs/guide/setup": site.page("/docs/guide/setup", "Setup"),
        "/docs/etag": site.page("/docs/etag", "Tagged", etag='"v1"'),
        "/docs/changing": site.page("/docs/changing", "Version one"),
    }
    site.page("/docs/slow", "Slow", delay_s=1.0)
    site.page("/private/secret", "Secret")
    site.sitemap(
        [
            *pages,
            "/docs/intro#fragment",
            "/docs/slow",
            "/docs/missing",
            "/private/secret",
            "https://elsewhere.example/docs/x",
        ]
    )
    return pages


def source(site: Site, cache: Path, **options: object) -> SitemapSource:
    settings: dict[str, object] = {"timeout_s": TIMEOUT_S, "concurrency": 2, **options}
    return SitemapSource(site.url("/sitemap.xml"), cache_dir=cache, **settings)  # type: ignore[arg-type]


def stored(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def test_first_sync_stores_pages_and_reports_failures(site: Site, tmp_path: Path) -> None:
    pages = docs_site(site)
    calls: list[tuple[int, int]] = []

    snapshot = source(site, tmp_path / "cache").sync(
        progress=lambda done, total: calls.append((done, total))
    )

    assert snapshot.root == tmp_path / "cache" / "pages"
    assert dict(snapshot.urls) == {
        "docs/changing.html": site.url("/docs/changing"),
        "docs/etag.html": site.url("/docs/etag"),
        "docs/guide/setup.html": site.url("/docs/guide/setup"),
        "docs/index.html": site.url("/docs/"),
        "docs/intro.html": site.url("/docs/intro"),
    }
    assert stored(snapshot.root) == set(snapshot.urls) == snapshot.changed
    assert (snapshot.root / "docs/guide/setup.html").read_text() == pages["/docs/guide/setup"]
    assert (snapshot.fetched, snapshot.unchanged, snapshot.deleted) == (5, 0, frozenset())
    assert dict(snapshot.failed) == {
        site.url("/docs/slow"): f"timed out after {TIMEOUT_S:g} s",
        site.url("/docs/missing"): "HTTP 404",
        site.url("/private/secret"): DISALLOWED,
    }
    assert not site.requested("/private/secret")
    assert len(site.requested("/docs/intro")) == 1  # the #fragment duplicate is dropped
    assert all(hit.headers["User-Agent"].startswith("ragbot") for hit in site.hits)
    assert calls[0] == (0, 7) and calls[-1] == (7, 7) and len(calls) == 8
    assert snapshot.seconds >= TIMEOUT_S


def test_second_sync_reports_changed_unchanged_and_deleted(site: Site, tmp_path: Path) -> None:
    docs_site(site)
    sitemap = source(site, tmp_path / "cache")
    sitemap.sync()
    changed_html = site.page("/docs/changing", "Version two")
    site.sitemap(["/docs/", "/docs/intro", "/docs/etag", "/docs/changing", "/docs/slow"])
    site.hits.clear()

    snapshot = sitemap.sync()

    assert snapshot.changed == {"docs/changing.html"}
    assert snapshot.deleted == {"docs/guide/setup.html"}
    assert (snapshot.fetched, snapshot.unchanged) == (1, 3)
    assert stored(snapshot.root) == set(snapshot.urls)
    assert not (snapshot.root / "docs/guide").exists()
    assert (snapshot.root / "docs/changing.html").read_text() == changed_html
    (etag,) = site.requested("/docs/etag")
    assert (etag.headers.get("If-None-Match"), etag.status) == ('"v1"', 304)
    (intro,) = site.requested("/docs/intro")
    assert intro.headers.get("If-Modified-Since") == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert intro.status == 200  # same bytes again: unchanged by content
    assert dict(snapshot.failed) == {site.url("/docs/slow"): f"timed out after {TIMEOUT_S:g} s"}


def test_transient_failure_keeps_the_previous_copy_but_gone_pages_are_deleted(
    site: Site, tmp_path: Path
) -> None:
    site.page("/a", "A")
    site.page("/b", "B")
    site.page("/c", "C")
    site.sitemap(["/a", "/b", "/c"])
    sitemap = source(site, tmp_path / "cache")
    sitemap.sync()
    site.replies["/a"] = Reply("busy", status=503)
    site.replies["/b"] = Reply("gone", status=410)

    snapshot = sitemap.sync()

    assert set(snapshot.urls) == {"a.html", "c.html"} == stored(snapshot.root)
    assert snapshot.deleted == {"b.html"}
    assert dict(snapshot.failed) == {
        site.url("/a"): "HTTP 503; kept the copy from the last sync",
        site.url("/b"): "HTTP 410",
    }
    assert (snapshot.fetched, snapshot.unchanged, snapshot.changed) == (0, 1, frozenset())


def test_requests_in_flight_never_exceed_the_concurrency(site: Site, tmp_path: Path) -> None:
    paths = [f"/p{number}" for number in range(12)]
    for path in paths:
        site.page(path, path, delay_s=0.05)
    site.sitemap(paths)

    snapshot = source(site, tmp_path / "cache", concurrency=3).sync()

    assert snapshot.fetched == 12
    assert site.max_in_flight == 3


@pytest.mark.parametrize(
    ("rule", "pages", "gap_s"), [("Crawl-delay: 1", 2, 1.0), ("Request-rate: 5/1", 4, 0.2)]
)
def test_robots_delay_spaces_requests(
    site: Site, tmp_path: Path, rule: str, pages: int, gap_s: float
) -> None:
    site.robots(f"User-agent: *\n{rule}\n")
    paths = [f"/p{number}" for number in range(pages)]
    for path in paths:
        site.page(path, path)
    site.sitemap(paths)

    source(site, tmp_path / "cache", concurrency=4).sync()

    starts = sorted(hit.at for hit in site.hits if hit.path in paths)
    assert len(starts) == pages
    assert min(b - a for a, b in itertools.pairwise(starts)) >= gap_s * 0.9


def test_sitemap_index_gzip_and_globs(site: Site, tmp_path: Path) -> None:
    for path in ("/docs/a", "/docs/api/b", "/docs/api/old/c", "/blog/d"):
        site.page(path, path)
    site.sitemap(["/docs/a", "/blog/d"], at="/first.xml")
    site.sitemap(["/docs/api/b", "/docs/api/old/c"], at="/second.xml")
    site.replies["/second.xml.gz"] = Reply(
        gzip.compress(str(site.replies["/second.xml"].body).encode()),
        headers={"Content-Type": "application/gzip"},
    )
    entries = [
        site.url("/first.xml"),
        site.url("/second.xml.gz"),
        "https://elsewhere.example/s.xml",
    ]
    site.replies["/sitemap.xml"] = Reply(
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        + "".join(f"<sitemap><loc>{url}</loc></sitemap>" for url in entries)
        + "</sitemapindex>"
    )

    snapshot = source(site, tmp_path / "cache", include=["/docs/**"], exclude=["**/old/*"]).sync()

    assert dict(snapshot.urls) == {
        "docs/a.html": site.url("/docs/a"),
        "docs/api/b.html": site.url("/docs/api/b"),
    }
    assert not site.requested("/blog/d") and not site.requested("/docs/api/old/c")


def test_max_pages_caps_the_crawl_and_reports_the_rest(site: Site, tmp_path: Path) -> None:
    paths = [f"/p{number}" for number in range(5)]
    for path in paths:
        site.page(path, path)
    site.sitemap(paths)

    snapshot = source(site, tmp_path / "cache", max_pages=2).sync()

    assert set(snapshot.urls) == {"p0.html", "p1.html"}
    assert dict(snapshot.failed) == {site.url(path): "beyond max_pages=2" for path in paths[2:]}
    assert not site.requested("/p4")


def test_url_paths_map_to_files_inside_the_pages_folder(site: Site, tmp_path: Path) -> None:
    raw = ["/a%2F..%2F..%2Fescape", "/../../outside", "/search?q=x/y", "/caf%C3%A9", "/x.html", "/"]
    for path in raw:
        site.page(path, "page")
    site.replies["/latin"] = Reply(
        "<p>caf\xe9</p>".encode("latin-1"),
        headers={"Content-Type": "text/html; charset=iso-8859-1"},
    )
    site.replies["/manual.pdf"] = Reply(b"%PDF-1.4", headers={"Content-Type": "application/pdf"})
    site.sitemap([*raw, "/latin", "/manual.pdf"])

    snapshot = source(site, tmp_path / "cache").sync()

    assert set(snapshot.urls) == {
        "a_.._.._escape.html",
        "outside.html",
        "search?q=x%2Fy.html",
        "café.html",
        "x.html",
        "index.html",
        "latin.html",
    }
    assert stored(tmp_path) == {f"cache/pages/{path}" for path in snapshot.urls} | {
        "cache/sitemap_state.json"
    }
    assert (snapshot.root / "latin.html").read_text(encoding="utf-8") == "<p>café</p>"
    assert dict(snapshot.failed) == {site.url("/manual.pdf"): "not an HTML page (application/pdf)"}


def entity_bomb() -> str:
    """The "billion laughs" document: ten levels of entities, each ten of the one below."""
    entities = ['<!ENTITY lol0 "lol">']
    entities += [f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)]
    doctype = f"<!DOCTYPE lolz [{''.join(entities)}]>"
    return f'<?xml version="1.0"?>{doctype}<urlset><url><loc>&lol9;</loc></url></urlset>'


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply("<html><body><p>Not a sitemap</body>"), "is not XML"),
        (Reply(entity_bomb()), "contains a DOCTYPE or ENTITY declaration"),
        (Reply("<rss><channel/></rss>"), "is XML but not a sitemap (its root is <rss>)"),
        (Reply("missing", status=404), "could not be fetched (HTTP 404)"),
        (Reply("<urlset></urlset>"), "lists no page on its own host"),
        (
            Reply("<urlset><url><loc>https://elsewhere.example/a</loc></url></urlset>"),
            "lists no page",
        ),
    ],
)
def test_unusable_sitemaps_raise(site: Site, tmp_path: Path, reply: Reply, message: str) -> None:
    site.replies["/sitemap.xml"] = reply
    started = time.monotonic()
    with pytest.raises(SourceError, match=re.escape(message)) as raised:
        source(site, tmp_path / "cache").sync()
    assert site.url("/sitemap.xml") in str(raised.value) and "\n" not in str(raised.value)
    assert time.monotonic() - started < 2


def test_every_page_failing_raises_and_leaves_files_alone(site: Site, tmp_path: Path) -> None:
    site.page("/a", "A")
    site.sitemap(["/a", "/b"])
    sitemap = source(site, tmp_path / "cache")
    sitemap.sync()
    site.replies["/a"] = Reply("down", status=500)

    with pytest.raises(
        SourceError, match=r"No page listed by the sitemap .* could be fetched"
    ) as raised:
        sitemap.sync()

    assert "2 failed" in str(raised.value) and "\n" not in str(raised.value)
    assert stored(tmp_path / "cache" / "pages") == {"a.html"}


def test_unreadable_robots_txt_stops_the_crawl(site: Site, tmp_path: Path) -> None:
    site.replies["/robots.txt"] = Reply("oops", status=503)
    site.sitemap(["/a"])
    with pytest.raises(SourceError, match=r"robots\.txt answered HTTP 503"):
        source(site, tmp_path / "cache").sync()
    assert not site.requested("/sitemap.xml")


def test_unreachable_site_raises(tmp_path: Path) -> None:
    sitemap = SitemapSource(
        "http://127.0.0.1:9/sitemap.xml", cache_dir=tmp_path, timeout_s=TIMEOUT_S
    )
    with pytest.raises(SourceError, match=r"http://127.0.0.1:9/robots.txt could not be read \("):
        sitemap.sync()


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("ftp://example.com/sitemap.xml", {}, "is not an http"),
        ("sitemap.xml", {}, "is not an http"),
        ("https://example.com/sitemap.xml", {"concurrency": 0}, "concurrency .* is 0"),
        ("https://example.com/sitemap.xml", {"max_pages": 0}, "max_pages .* is 0"),
        ("https://example.com/sitemap.xml", {"timeout_s": 0}, "timeout_s .* is 0"),
    ],
)
def test_invalid_settings_raise(
    tmp_path: Path, url: str, options: dict[str, int], message: str
) -> None:
    with pytest.raises(SourceError, match=message):
        SitemapSource(url, cache_dir=tmp_path, **options)  # type: ignore[arg-type]


CHROME = "<header><a>Logo</a> Site menu</header><nav>Docs Blog</nav>"
FOOTER = "<footer>© Example</footer>"


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (
            f"{CHROME}<main><header><h1>Install</h1></header><p>Run it.</p>"
            "<aside>On this page</aside><footer>Edit this page</footer></main>{FOOTER}",
            "# Install\n\nRun it.",
        ),
        (
            f'{CHROME}<div role="main"><div><p>One</p></div><p>Two</p></div><p>Ads</p>{FOOTER}',
            "One\n\nTwo",
        ),
        (
            f"{CHROME}<article><h2>First</h2></article><p>Between</p><article><p>Second</p></article>",
            "## First\n\nSecond",
        ),
        (
            f"{CHROME}<aside><article>Related</article></aside><h1>Plain</h1><p>Page.</p>{FOOTER}",
            "# Plain\n\nPage.",
        ),
        (
            f"<p>Rendered by script</p><main><div id='app'></div></main>{FOOTER}",
            "Rendered by script",
        ),
    ],
    ids=["main", "role-main", "articles", "no-region", "empty-main-falls-back"],
)
def test_html_keeps_only_the_main_content(body: str, text: str) -> None:
    html = f"<!doctype html><html><head><title>Doc</title></head><body>{body}</body></html>"
    assert markdown_from_html(html) == (text, "Doc")
