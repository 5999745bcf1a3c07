"""Chunk links: URL templates, each site generator's page URL rules, and the legacy base URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_core.errors import ConfigError
from rag_core.ingest.chunking import MarkdownChunker, chunk_url
from rag_core.ingest.links import LinkTemplate, UrlStyle, page_stem
from rag_core.ingest.loaders import read_document
from rag_core.types import Document


def doc(path: str, *, slug: str = "", doc_id: str = "") -> Document:
    return Document(path=path, title="T", text="Text.", format="markdown", doc_id=doc_id, slug=slug)


def words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize(
    ("path", "slug", "doc_id", "stem"),
    [
        ("intro.md", "", "", "intro"),
        ("guides/01-getting-started/02-install.md", "", "", "guides/getting-started/install"),
        ("guides/3 - deploy.mdx", "", "", "guides/deploy"),
        ("release-notes/2021-11-changes.md", "", "", "release-notes/2021-11-changes"),
        ("release-notes/7.0-upgrade.md", "", "", "release-notes/7.0-upgrade"),
        ("guides/intro.md", "", "overview", "guides/overview"),
        ("01-guides/intro.md", "/start-here", "overview", "start-here"),
        ("guides/intro.md", "welcome", "", "guides/welcome"),
        ("guides/deep/intro.md", "../other/page", "", "guides/other/page"),
        ("guides/deep/intro.md", "./a/../b/", "", "guides/deep/b/"),
        ("guides/index.md", "", "", "guides/"),
        ("02-guides/README.mdx", "", "", "guides/"),
        ("guides/Guides.md", "", "", "guides/"),
        ("index.md", "", "", ""),
        ("guides/index.md", "/all-guides", "", "all-guides"),
    ],
)
def test_docusaurus_stem(path: str, slug: str, doc_id: str, stem: str) -> None:
    assert page_stem(doc(path, slug=slug, doc_id=doc_id), "docusaurus") == stem


def test_docusaurus_url() -> None:
    links = LinkTemplate("https://docs.example.com/docs/{stem}#{anchor}", "docusaurus")
    page = doc("tutorials/01-basics/03-create-collection.md", doc_id="create collection")
    url = links.render(page, "load-data")
    assert url == "https://docs.example.com/docs/tutorials/basics/create%20collection#load-data"


@pytest.mark.parametrize(
    ("path", "slug", "stem"),
    [
        ("index.md", "", ""),
        ("about.md", "", "about/"),
        ("user-guide/index.md", "", "user-guide/"),
        ("user-guide/README.md", "", "user-guide/"),
        ("user-guide/readme.md", "", "user-guide/readme/"),
        ("user-guide/configuration-options.md", "", "user-guide/configuration-options/"),
        ("01-setup/install.md", "", "01-setup/install/"),
        ("blog/posts/2024-05-01-launch.md", "launch", "blog/posts/launch/"),
        ("blog/posts/launch.md", "/news/launch/", "news/launch/"),
    ],
)
def test_mkdocs_stem(path: str, slug: str, stem: str) -> None:
    assert page_stem(doc(path, slug=slug), "mkdocs") == stem


def test_mkdocs_url() -> None:
    links = LinkTemplate("https://www.mkdocs.org/{stem}#{anchor}", "mkdocs")
    url = links.render(doc("user-guide/writing-your-docs.md"), "file-layout")
    assert url == "https://www.mkdocs.org/user-guide/writing-your-docs/#file-layout"
    assert links.render(doc("index.md"), "") == "https://www.mkdocs.org/"


def test_sphinx_url() -> None:
    links = LinkTemplate("https://www.sphinx-doc.org/en/master/{stem}.html#{anchor}", "sphinx")
    builders = doc("usage/builders/index.rst", slug="ignored", doc_id="ignored")
    assert links.render(builders, "module-sphinx.builders.html") == (
        "https://www.sphinx-doc.org/en/master/usage/builders/index.html#module-sphinx.builders.html"
    )
    assert links.render(doc("usage/01-quickstart.rst"), "") == (
        "https://www.sphinx-doc.org/en/master/usage/01-quickstart.html"
    )


def test_plain_url_keeps_folders_and_numbers_and_encodes() -> None:
    links = LinkTemplate("https://x.io/docs/{stem}?src={path}#{anchor}")
    page = doc("en/01-faq/index/a b.md", slug="/ignored", doc_id="ignored")
    assert links.render(page, "why ü") == (
        "https://x.io/docs/en/01-faq/index/a%20b?src=en/01-faq/index/a%20b.md#why%20%C3%BC"
    )


def test_commit_placeholder() -> None:
    links = LinkTemplate("https://github.com/o/r/blob/{commit}/docs/{path}#{anchor}")
    url = links.render(doc("en/faq.md"), "why", commit="0123abcd" * 5)
    assert url == f"https://github.com/o/r/blob/{'0123abcd' * 5}/docs/en/faq.md#why"


@pytest.mark.parametrize("style", ["plain", "docusaurus", "mkdocs", "sphinx"])
def test_empty_anchor_leaves_out_the_hash(style: UrlStyle) -> None:
    links = LinkTemplate("https://x.io/{stem}#{anchor}", style)
    url = links.render(doc("guide.md"), "")
    assert "#" not in url
    assert url.startswith("https://x.io/guide")


def test_empty_anchor_elsewhere_renders_empty() -> None:
    links = LinkTemplate("https://x.io/{path}?h={anchor}&v=1#top")
    assert links.render(doc("a.md"), "") == "https://x.io/a.md?h=&v=1#top"
    assert LinkTemplate().render(doc("a.md"), "why") == ""


def test_literal_braces() -> None:
    links = LinkTemplate("https://x.io/{{v}}/{path}#{anchor}")
    assert links.render(doc("a.md"), "b") == "https://x.io/{v}/a.md#b"


BASES = ["https://x.io/docs/", "https://x.io/docs", "https://x.io/{v}//", "https://x/#/d", ""]
PATHS = ["en/faq.md", "en/a b.md", "ünï/çödé.md", "a/b%c?.md", "README"]
ANCHORS = ["why", "", "a b:c", "ü-ß"]


@pytest.mark.parametrize("base", BASES)
def test_legacy_base_url_matches_chunk_url(base: str) -> None:
    links = LinkTemplate.from_base_url(base)
    for path in PATHS:
        for anchor in ANCHORS:
            assert links.render(doc(path), anchor) == chunk_url(base, path, anchor), (path, anchor)


def test_legacy_base_url_known_values() -> None:
    links = LinkTemplate.from_base_url("https://x.io/docs/")
    assert links.render(doc("en/faq.md"), "why") == "https://x.io/docs/en/faq.md#why"
    assert links.render(doc("en/a b.md"), "") == "https://x.io/docs/en/a%20b.md"
    assert LinkTemplate.from_base_url("") == LinkTemplate()


def test_unknown_placeholder_names_it_and_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as raised:
        LinkTemplate("https://x.io/{nme}#{anchor}")
    message = str(raised.value)
    assert "{nme}" in message
    for name in ("{path}", "{stem}", "{anchor}", "{commit}"):
        assert name in message
    assert message.endswith(".")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("template", "words_in_message"),
    [
        ("https://x.io/{}", "Unknown placeholder {}"),
        ("https://x.io/{stem.upper}", "Unknown placeholder {stem.upper}"),
        ("https://x.io/{stem:>9}", "no format spec"),
        ("https://x.io/{path!r}", "no format spec"),
        ("https://x.io/{stem", "unmatched brace"),
        ("https://x.io/stem}", "unmatched brace"),
    ],
)
def test_malformed_templates_are_config_errors(template: str, words_in_message: str) -> None:
    with pytest.raises(ConfigError, match=words_in_message.replace("{", r"\{")):
        LinkTemplate(template)


def test_unknown_style_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Unknown URL style 'hugo'; use one of plain"):
        LinkTemplate("https://x.io/{stem}", "hugo")  # type: ignore[arg-type]


def test_chunker_uses_links_over_base_url_and_passes_commit() -> None:
    links = LinkTemplate("https://x.io/{commit}/{stem}#{anchor}", "docusaurus")
    chunker = MarkdownChunker(words, links=links, commit="abc123", source_base_url="https://old")
    page = Document("guides/02-install.md", "Install", "## Get it\n\nRun pip.", "markdown")
    chunk = chunker.chunk(page)[0]
    assert chunk.url == "https://x.io/abc123/guides/install#get-it"


def test_chunker_base_url_unchanged() -> None:
    chunker = MarkdownChunker(words, source_base_url="https://x.io/docs/", min_tokens=0)
    page = Document("en/faq b.md", "FAQ", "Intro text.\n\n## Why\n\nBecause.", "markdown")
    urls = [chunk.url for chunk in MarkdownChunker(words, min_tokens=0).chunk(page)]
    assert urls == ["", ""]
    urls = [chunk.url for chunk in chunker.chunk(page)]
    assert urls == [chunk_url("https://x.io/docs/", "en/faq b.md", a) for a in ("", "why")]


def test_front_matter_slug_reaches_the_link(tmp_path: Path) -> None:
    source = tmp_path / "docs" / "01-guides" / "intro.md"
    source.parent.mkdir(parents=True)
    source.write_text(
        "---\nid: welcome\nslug: '/start/here'\ntitle: Intro\n---\n\n# Intro\n\nHello.\n",
        encoding="utf-8",
    )
    page = read_document(source, tmp_path / "docs")
    assert isinstance(page, Document)
    assert (page.doc_id, page.slug) == ("welcome", "/start/here")
    links = LinkTemplate("https://d.io/docs/{stem}#{anchor}", "docusaurus")
    assert links.render(page, "") == "https://d.io/docs/start/here"
    without = tmp_path / "docs" / "01-guides" / "setup.md"
    without.write_text("# Setup\n\nSteps.\n", encoding="utf-8")
    plain = read_document(without, tmp_path / "docs")
    assert isinstance(plain, Document)
    assert plain.slug == ""
    assert links.render(plain, "") == "https://d.io/docs/guides/setup"


def test_id_placeholder_is_the_front_matter_id_or_the_file_name():
    template = LinkTemplate("https://milvus.io/docs/{id}#{anchor}")
    named = Document(
        "userGuide/manage/collections.md", "T", "x", "markdown", doc_id="manage-collections.md"
    )
    plain = Document("about/overview.md", "T", "x", "markdown")
    assert template.render(named, "create") == "https://milvus.io/docs/manage-collections.md#create"
    assert template.render(plain, "") == "https://milvus.io/docs/overview.md"
