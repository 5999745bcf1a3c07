"""Doc sets: the config file and its errors, folder and git sources indexed into a
collection each, refreshes that read only what changed, and questions that search the
doc sets of their channel. Real git repositories, real Milvus Lite, tiny Qwen3 models."""

from __future__ import annotations

import functools
import subprocess
import threading
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rag_core.commands import format_answer, run_index
from rag_core.components import Models, open_stores
from rag_core.docset_table import docset_table
from rag_core.docsets import DocSet, docsets_for_channel, load_docsets, parse_duration
from rag_core.errors import ConfigError, IndexNotFoundError, InputError
from rag_core.pipeline import RagPipeline, merge_fairly
from rag_core.settings import Settings
from rag_core.types import Chunk, ScoredChunk

ZEBRA = {
    "install.md": "# Installing zebrafish\n\nRun `pip install zebrafish` to get the client.\n",
    "connect.md": "# Connecting zebrafish\n\nCall `connect(uri)`; the port is 19530.\n",
    "drafts/wip.md": "# Draft\n\nNot ready for readers.\n",
}
OTTER = {
    "guide/otter.md": "# Otter backups\n\nOtters back up nightly with `otter snapshot`.\n",
    "guide/restore.md": "# Restoring otters\n\nRestore with `otter restore --latest`.\n",
}

