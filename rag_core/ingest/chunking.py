"""Document -> Chunks: heading-aware pieces that each fit the embedder's token budget.

Each section (text under one heading) becomes one chunk when it fits. Sections with no
text of their own are dropped (their heading lives on in the heading paths below them);
a very small section absorbs the sections that follow it under the same parent while
the result fits, so tiny chunks are rare. A section over budget is cut at paragraph
boundaries, then lines, then sentences, then (last resort) at a token boundary found by
bisection; consecutive pieces of one section overlap by about ``overlap_tokens``. A
fenced code block that fits the budget is never cut.

The budget applies to :attr:`Chunk.embed_text` (title and heading path, then the text),
as measured by ``count_tokens``. Counts of parts are added up to plan the cuts (tokenizers
are close to additive at whitespace) and every finished chunk is measured once more and
re-cut if the estimate was short.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from urllib.parse import quote

from rag_core.errors import ConfigError
from rag_core.ingest.links import LinkTemplate
from rag_core.ingest.sections import Section, parse_sections
from rag_core.ingest.text_units import TextUnit, UnitSplitter, join_units
from rag_core.types import Chunk, Document

_MAX_REPAIRS = 4
_COUNT_CACHE_SIZE = 32768


def chunk_url(base_url: str, doc_path: str, anchor: str) -> str:
    """``{base}/{doc_path}#{anchor}`` (path and anchor percent-encoded); "" without a base.

    The document path is used as it is, suffix included: ``https://x/docs`` +
    ``en/faq.md`` + ``why`` -> ``https://x/docs/en/faq.md#why``. The ``#`` part is left
    out when the anchor is empty.
    """
    if not base_url:
        return ""
    url = f"{base_url.rstrip('/')}/{quote(doc_path, safe='/-_.~')}"
    return f"{url}#{quote(anchor, safe='-_.~:')}" if anchor else url


class MarkdownChunker:
    """Cuts Markdown-ish documents into cited, budget-sized chunks.

    ``count_tokens`` should be the embedder's own tokenizer count; it is called once per
    distinct paragraph (results cached per text) plus once per finished chunk.
    ``min_tokens`` is the size under which a section counts as very small and is merged
    with the sections after it (default: an eighth of ``max_tokens``).

    ``links`` makes each chunk's URL (with ``commit`` for its ``{commit}`` placeholder);
    without it the legacy ``source_base_url`` is used, as :func:`chunk_url` builds it.
    """

    def __init__(
        self,
        count_tokens: Callable[[str], int],
        *,
        max_tokens: int = 512,
        overlap_tokens: int = 64,
        source_base_url: str = "",
        min_tokens: int | None = None,
        links: LinkTemplate | None = None,
        commit: str = "",
    ) -> None:
        if max_tokens < 8:
            raise ConfigError(f"Chunk size must be at least 8 tokens, got {max_tokens}.")
        if not 0 <= overlap_tokens < max_tokens:
            raise ConfigError(
                f"Chunk overlap ({overlap_tokens}) must be between 0 and the chunk size "
                f"({max_tokens}) minus one."
            )
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.source_base_url = source_base_url
        self.links = LinkTemplate.from_base_url(source_base_url) if links is None else links
        self.commit = commit
        self.min_tokens = max_tokens // 8 if min_tokens is None else min_tokens
        counter = functools.lru_cache(maxsize=_COUNT_CACHE_SIZE)(count_tokens)
        self._count: Callable[[str], int] = counter
        self._splitter = UnitSplitter(counter)

    def chunk(self, document: Document) -> list[Chunk]:
        """Cut one document into chunks numbered 0..n-1; an empty document gives none.

        A document with headings but no other text (a stub page) gives one chunk holding
        its headings, so that it can still be found by its title.
        """
        if not document.text.strip():
            return []
        sections = parse_sections(document.text, document.title)
        groups = self._groups(document.title, [s for s in sections if s.body])
        if not groups:
            stub = "\n".join(s.heading_path[-1] for s in sections if s.heading_path)
            units = self._splitter.body_units(stub or document.title, "")
            groups = [(Section((), (), "", stub), units)]
        chunks: list[Chunk] = []
        for first, units in groups:
            budget = self._budget(document.title, first)
            for text in self._fit(document, first, units, budget, 0):
                chunks.append(self._make_chunk(document, first, text, len(chunks)))
        return chunks

    def _groups(
        self, title: str, sections: Sequence[Section]
    ) -> list[tuple[Section, list[TextUnit]]]:
        """Merge very small sections with what follows them; each group keeps its first."""
        groups: list[tuple[Section, list[TextUnit]]] = []
        for index, section in enumerate(sections):
            body = self._splitter.body_units(section.body, "\n\n")
            if groups and self._mergeable(*groups[-1], section, body):
                first, units = groups[-1]
                merged = [*units, *self._heading_units(sections[index - 1], section), *body]
                if self._splitter.size(merged) <= self._budget(title, first):
                    groups[-1] = (first, merged)
                    continue
            groups.append((section, body))
        return groups

    def _mergeable(
        self, first: Section, units: list[TextUnit], section: Section, body: list[TextUnit]
    ) -> bool:
        """Very small group, and the section shares its parent (small, or a descendant).

        Text before the first heading (or under the title) is the parent of everything.
        """
        if self._splitter.size(units) >= self.min_tokens:
            return False
        parent = first.heading_path[:-1]
        path = section.heading_path
        if path[: len(parent)] != parent or (first.heading_path and len(path) <= len(parent)):
            return False
        descendant = path[: len(first.heading_path)] == first.heading_path
        return descendant or self._splitter.size(body) < self.min_tokens

    def _heading_units(self, previous: Section, section: Section) -> list[TextUnit]:
        """Heading lines that open ``section`` inside a merged chunk, from where they differ."""
        shared = 0
        for a, b in zip(previous.heading_path, section.heading_path, strict=False):
            if a != b:
                break
            shared += 1
        shared = min(shared, len(section.heading_path) - 1)
        return [
            self._splitter.heading_unit(f"{'#' * level} {text}")
            for level, text in zip(
                section.levels[shared:], section.heading_path[shared:], strict=True
            )
        ]

    def _budget(self, title: str, first: Section) -> int:
        """Tokens left for chunk text once the title and heading path are in place.

        Never below a quarter of ``max_tokens``: an absurdly long heading path may then
        push a chunk over budget rather than leave no room for text.
        """
        header = Chunk("", title, first.heading_path, "", "", 0, "").embed_text
        return max(self.max_tokens - self._count(header), self.max_tokens // 4)

    def _fit(
        self,
        document: Document,
        first: Section,
        units: list[TextUnit],
        budget: int,
        depth: int,
    ) -> list[str]:
        """Texts of the chunks for one group: cut to ``budget``, then measured for real.

        A piece whose real count overshoots (token counts are not exactly additive) is cut
        again with a budget tightened by the overshoot, a few times at most.
        """
        texts: list[str] = []
        pieces = self._splitter.pack(
            self._splitter.split(units, budget), budget, self.overlap_tokens
        )
        for piece in pieces:
            text = join_units(piece)
            chunk = self._make_chunk(document, first, text, 0)
            over = self._count(chunk.embed_text) - self.max_tokens
            tighter = min(budget, self._splitter.size(piece)) - over
            if over > 0 and depth < _MAX_REPAIRS and tighter > 0:
                texts.extend(self._fit(document, first, piece, tighter, depth + 1))
            else:
                texts.append(text)
        return texts

    def _make_chunk(self, document: Document, first: Section, text: str, index: int) -> Chunk:
        return Chunk(
            doc_path=document.path,
            title=document.title,
            heading_path=first.heading_path,
            anchor=first.anchor,
            url=self.links.render(document, first.anchor, commit=self.commit),
            chunk_index=index,
            text=text,
        )
