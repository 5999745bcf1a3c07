"""The sitemap protocol's files, read safely, and where each page of a site is stored.

The stdlib XML parser is used with DOCTYPE and ENTITY declarations refused, since a
sitemap needs neither and they are how entity expansion ("billion laughs") attacks work.
"""

from __future__ import annotations

import gzip
import io
import re
import xml.etree.ElementTree as ET
from urllib.parse import unquote, urlsplit

from rag_core.sources.errors import SourceError

MAX_BYTES = 50 * 1024 * 1024  # the sitemap protocol's limit; pages get the same cap
_DECLARATION = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)


def parse_sitemap(url: str, body: bytes) -> ET.Element:
    """Parse sitemap bytes (gzip allowed) refusing DOCTYPE/ENTITY declarations."""
    if body[:2] == b"\x1f\x8b":
        try:
            body = gzip.GzipFile(fileobj=io.BytesIO(body)).read(MAX_BYTES + 1)
        except (OSError, EOFError) as error:
            raise SourceError(
                f"The sitemap {url} is not valid gzip ({error}); check that the server "
                "sends the sitemap file whole."
            ) from error
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SourceError(
            f"The sitemap {url} is not UTF-8 XML; point the doc set at the site's sitemap.xml."
        ) from error
    if len(body) > MAX_BYTES:
        raise SourceError(f"The sitemap {url} is over 50 MB; split it with a sitemap index.")
    if _DECLARATION.search(text):
        raise SourceError(
            f"The sitemap {url} contains a DOCTYPE or ENTITY declaration, which is refused to "
            "prevent entity expansion attacks; point the doc set at a plain sitemap.xml."
        )
    try:
        return ET.fromstring(text)
    except ET.ParseError as error:
        raise SourceError(
            f"The sitemap {url} is not XML ({error}); point the doc set at the site's "
            "sitemap.xml rather than a web page."
        ) from error


def local_name(tag: str) -> str:
    """An element's tag without its XML namespace (``{ns}urlset`` -> ``urlset``)."""
    return tag.rpartition("}")[2]


def sitemap_locs(root: ET.Element, kind: str) -> list[str]:
    """The ``<loc>`` texts of ``root``'s ``<url>`` or ``<sitemap>`` children."""
    return [
        loc.text.strip()
        for entry in root
        if local_name(entry.tag) == kind
        for loc in entry
        if local_name(loc.tag) == "loc" and loc.text and loc.text.strip()
    ]


def page_path(url: str) -> str:
    """The file a page is stored in: ``/docs/`` -> ``docs/index.html``, ``/a`` -> ``a.html``.

    Segments are percent-decoded; ``.``/``..`` are resolved inside the site and separators
    in a segment replaced, so no URL can point outside the pages folder.
    """
    parts = urlsplit(url)
    segments: list[str] = []
    raw = parts.path.split("/")
    for segment in (unquote(piece) for piece in [*raw[:-1], raw[-1] or "index"]):
        if segment == "..":
            segments = segments[:-1]
        elif segment not in ("", "."):
            segments.append(re.sub(r"[/\\\x00]", "_", segment))
    name = segments.pop() if segments else "index"
    if parts.query:
        name += "?" + parts.query.replace("/", "%2F")
    return "/".join([*segments, name if name.endswith(".html") else name + ".html"])
