"""Crawl speed of ``SitemapSource`` on the Milvus docs served as a website on loopback.

    .venv/bin/python bench/bench_sitemap.py [--docs ../shared/data/milvus_docs/en]
        [--concurrency 4] [--latency 0.02]

Every Markdown file under ``--docs`` is rendered with markdown-it-py into an HTML page
(site chrome in ``<header>``/``<nav>``/``<footer>``, the text in ``<main>``) and served
by a stdlib ``ThreadingHTTPServer`` at ``/docs/<path without .md>``, with a
``sitemap.xml`` listing them all. Each answer waits ``--latency`` seconds first, as a
real server's round trip would. Three syncs into one cache are timed:

* ``first``: empty cache, every page downloaded;
* ``second (ETag)``: the server sends ETags, so every page comes back 304;
* ``third (no ETag)``: the server stops sending validators, so pages are downloaded
  again and found unchanged by content.

The last column is the Markdown text the indexer gets from the stored pages (with
``rag_core.ingest.html_format``), against the source Markdown's size, as a check that
the chrome is dropped and the content kept.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from markdown_it import MarkdownIt

from rag_core.ingest.html_format import markdown_from_html
from rag_core.sources.sitemap import SitemapSource, SiteSnapshot

DEFAULT_DOCS = Path(__file__).resolve().parents[2] / "shared" / "data" / "milvus_docs" / "en"
CHROME = "<header><a href='/'>Milvus</a> Docs Blog Community</header><nav>Table of contents</nav>"
FOOTER = "<footer>Copyright Example. Edit this page.</footer>"


class DocsSite(ThreadingHTTPServer):
    """Pages by URL path; ``etags`` switches ETag/304 support; ``latency_s`` per answer."""

    daemon_threads = True

    def __init__(self, pages: dict[str, bytes], latency_s: float) -> None:
        super().__init__(("127.0.0.1", 0), PageHandler)
        self.pages = pages
        self.latency_s = latency_s
        self.etags = True


class PageHandler(BaseHTTPRequestHandler):
    server: DocsSite

    def do_GET(self) -> None:
        time.sleep(self.server.latency_s)
        body = self.server.pages.get(self.path)
        if body is None:
            self.send_error(404)
            return
        etag = f'"{hashlib.sha1(body).hexdigest()}"'
        if self.server.etags and self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if self.server.etags:
            self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def render_site(docs: Path, base: str) -> tuple[dict[str, bytes], int]:
    """URL path -> page bytes for every ``.md`` under ``docs``, plus the Markdown's size."""
    markdown = MarkdownIt("commonmark").enable("table")
    pages: dict[str, bytes] = {}
    source_chars = 0
    for file in sorted(docs.rglob("*.md")):
        text = file.read_text(encoding="utf-8")
        source_chars += len(text)
        path = "/docs/" + file.relative_to(docs).with_suffix("").as_posix()
        html = (
            f"<!doctype html><html><head><title>{file.stem}</title></head><body>{CHROME}"
            f"<main>{markdown.render(text)}</main>{FOOTER}</body></html>"
        )
        pages[path] = html.encode("utf-8")
    locs = "".join(f"<url><loc>{base}{path}</loc></url>" for path in pages)
    pages["/sitemap.xml"] = (
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{locs}</urlset>'
    ).encode()
    return pages, source_chars


@contextmanager
def serving(server: DocsSite) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def converted_chars(snapshot: SiteSnapshot) -> int:
    """Characters of Markdown-ish text the indexer would read from the stored pages."""
    return sum(
        len(markdown_from_html((snapshot.root / path).read_text(encoding="utf-8"))[0])
        for path in snapshot.urls
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per answer")
    args = parser.parse_args()

    server = DocsSite({}, args.latency)
    base = f"http://127.0.0.1:{server.server_port}"
    server.pages, source_chars = render_site(args.docs, base)
    print(
        f"{len(server.pages) - 1} pages from {args.docs}, concurrency {args.concurrency}, "
        f"server latency {args.latency * 1000:g} ms"
    )
    header = f"{'crawl':<16} {'pages':>6} {'fetched':>8} {'unchanged':>9} {'failed':>6}"
    print(f"{header} {'seconds':>8} {'pages/s':>8} {'text/source':>11}")
    with serving(server), tempfile.TemporaryDirectory() as cache:
        source = SitemapSource(
            base + "/sitemap.xml", cache_dir=Path(cache), concurrency=args.concurrency
        )
        for name, etags in (("first", True), ("second (ETag)", True), ("third (no ETag)", False)):
            server.etags = etags
            snapshot = source.sync()
            pages = len(snapshot.urls)
            ratio = converted_chars(snapshot) / source_chars
            print(
                f"{name:<16} {pages:>6} {snapshot.fetched:>8} {snapshot.unchanged:>9} "
                f"{len(snapshot.failed):>6} {snapshot.seconds:>8.2f} "
                f"{pages / snapshot.seconds:>8.1f} {ratio:>11.2f}"
            )


if __name__ == "__main__":
    main()
