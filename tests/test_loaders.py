"""Loading files into Documents: walking, decoding, front matter and format conversion."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_core.errors import InputError, RagbotError
from rag_core.ingest.formats import convert_source, split_front_matter
from rag_core.ingest.loaders import (
    SUPPORTED_SUFFIXES,
    find_source_files,
    load_documents,
    read_documents,
)

SHARED_DOCS = Path("/work/shared/data/milvus_docs/en")


def write(root: Path, relative: str, content: str | bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_supported_suffixes() -> None:
    assert {".md", ".mdx", ".markdown", ".txt", ".rst", ".html", ".htm"} == SUPPORTED_SUFFIXES


def test_walks_recursively_sorted_with_relative_posix_paths(tmp_path: Path) -> None:
    write(tmp_path, "zeta.md", "# Zeta\n\nLast at the top level.")
    write(tmp_path, "alpha.txt", "First file.")
    write(tmp_path, "en/faq/operational_faq.md", "# Ops\n\nDeep file.")
    write(tmp_path, "en/guide.RST", "Guide\n=====\n\nUpper-case suffix.")
    write(tmp_path, "en/picture.png", b"\x89PNG\r\n")
    write(tmp_path, "notes.pdf", b"%PDF-1.4")
    write(tmp_path, ".git/HEAD.md", "# not walked")
    write(tmp_path, ".hidden.md", "# not read")
    write(tmp_path, "en/.cache/x.md", "# not walked either")

    report = load_documents(tmp_path)

    assert [doc.path for doc in report.documents] == [
        "alpha.txt",
        "en/faq/operational_faq.md",
        "en/guide.RST",
        "zeta.md",
    ]
    assert report.ignored == 2
    assert report.skipped == []
    assert [doc.format for doc in report.documents] == ["text", "markdown", "rst", "markdown"]


def test_front_matter_gives_id_and_title_and_is_removed(tmp_path: Path) -> None:
    write(
        tmp_path,
        "faq.md",
        "---\n"
        "id: operational_faq.md\n"
        "summary: Answers to questions. # a comment\n"
        'title: "Operational FAQ: Docker"\n'
        "related_key:\n"
        "  - docker\n"
        "---\n\n"
        "# Something else\n\nBody text.\n",
    )
    (doc,) = load_documents(tmp_path).documents
    assert doc.doc_id == "operational_faq.md"
    assert doc.title == "Operational FAQ: Docker"
    assert doc.text.startswith("# Something else")
    assert "summary:" not in doc.text and "---" not in doc.text


def test_front_matter_is_yaml() -> None:
    meta, rest = split_front_matter(
        "---\ntitle: 'It''s here'\nid: \"a\\\"b\"\nSummary: >\n  folded\n  lines\n---\nText"
    )
    assert meta == {"title": "It's here", "id": 'a"b', "summary": "folded lines"}
    assert rest == "Text"
    unclosed = "---\ntitle: x\nno end"
    assert split_front_matter(unclosed) == ({}, unclosed)
    rst_title = "-----\nTitle\n-----\n\nText"
    assert split_front_matter(rst_title) == ({}, rst_title)
    over_lined = "---\nTitle\n---\n\nText"  # a scalar, not a mapping
    assert split_front_matter(over_lined) == ({}, over_lined)
    broken = "---\ntitle: [unclosed\n---\nText"
    assert split_front_matter(broken) == ({}, broken)
    meta, _ = split_front_matter("---\ndeprecate: true\ntags:\n  - a\nweight: 3\nslug:\n---\n")
    assert meta == {"deprecate": "true", "weight": "3", "slug": ""}


def test_title_falls_back_to_h1_then_file_name(tmp_path: Path) -> None:
    write(tmp_path, "with_h1.md", "```\n# not a heading\n```\n\n# Real Heading\n\nText.")
    write(tmp_path, "install-guide_v2.md", "No heading at all.")
    titles = {doc.path: doc.title for doc in load_documents(tmp_path).documents}
    assert titles == {"install-guide_v2.md": "Install guide v2", "with_h1.md": "Real Heading"}


def test_bad_files_are_skipped_with_reasons_and_never_crash(tmp_path: Path) -> None:
    write(tmp_path, "good.md", "# Good\n\nFine.")
    write(tmp_path, "latin1.txt", "caf\xe9 cr\xe8me".encode("latin-1"))
    write(tmp_path, "binary.md", b"PK\x03\x04\x00\x00binary")
    write(tmp_path, "empty.rst", b"")
    write(tmp_path, "blank.txt", "  \n\n\t\n")
    write(tmp_path, "only_front_matter.md", "---\ntitle: Nothing\n---\n")
    write(tmp_path, "script_only.html", "<html><script>alert(1)</script></html>")

    report = load_documents(tmp_path)

    assert [doc.path for doc in report.documents] == ["good.md"]
    reasons = {skipped.path: skipped.reason for skipped in report.skipped}
    assert set(reasons) == {
        "binary.md",
        "blank.txt",
        "empty.rst",
        "latin1.txt",
        "only_front_matter.md",
        "script_only.html",
    }
    assert "NUL" in reasons["binary.md"]
    assert reasons["latin1.txt"] == "not UTF-8 text (byte 0xe9 at offset 3)"
    assert reasons["empty.rst"] == reasons["blank.txt"] == "empty file"
    assert "no text" in reasons["only_front_matter.md"]


def test_byte_order_mark_and_crlf_are_normalised(tmp_path: Path) -> None:
    write(tmp_path, "win.md", "\ufeff---\r\ntitle: Windows\r\n---\r\nLine one\r\nLine two\r\n")
    (doc,) = load_documents(tmp_path).documents
    assert doc.title == "Windows"
    assert doc.text == "Line one\nLine two"


def test_empty_folder_gives_empty_report(tmp_path: Path) -> None:
    report = load_documents(tmp_path)
    assert (report.documents, report.skipped, report.ignored) == ([], [], 0)


def test_missing_path_is_a_clear_input_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(InputError) as raised:
        load_documents(missing)
    assert str(raised.value) == f"No such file or directory: {missing}"
    assert isinstance(raised.value, RagbotError)


def test_single_file_path_is_loaded_relative_to_its_folder(tmp_path: Path) -> None:
    path = write(tmp_path, "docs/en/page.md", "# Page\n\nOne file.")
    report = load_documents(path)
    assert [doc.path for doc in report.documents] == ["page.md"]
    assert report.documents[0].title == "Page"


def test_single_unsupported_file_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", "a,b\n1,2\n")
    with pytest.raises(InputError, match=r"Unsupported file type '\.csv'"):
        load_documents(path)


def test_documents_are_read_in_order_with_skips_and_progress(tmp_path: Path) -> None:
    write(tmp_path, "a.md", "Alpha.")
    write(tmp_path, "b.md", b"\x00\x01")
    write(tmp_path, "c.md", "Gamma.")
    sources = find_source_files(tmp_path)
    assert sources.paths == tuple(tmp_path / n for n in ("a.md", "b.md", "c.md"))
    seen: list[tuple[int, int]] = []
    report = read_documents(sources.paths, sources.base, each=lambda *step: seen.append(step))
    assert [doc.path for doc in report.documents] == ["a.md", "c.md"]
    assert [skip.path for skip in report.skipped] == ["b.md"]
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_rst_titles_become_headings_by_order_of_adornment_style() -> None:
    rst = (
        "=========\nThe Guide\n=========\n\n"
        "Intro with ``literal``, :ref:`a label <target>` and `Site <https://x.io>`_.\n\n"
        "Install\n-------\n\nText.\n\n"
        "Docker\n~~~~~~\n\nDeeper.\n\n"
        "Usage\n-----\n\nBack up.\n"
    )
    converted = convert_source(rst, ".rst")
    headings = [line for line in converted.text.split("\n") if line.startswith("#")]
    assert headings == ["# The Guide", "## Install", "### Docker", "## Usage"]
    assert converted.title == "The Guide"
    assert "Intro with `literal`, a label and [Site](https://x.io)." in converted.text
    assert "\n\n\n" not in converted.text


def test_rst_code_blocks_and_literal_blocks_become_fences() -> None:
    rst = (
        "Run this::\n\n    pip install thing\n\n    thing --help\n\nAfter.\n\n"
        ".. code-block:: python\n   :linenos:\n\n   import thing\n   thing.run()\n\n"
        ".. note:: Be careful.\n\n   Really.\n\n"
        ".. image:: picture.png\n   :alt: hidden\n\n"
        ".. a comment that is dropped\n\nEnd.\n"
    )
    text = convert_source(rst, ".rst").text
    assert "Run this:\n\n```\npip install thing\n\nthing --help\n```\n\nAfter." in text
    assert "```python\nimport thing\nthing.run()\n```" in text
    assert ":linenos:" not in text
    assert "**Note:** Be careful.\n\nReally." in text
    assert "picture.png" not in text and "hidden" not in text and "comment" not in text
    assert text.endswith("End.")


def test_html_headings_pre_and_dropped_elements() -> None:
    html = (
        "<!doctype html><html><head><title> My  Page </title>"
        "<style>.x { color: red }</style></head><body>"
        "<nav><a href='/'>Home</a> Menu</nav>"
        "<script>var s = '<h1>not a heading</h1>';</script>"
        "<h1>Main   Title</h1><p>Some   text &amp; more\n   text.</p>"
        "<h3>Deep <code>part</code></h3><ul><li>one</li><li>two</li></ul>"
        '<pre><code class="language-python">def f():\n    return  1\n</code></pre>'
        "<p>After<br>break</p></body></html>"
    )
    converted = convert_source(html, ".html")
    assert converted.format == "html"
    assert converted.title == "Main Title"
    assert converted.text == (
        "# Main Title\n\nSome text & more text.\n\n### Deep `part`\n\n- one\n- two\n\n"
        "```python\ndef f():\n    return  1\n```\n\nAfter\nbreak"
    )


def test_html_title_element_is_the_fallback_title(tmp_path: Path) -> None:
    write(tmp_path, "page.htm", "<title>Release  notes</title><h2>v1</h2><p>Changes.</p>")
    (doc,) = load_documents(tmp_path).documents
    assert doc.title == "Release notes"
    assert doc.text == "## v1\n\nChanges."


def test_mdx_drops_esm_and_jsx_but_keeps_text_and_code() -> None:
    mdx = (
        "---\ntitle: MDX Page\n---\n"
        "import Tabs from '@theme/Tabs';\n"
        'import {\n  A,\n  B,\n} from "./x";\n'
        "export const meta = {\n  a: 1,\n};\n\n"
        '<Tabs groupId="os">\n<TabItem value="linux">\n\n'
        "Install on Linux.\n\n</TabItem>\n</Tabs>\n\n"
        '<Admonition type="tip">Use the <b>CLI</b>.</Admonition>\n'
        "{/* a comment */}\n\n"
        '```js\nimport x from "y";\n<Tabs>\n```\n\n'
        "Type <your_token> here.\n"
    )
    converted = convert_source(mdx, ".mdx")
    assert converted.format == "markdown"
    assert converted.title == "MDX Page"
    assert converted.text == (
        "Install on Linux.\n\nUse the CLI.\n\n"
        '```js\nimport x from "y";\n<Tabs>\n```\n\nType <your_token> here.'
    )


def test_markdown_html_tags_are_stripped_outside_code() -> None:
    markdown = (
        '<div class="alert note">\n\nA note with <a href="x.md">a link</a>.\n\n</div>\n\n'
        "<table>\n<tr>\n  <td>IVF_FLAT</td>\n  <td>Quantization &amp; more</td>\n</tr>\n"
        "</table>\n\n"
        "Keep `<td>` in code and <your_token> placeholders.\n\n"
        "```html\n<div>kept</div>\n```"
    )
    text = convert_source(markdown, ".md").text
    assert text == (
        "A note with a link.\n\nIVF_FLAT\nQuantization & more\n\n"
        "Keep `<td>` in code and <your_token> placeholders.\n\n```html\n<div>kept</div>\n```"
    )


def test_shared_corpus_loads_completely() -> None:
    report = load_documents(SHARED_DOCS)
    assert len(report.documents) == len(list(SHARED_DOCS.rglob("*.md")))
    assert report.skipped == [] and report.ignored == 0
    faq = next(doc for doc in report.documents if doc.path == "faq/operational_faq.md")
    assert (faq.doc_id, faq.title) == ("operational_faq.md", "Operational FAQ")


def test_bundled_sample_docs_are_a_faithful_subset() -> None:
    sample = Path(__file__).resolve().parent.parent / "sample_docs"
    report = load_documents(sample)
    paths = {doc.path for doc in report.documents}
    assert 25 <= len(paths - {"SOURCE.txt"}) <= 40
    assert {
        "en/faq/operational_faq.md",
        "en/getstarted/quickstart.md",
        "en/getstarted/install-overview.md",
        "en/getstarted/milvus_lite.md",
    } <= paths
    assert report.skipped == [] and report.ignored == 1  # the LICENSE file
    assert (sample / "LICENSE").read_bytes() == (SHARED_DOCS.parent / "LICENSE").read_bytes()
    assert sum(path.stat().st_size for path in sample.rglob("*") if path.is_file()) < 1_500_000
    for relative in paths - {"SOURCE.txt"}:
        copied = (sample / relative).read_bytes()
        assert copied == (SHARED_DOCS.parent / relative).read_bytes(), relative