TWO_DOC_SETS = """
[docsets.zebra]
source = "zebra"
exclude = ["drafts/**"]
url = "https://zebra.example/{stem}#{anchor}"
channels = ["C0ZEBRA01"]

[docsets.otter]
source = "otter"
url = "https://otter.example/{path}#{anchor}"
channels = ["C0OTTER01"]
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def new_repo(root: Path, files: dict[str, str]) -> Path:
    write(root, files)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "docs@example.com")
    git(root, "config", "user.name", "Docs")
    commit_all(root, "first")
    return root


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def settings_for(tmp_path: Path, config: str, **overrides: object) -> Settings:
    path = tmp_path / "ragbot.toml"
    path.write_text(config, encoding="utf-8")
    return Settings(
        _env_file=None,
        config=path,
        milvus_uri=str(tmp_path / "milvus" / "ragbot.db"),
        data_dir=tmp_path / "data",
        collection="ds",
        rerank_model="none",
        device="cpu",
        **overrides,
    )


# -- the config file ----------------------------------------------------------------------


def test_config_declares_doc_sets_of_each_kind(tmp_path: Path):
    settings = settings_for(
        tmp_path,
        """
        [docsets.zebra]
        source = "zebra-docs"
        include = ["**/*.md"]
        exclude = ["drafts/**"]
        url = "https://zebra.example/{stem}#{anchor}"
        channels = ["C0ZEBRA01"]

        [docsets.milvus-docs]
        source = "https://github.com/milvus-io/milvus-docs.git"
        ref = "v2.4.x"
        subdir = "site/en"
        url_style = "docusaurus"
        refresh = "1h"

        [docsets.site]
        source = "https://docs.example.com/sitemap.xml"
        refresh = 900
        """,
        dm_docsets="zebra",
    )
    zebra, milvus, site = settings.docsets
    assert (zebra.kind, zebra.source) == ("folder", str((tmp_path / "zebra-docs").resolve()))
    assert (zebra.include, zebra.exclude, zebra.channels) == (
        ("**/*.md",),
        ("drafts/**",),
        ("C0ZEBRA01",),
    )
    assert (milvus.kind, milvus.ref, milvus.subdir, milvus.refresh_s) == (
        "git",
        "v2.4.x",
        "site/en",
        3600.0,
    )
    assert milvus.collection == "ds_milvus_docs" and zebra.collection == "ds_zebra"
    assert (site.kind, site.refresh_s, site.everywhere) == ("sitemap", 900.0, True)
    assert settings.dm_docset_names == ("zebra",)


def test_the_example_config_is_valid():
    example = Path(__file__).resolve().parents[1] / "deploy" / "docsets.example.toml"
    docsets = load_docsets(example, collection="ragbot_docs")
    assert [(d.name, d.kind) for d in docsets] == [("milvus", "git"), ("handbook", "folder")]
    assert Path(docsets[1].source) == example.parents[1] / "sample_docs"


def test_without_a_config_file_the_folder_settings_make_one_doc_set():
    settings = Settings(
        _env_file=None, docs_path=Path("handbook"), source_base_url="https://x", collection="kb"
    )
    assert settings.docsets == (
        DocSet(
            name="docs",
            kind="folder",
            source="handbook",
            collection="kb",  # the collection existing installs already have
            base_url="https://x",
        ),
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[docsets.a]\nref = 'main'\n", r"\[docsets.a\]: source is missing"),
        ("[docsets.a]\nsource = 'x'\ncolour = 'red'\n", r"unknown key 'colour'"),
        ("[docsets.A]\nsource = 'x'\n", r"a doc set name is 1-40 lower-case"),
        ("[docsets.a]\nsource = 'x'\n[docsets.a]\nsource = 'y'\n", r"two doc sets named 'a'"),
        ("[docsets.a]\nsource = 'x\n", r"not valid TOML"),
        ("[docsets.a]\nsource = 'x'\ntype = 'folder'\nrefresh = '1h'\n", r"refresh applies to git"),
        ("[docsets.a]\nsource = 'x.git'\nrefresh = '5s'\n", r"refresh must be at least 60 s"),
        ("[docsets.a]\nsource = 'x.git'\nrefresh = 'often'\n", r"duration like"),
        ("[docsets.a]\nsource = 'x'\nchannels = ['#general']\n", r"Slack channel ids"),
        ("[docsets.a]\nsource = 'x'\nsubdir = '../etc'\n", r"subdir must stay inside"),
        ("[docsets.a]\nsource = 'x'\nurl_style = 'hugo'\n", r"url_style must be one of"),
        ("[docsets.a-b]\nsource = 'x'\n[docsets.a_b]\nsource = 'y'\n", r"share collection"),
        ("[docsets.a]\nsource = 'x'\ntype = 'ftp'\n", r"type must be folder, git or sitemap"),
        ("title = 'docs'\n", r"unknown section 'title'"),
        ("", r"declares no doc set"),
    ],
)
def test_config_errors_name_the_file_the_doc_set_and_the_fix(tmp_path, config, message):
    with pytest.raises(ConfigError, match=message) as caught:
        settings_for(tmp_path, config)
    assert str(tmp_path / "ragbot.toml") in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_config_file_and_unknown_dm_doc_set_are_clear(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"RAGBOT_CONFIG .*nowhere.toml: no such file"):
        Settings(_env_file=None, config=tmp_path / "nowhere.toml")
    with pytest.raises(ConfigError, match=r"RAGBOT_DM_DOCSETS names 'otter'.*doc sets: docs"):
        Settings(_env_file=None, dm_docsets="docs, otter")


def test_durations():
    assert [parse_duration(v, what="refresh") for v in ("90s", "15m", "1h", "2d", 600)] == [
        90.0,
        900.0,
        3600.0,
        172800.0,
        600.0,
    ]


def test_a_channel_searches_its_own_doc_sets_and_dms_the_configured_ones():
    zebra = DocSet("zebra", "folder", "z", "c_z", channels=("C1",))
    otter = DocSet("otter", "folder", "o", "c_o", channels=("C2",))
    shared = DocSet("shared", "folder", "s", "c_s")
    docsets = (zebra, otter, shared)
    assert docsets_for_channel(docsets, "C1", direct=False) == ("zebra", "shared")
    assert docsets_for_channel(docsets, "C3", direct=False) == ("shared",)
    assert docsets_for_channel(docsets, "D1", direct=True) == ("zebra", "otter", "shared")
    assert docsets_for_channel(docsets, "D1", direct=True, dm_docsets=["otter"]) == ("otter",)


def test_candidates_of_several_doc_sets_are_interleaved_by_rank():
    def hits(docset: str, n: int) -> list[ScoredChunk]:
        return [
            ScoredChunk(
                Chunk(f"{docset}{i}.md", "", (), "", "", 0, "x"), 1.0 / (i + 1), None, docset
            )
            for i in range(n)
        ]

    merged = merge_fairly([hits("big", 5), hits("small", 2)], limit=6)
    assert [(h.docset, h.chunk.doc_path) for h in merged] == [
        ("big", "big0.md"),
        ("small", "small0.md"),
        ("big", "big1.md"),
        ("small", "small1.md"),
        ("big", "big2.md"),
        ("big", "big3.md"),
    ]
    assert merge_fairly([hits("one", 3)], limit=2) == hits("one", 3)[:2]


# -- indexing and searching ----------------------------------------------------------------


@pytest.fixture
def models(tiny_embedder) -> Models:
    return Models(embedder=tiny_embedder, reranker=None)


def test_two_doc_sets_are_indexed_apart_and_searched_together(tmp_path, models, tiny_embedder):
    write(tmp_path / "zebra", ZEBRA)
    write(tmp_path / "otter", OTTER)
    settings = settings_for(tmp_path, TWO_DOC_SETS)

    run = run_index(settings, models=models)

    assert run.failed == []
    assert run.text.startswith("zebra: Indexed 2 files") and "\notter: Indexed 2 files" in run.text
    stores = open_stores(settings)
    try:
        pipeline = RagPipeline(settings, embedder=tiny_embedder, stores=stores)
        only_zebra = pipeline.retrieve("zebrafish port", docsets=["zebra"], top_n=10)
        both = pipeline.ask("How do I back up otters and install zebrafish?")
        assert {p.docset for p in only_zebra.passages} == {"zebra"}
        assert {p.chunk.doc_path for p in only_zebra.passages} == {"install.md", "connect.md"}
        assert only_zebra.passages[0].chunk.url.startswith("https://zebra.example/")
        assert {p.docset for p in both.passages} == {"zebra", "otter"}
        assert {c.docset for c in both.citations} == {"zebra", "otter"}
        assert "zebra: " in format_answer(both) and "otter: guide/" in format_answer(both)
        with pytest.raises(InputError, match=r"no doc set named 'seal' \(doc sets: zebra, otter\)"):
            pipeline.ask("zebrafish", docsets=["seal"])
    finally:
        stores.close()
    table = docset_table(settings)
    assert table.splitlines()[0].split() == [
        "name", "source", "ref/commit", "documents", "chunks", "bm25", "last", "indexed",
        "next", "refresh", "channels",
    ]  # fmt: skip
    zebra_row = table.splitlines()[1].split()
    assert zebra_row[0] == "zebra" and zebra_row[3] == "2" and zebra_row[-1] == "C0ZEBRA01"
    assert zebra_row[5] == "english_stop"  # what Milvus Lite gives English docs


def test_a_failing_doc_set_does_not_stop_the_others(tmp_path, models, tiny_embedder):
    write(tmp_path / "otter", OTTER)
    settings = settings_for(
        tmp_path,
        """
        [docsets.gone]
        source = "not-there"
        [docsets.empty]
        source = "otter"
        include = ["**/*.rst"]
        [docsets.otter]
        source = "otter"
        """,
    )

    run = run_index(settings, models=models)

    assert run.failed == ["gone", "empty"]
    lines = run.text.splitlines()
    assert lines[0] == (
        f"error: Doc set gone: the folder {(tmp_path / 'not-there').resolve()} does not exist; "
        "fix its source or create it."
    )
    assert (
        lines[1].startswith("error: Doc set empty: No documents in ")
        and "match **/*.rst" in lines[1]
    )
    assert lines[2].startswith("otter: Indexed 2 files")
    stores = open_stores(settings)
    try:
        pipeline = RagPipeline(settings, embedder=tiny_embedder, stores=stores)
        answer = pipeline.ask("How do otters back up?")  # the others are left out, logged
        assert {p.docset for p in answer.passages} == {"otter"}
        with pytest.raises(IndexNotFoundError):
            pipeline.ask("How do otters back up?", docsets=["gone"])
    finally:
        stores.close()
    with pytest.raises(InputError, match=r"no doc set named 'seal'"):
        run_index(settings, docset="seal", models=models)
    with pytest.raises(InputError, match=r"part of doc set otter's folder .* --docset otter"):
        run_index(settings, docset="otter", path=tmp_path / "otter" / "guide", models=models)
    with pytest.raises(InputError, match=r"Name the doc set PATH belongs to with --docset"):
        run_index(settings, path=tmp_path / "otter", models=models)


def test_git_doc_set_refresh_reads_only_what_changed(tmp_path, models, tiny_embedder):
    docs = {
        f"site/en/page{i:02d}.md": f"# Page {i}\n\nAbout topic {i}: {'words ' * 40}\n"
        for i in range(12)
    }
    docs["site/en/old-name.md"] = "# Renamed page\n\nThis page moves to a new name.\n"
    docs["site/en/doomed.md"] = "# Doomed page\n\nThis page is deleted.\n"
    docs["README.md"] = "# Not part of the docs\n"
    repo = new_repo(tmp_path / "origin", docs)
    settings = settings_for(
        tmp_path,
        f"""
        [docsets.repo]
        source = "{repo}"
        ref = "main"
        subdir = "site/en"
        url = "https://docs.example/{{commit}}/{{path}}#{{anchor}}"
        refresh = "1h"
        """,
    )

    first = run_index(settings, models=models)
    stores = open_stores(settings)
    try:
        info = stores["repo"].index_info()
        assert info is not None and info.revision == git(repo, "rev-parse", "HEAD")
        assert info.revision_at is not None and info.revision_at.tzinfo == UTC
    finally:
        stores.close()
    assert "Indexed 14 files" in first.text and f"commit {info.revision[:7]}" in first.text

    (repo / "site/en/page03.md").write_text("# Page 3\n\nRewritten entirely.\n", encoding="utf-8")
    git(repo, "mv", "site/en/old-name.md", "site/en/new-name.md")
    git(repo, "rm", "-q", "site/en/doomed.md")
    (repo / "README.md").write_text("# Changed outside the subdir\n", encoding="utf-8")
    second_commit = commit_all(repo, "edit, rename, delete")

    refresh = run_index(settings, models=models)

    assert "Indexed 2 files" in refresh.text  # page03 and new-name: nothing else was read
    assert "(1 new," in refresh.text or "(2 new," in refresh.text
    stores = open_stores(settings)
    try:
        info = stores["repo"].index_info()
        assert info is not None and info.revision == second_commit
        assert info.chunk_count == 13  # 12 pages and the renamed one, the deleted one gone
        pipeline = RagPipeline(settings, embedder=tiny_embedder, stores=stores)
        found = pipeline.retrieve("renamed page moves", mode="bm25", top_n=20, candidates=20)
        paths = {p.chunk.doc_path for p in found.passages}
        assert "new-name.md" in paths and "old-name.md" not in paths and "doomed.md" not in paths
        urls = {p.chunk.doc_path: p.chunk.url for p in found.passages}
        assert urls["new-name.md"].startswith(f"https://docs.example/{second_commit}/new-name.md")
    finally:
        stores.close()
    again = run_index(settings, models=models)  # nothing new upstream: nothing read
    assert "Indexed 0 files" in again.text and "0 new" in again.text
    table = docset_table(settings, now=datetime.now(UTC))
    row = table.splitlines()[1]
    assert f"main @ {second_commit[:7]}" in row
    assert "in 60 min" in row or "in 59 min" in row


@pytest.fixture
def site(tmp_path: Path):
    """A static site on loopback: two HTML pages and the sitemap listing them."""
    root = tmp_path / "site"
    write(
        root,
        {
            "docs/backup.html": "<html><head><title>x</title></head><body><nav>Menu</nav>"
            "<main><h1>Otter backups</h1><h2 id='nightly'>Nightly</h2>"
            "<p>Otters back up nightly with otter snapshot.</p></main></body></html>",
            "docs/restore.html": "<html><body><main><h1>Restoring otters</h1>"
            "<p>Restore with otter restore --latest.</p></main></body></html>",
        },
    )
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    base = f"http://127.0.0.1:{server.server_port}"
    pages = "".join(f"<url><loc>{base}/docs/{n}.html</loc></url>" for n in ("backup", "restore"))
    (root / "sitemap.xml").write_text(
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{pages}</urlset>', "utf-8"
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base
    server.shutdown()
    server.server_close()


def test_sitemap_doc_set_links_chunks_to_their_pages(tmp_path, site, models, tiny_embedder):
    settings = settings_for(tmp_path, f'[docsets.web]\nsource = "{site}/sitemap.xml"\n')

    first = run_index(settings, models=models)
    again = run_index(settings, models=models)

    assert "Indexed 2 files" in first.text and "2 of 2 pages changed" in first.text
    assert "0 of 2 pages changed" in again.text and "0 new" in again.text
    stores = open_stores(settings)
    try:
        pipeline = RagPipeline(settings, embedder=tiny_embedder, stores=stores)
        found = pipeline.retrieve("otter snapshot nightly", mode="bm25", top_n=5)
    finally:
        stores.close()
    urls = {p.chunk.url for p in found.passages}
    assert f"{site}/docs/backup.html#nightly" in urls
    assert all(url.startswith(f"{site}/docs/") for url in urls)
    assert not any("Menu" in p.chunk.text for p in found.passages)  # the page's main part only
