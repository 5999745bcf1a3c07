"""Chunk links: one URL template per doc set, and how each site generator names its pages.

A template such as ``https://docs.example.com/docs/{stem}#{anchor}`` holds these
placeholders, each percent-encoded (as :func:`rag_core.ingest.chunking.chunk_url` does):

- ``{path}``: the document's path as indexed, suffix kept (``guides/01-install.md``);
- ``{stem}``: the page's URL path as the site generator makes it (see below), without a
  leading ``/``; the site's root page gives "";
- ``{anchor}``: the heading anchor of the chunk; a ``#`` written just before it is left out
  when the anchor is empty, so a page-level chunk gets no trailing ``#``;
- ``{commit}``: the indexed git commit ("" for sources that are not git repositories);
- ``{id}``: the front-matter ``id`` (sites such as milvus.io name pages by it), else the
  file name.

Write a literal brace as ``{{`` or ``}}``. ``{stem}`` by :data:`UrlStyle`:

- ``plain`` and ``sphinx``: the path without its suffix (``usage/index.rst`` ->
  ``usage/index``), as Sphinx's ``html`` builder names its pages; use ``{stem}.html``.
- ``docusaurus`` (the docs plugin's ``getSlug``): number prefixes (``01-``, ``2 - ``,
  ``3_``, but not date- or version-like ``2021-11``) are stripped from every folder and from
  the file name. A front-matter ``slug`` starting with ``/`` is the whole URL path; a
  relative one (``./``/``../`` allowed) is resolved against the folder. Without a slug, a
  file named ``index``, ``README`` (any case) or like its folder maps to the folder,
  with a trailing ``/`` as Docusaurus keeps (``guides/index.md`` -> ``guides/``);
  otherwise the front-matter ``id``, else the file name, replaces the file name. The
  ``strip_number_prefixes`` front matter option is not read.
- ``mkdocs`` (``use_directory_urls: true``, the default): ``{stem}`` always ends in ``/``
  (``a/b.md`` -> ``a/b/``), ``index.md`` and ``README.md`` (that exact case) map to their
  folder, the root index to "". A front-matter ``slug`` (core MkDocs ignores it, plugins
  such as the Material blog honour it) replaces the path when it starts with ``/`` and
  the file name otherwise. Sites with ``use_directory_urls: false`` use ``plain`` and
  ``{stem}.html``; Sphinx's ``dirhtml`` builder matches ``mkdocs`` (without README).
"""

from __future__ import annotations

import posixpath
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args
from urllib.parse import quote

from rag_core.errors import ConfigError
from rag_core.types import Document

UrlStyle = Literal["plain", "docusaurus", "mkdocs", "sphinx"]
URL_STYLES: tuple[str, ...] = get_args(UrlStyle)
PLACEHOLDERS = ("path", "stem", "anchor", "commit", "id")
"""The names a link template may use, in the order error messages list them."""

_PATH_SAFE = "/-_.~"
_ANCHOR_SAFE = "-_.~:"
_NOT_A_NUMBER_PREFIX = re.compile(r"^\d+[-_.]\d+")  # dates and versions: 2021-11-x, 7.0-x
_NUMBER_PREFIX = re.compile(r"^\d+\s*[-_.]+\s*([^-_.\s].*)$")
_MKDOCS_INDEX_NAMES = frozenset({"index", "README"})


@dataclass(frozen=True, slots=True)
class LinkTemplate:
    """How a doc set's chunks link back to the published page; "" gives chunks no URL.

    Raises :class:`ConfigError` for an unknown style, an unknown placeholder or a stray
    brace, so a bad config fails at start-up rather than on the first chunk.
    """

    template: str = ""
    style: UrlStyle = "plain"
    _parts: tuple[tuple[str, str], ...] = field(
        init=False, repr=False, compare=False, default=()
    )  # (literal text, placeholder name or "") pairs, in order

    def __post_init__(self) -> None:
        if self.style not in URL_STYLES:
            styles = ", ".join(URL_STYLES)
            raise ConfigError(f"Unknown URL style {self.style!r}; use one of {styles}.")
        object.__setattr__(self, "_parts", _parse_template(self.template))

    @classmethod
    def from_base_url(cls, base_url: str) -> LinkTemplate:
        """The template for the legacy ``RAGBOT_SOURCE_BASE_URL``: ``{base}/{path}#{anchor}``.

        Renders exactly what ``chunk_url(base_url, path, anchor)`` gives; "" -> no URLs.
        """
        if not base_url:
            return cls()
        base = base_url.rstrip("/").replace("{", "{{").replace("}", "}}")
        return cls(f"{base}/{{path}}#{{anchor}}")

    def render(self, document: Document, anchor: str, *, commit: str = "") -> str:
        """The URL of ``anchor`` in ``document``; "" when the template is empty."""
        if not self.template:
            return ""
        values: dict[str, Callable[[], str]] = {
            "path": lambda: quote(document.path, safe=_PATH_SAFE),
            "stem": lambda: quote(page_stem(document, self.style), safe=_PATH_SAFE),
            "anchor": lambda: quote(anchor, safe=_ANCHOR_SAFE),
            "commit": lambda: quote(commit, safe=""),
            "id": lambda: quote(
                document.doc_id or posixpath.basename(document.path), safe=_PATH_SAFE
            ),
        }
        out: list[str] = []
        for literal, name in self._parts:
            if name == "anchor" and not anchor:
                literal = literal.removesuffix("#")
            out.append(literal)
            if name:
                out.append(values[name]())
        return "".join(out)


def page_stem(document: Document, style: UrlStyle) -> str:
    """The page's URL path under the site's docs root, as ``style``'s generator makes it."""
    folder, name = posixpath.split(document.path)
    folders = [part for part in folder.split("/") if part]
    file_stem = posixpath.splitext(name)[0]
    if style == "docusaurus":
        return _docusaurus_stem(folders, file_stem, document.slug, document.doc_id)
    if style == "mkdocs":
        return _mkdocs_stem(folders, file_stem, document.slug)
    return posixpath.join(folder, file_stem)


def _docusaurus_stem(folders: list[str], file_stem: str, slug: str, doc_id: str) -> str:
    if slug.startswith("/"):
        return slug.lstrip("/")
    stripped = [_strip_number_prefix(part) for part in folders]
    index_names = {"index", "readme", *(part.lower() for part in folders[-1:])}
    if not slug and file_stem.lower() in index_names:
        return "".join(f"{part}/" for part in stripped)
    return _resolve(stripped, slug or doc_id or _strip_number_prefix(file_stem))


def _mkdocs_stem(folders: list[str], file_stem: str, slug: str) -> str:
    if slug.startswith("/"):
        page = slug.strip("/")
    elif slug:
        page = _resolve(folders, slug).rstrip("/")
    elif file_stem in _MKDOCS_INDEX_NAMES:
        page = "/".join(folders)
    else:
        page = "/".join([*folders, file_stem])
    return f"{page}/" if page else ""


def _strip_number_prefix(name: str) -> str:
    """``01-intro`` -> ``intro``; ``2021-11-notes`` and ``7.0-notes`` stay as they are."""
    if _NOT_A_NUMBER_PREFIX.match(name):
        return name
    match = _NUMBER_PREFIX.match(name)
    return match.group(1) if match else name


def _resolve(folders: Sequence[str], relative: str) -> str:
    """Resolve a relative URL path against a folder, as a browser does (``.``, ``..``).

    ``..`` never climbs above the root; a trailing ``/`` of ``relative`` is kept.
    """
    segments = list(folders)
    parts = relative.split("/")
    for part in parts:
        if part == "..":
            if segments:
                segments.pop()
        elif part not in ("", "."):
            segments.append(part)
    trailing = parts[-1] in ("", ".", "..") and bool(segments)
    return "/".join(segments) + ("/" if trailing else "")


def _parse_template(template: str) -> tuple[tuple[str, str], ...]:
    """Split a template into (literal, placeholder) pairs; :class:`ConfigError` if invalid."""
    valid = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
    try:
        pieces = list(string.Formatter().parse(template))
    except ValueError:
        raise ConfigError(
            f"Link template {template!r} has an unmatched brace; write a literal brace "
            f"as {{{{ or }}}} and placeholders as {valid}."
        ) from None
    parts: list[tuple[str, str]] = []
    for literal, name, spec, conversion in pieces:
        if name is not None and name not in PLACEHOLDERS:
            raise ConfigError(
                f"Unknown placeholder {{{name}}} in link template {template!r}; use {valid}."
            )
        if spec or conversion:
            raise ConfigError(
                f"Placeholder {{{name}}} in link template {template!r} takes no format "
                f"spec or conversion; write it as {{{name}}}."
            )
        parts.append((literal, name or ""))
    return tuple(parts)
