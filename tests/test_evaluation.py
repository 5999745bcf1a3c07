"""``ragbot eval``'s report: splits by language and doc set, abstain accuracy, the
questions each mode missed, the terminal tables and the HTML page. Real Milvus Lite,
tiny Qwen3 models; the pure parts are checked on hand-made results."""

from __future__ import annotations

import base64
import dataclasses
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rag_core.docset_stores import DocSetStores
from rag_core.docsets import DocSet
from rag_core.errors import InputError
from rag_core.eval_report import render_html, write_report
from rag_core.eval_summary import miss_reason, mode_figures
from rag_core.eval_tables import format_report, shorten
from rag_core.evaluation import (
    EvalQuestion,
    QuestionResult,
    evaluate,
    load_questions,
    report,
)
from rag_core.ingest.chunking import MarkdownChunker
from rag_core.ingest.indexer import Indexer
from rag_core.languages import language_group
from rag_core.pipeline import RagPipeline
from rag_core.settings import Settings

FIRST = {
    "install.md": "# Installing\n\nRun `pip install zebrafish` to install the client.\n",
    "connect.md": "# Connecting\n\nCall `connect(uri)`; the default port is 19530.\n",
}
SECOND = {"backup.md": "# Backups\n\nRun `zebrafish backup create` every night.\n"}
QUESTIONS = [
    {"id": "e1", "question": "How do I install zebrafish?", "relevant": ["install.md"]},
    {"id": "e2", "question": "Which port does connect use?", "relevant": ["connect.md"]},
    {"id": "z1", "question": "怎么安装 zebrafish 客户端？", "relevant": ["install.md"]},
    {"id": "j1", "question": "zebrafish のバックアップはどう作りますか", "relevant": ["backup.md"]},
    {"id": "x1", "question": "Who won the 1998 world cup?", "relevant": []},
    {"id": "g1", "question": "A ghost document", "relevant": ["nowhere.md"]},
]


def write_docs(root: Path, docs: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for path, text in docs.items():
        (root / path).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def two_docsets(tmp_path_factory, tiny_embedder):
    """Two doc sets, ``first`` and ``second``, indexed into one Milvus Lite file."""
    root = tmp_path_factory.mktemp("eval")
    sets = [
        DocSet(name="first", kind="folder", source="", collection="eval_first"),
        DocSet(name="second", kind="folder", source="", collection="eval_second"),
    ]
    stores = DocSetStores.connect(str(root / "milvus.db"), sets)
    chunker = MarkdownChunker(tiny_embedder.count_tokens, max_tokens=128, overlap_tokens=16)
    for name, docs in (("first", FIRST), ("second", SECOND)):
        Indexer(stores[name], tiny_embedder, chunker).index(write_docs(root / name, docs))
    yield stores
    stores.close()


def pipeline(stores, embedder, reranker=None, **overrides) -> RagPipeline:
    settings = Settings(_env_file=None, candidates=10, top_n=3, **overrides)
    return RagPipeline(settings, embedder=embedder, stores=stores, reranker=reranker)


def questions_file(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), "utf-8")
    return path


# -- pure parts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("How do I set nlist for IVF_FLAT?", "English"),
        ("插入中文文本的时候报 `length exceeds max length`，MinIO 也报错", "Chinese"),
        ("MinIO のバケット名を変えるにはどうすればいいですか", "Japanese"),
        ("Milvus에서 파티션 키를 쓰면 파티션이 몇 개 생기나요?", "Korean"),
        ("¿Cómo filtro con `like` un campo VARCHAR?", "other Latin"),
        ("Как включить TLS в Milvus?", "other"),
    ],
)
def test_language_comes_from_the_script(text, language):
    assert language_group(text) == language


def result(recall=None, *, abstained=None, best=None, hits=()) -> QuestionResult:
    return QuestionResult((("d", "a.md"),), tuple(hits), recall, recall, recall, abstained, best)


def test_abstain_accuracy_counts_both_kinds_of_right_decision():
    results = [
        result(None, abstained=True, best=0.1),  # unanswerable, abstained: right
        result(None, abstained=False, best=0.9),  # unanswerable, answered: wrong
        result(1.0, abstained=False, best=0.8),  # answerable, answered: right
        result(1.0, abstained=False, best=0.7),  # right
        result(0.0, abstained=True, best=0.2),  # answerable, abstained: wrong
    ]
    figures = mode_figures(results, k=5)
    assert figures["n"] == 3 and figures["recall@5"] == pytest.approx(2 / 3, abs=1e-4)
    assert figures["abstain_accuracy"] == 0.6
    assert figures["abstained_unanswerable"] == 0.5
    assert figures["answered_answerable"] == pytest.approx(2 / 3, abs=1e-4)


def test_a_mode_without_a_reranker_has_no_abstain_figures():
    figures = mode_figures([result(None), result(0.5)], k=3)
    assert figures == {"n": 1, "recall@3": 0.5, "mrr@10": 0.5, "ndcg@10": 0.5}
    assert mode_figures([result(None)], k=5)["recall@5"] is None


def test_miss_reasons_say_what_went_wrong():
    two = EvalQuestion("q", frozenset({"a.md", "b.md"}))
    none = EvalQuestion("q", frozenset())
    assert miss_reason(two, result(1.0, abstained=False), 0.3) is None
    assert miss_reason(two, result(0.5, hits=["a.md"]), 0.3) == "found 1 of 2"
    assert miss_reason(two, result(0.0), 0.3) == "not found"
    assert miss_reason(two, result(1.0, abstained=True, best=0.12), 0.3) == (
        "abstained: best rerank score 0.12 < 0.3"
    )
    searched = dataclasses.replace(result(0.0), searched="not translated; BM25 read only 'MinIO'")
    assert miss_reason(two, searched, 0.3) == "not found; not translated; BM25 read only 'MinIO'"
    assert miss_reason(two, dataclasses.replace(searched, recall=1.0), 0.3) is None
    assert miss_reason(none, result(None), 0.3) is None  # no reranker: no decision
    assert miss_reason(none, result(None, abstained=True, best=0.1), 0.3) is None
    assert miss_reason(none, result(None, abstained=False, best=0.81), 0.3) == (
        "answered: best rerank score 0.81 >= 0.3"
    )


def test_questions_keep_id_docset_and_hint(tmp_path):
    rows = [
        {"id": "h1", "question": "q?", "relevant": ["a.md"], "docset": "s", "answer_hint": "x"},
        {"question": "r?", "relevant": []},
    ]
    first, second = load_questions(questions_file(tmp_path, rows))
    assert (first.id, first.docset, first.answer_hint, first.answerable) == ("h1", "s", "x", True)
    assert (second.id, second.docset, second.answerable) == ("line2", None, False)


def test_relevant_must_be_a_list(tmp_path):
    path = questions_file(tmp_path, [{"question": "q?", "relevant": "a.md"}])
    with pytest.raises(InputError, match=r"questions.jsonl:1: .*'relevant' must be a list"):
        load_questions(path)


def test_shorten_cuts_text_without_spaces():
    assert shorten("插入中文文本的时候报错了怎么办", 7) == "插入中…"  # two columns each
    assert shorten("abcdefgh", 6) == "abcde…"
    assert shorten("a  b\nc", 10) == "a b c"


# -- a real run --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def questions(tmp_path_factory):
    return load_questions(questions_file(tmp_path_factory.mktemp("q"), QUESTIONS))


def test_splits_by_language_and_doc_set_add_up(two_docsets, tiny_embedder, questions):
    run = evaluate(pipeline(two_docsets, tiny_embedder), questions, k=5)
    out = report(run)
    assert (out["questions"], out["n"], out["unanswerable"]) == (6, 5, 1)
    languages = out["splits"]["language"]
    assert list(languages) == ["English", "Chinese", "Japanese"]
    assert [(g["questions"], g["n"]) for g in languages.values()] == [(4, 3), (1, 1), (1, 1)]
    docsets = out["splits"]["docset"]
    # found where its relevant document is, or nowhere; the unanswerable one has none
    assert docsets["first"]["questions"] == 3 and docsets["second"]["questions"] == 1
    assert docsets["(none)"]["n"] == 0 and docsets["(not found)"]["n"] == 1
    for mode, figures in out["modes"].items():
        weighted = sum(g["modes"][mode]["recall@5"] * g["n"] for g in languages.values() if g["n"])
        assert figures["recall@5"] == pytest.approx(weighted / out["n"], abs=1e-3)
        assert "abstain_accuracy" not in figures  # no reranker
    ghost = [m for m in out["misses"]["hybrid"] if m["id"] == "g1"]
    assert ghost and ghost[0]["reason"] == "not found" and ghost[0]["found"]
    assert all(":" in path for path in ghost[0]["found"])  # doc sets named: there are two
    assert len(out["results"]) == 6 and set(out["results"][0]["modes"]) == set(out["modes"])
    json.dumps(out)  # every value is plain JSON


def test_a_question_naming_a_doc_set_only_counts_documents_from_it(two_docsets, tiny_embedder):
    named = [EvalQuestion("How do I install zebrafish?", frozenset({"install.md"}), "n", "second")]
    out = report(evaluate(pipeline(two_docsets, tiny_embedder), named, k=5))
    assert out["splits"]["docset"]["second"]["n"] == 1
    for mode in ("dense", "bm25", "hybrid"):  # install.md is in "first": never relevant
        assert out["modes"][mode]["recall@5"] == 0.0
        assert "first:install.md" in out["results"][0]["modes"][mode]["found"]


@pytest.mark.parametrize(
    ("min_score", "abstained", "answered"),
    [(1.0, 1.0, 0.0), (0.0, 0.0, 1.0)],
)
def test_abstain_follows_min_rerank_score(
    two_docsets, tiny_embedder, tiny_reranker, questions, min_score, abstained, answered
):
    ask = pipeline(two_docsets, tiny_embedder, tiny_reranker, min_rerank_score=min_score)
    out = report(evaluate(ask, questions, k=5))
    reranked = out["modes"]["hybrid+rerank"]
    assert reranked["abstained_unanswerable"] == abstained
    assert reranked["answered_answerable"] == answered
    assert reranked["abstain_accuracy"] == pytest.approx((abstained + 5 * answered) / 6, 1e-3)
    reasons = {m["id"]: m["reason"] for m in out["misses"]["hybrid+rerank"]}
    if min_score == 1.0:
        assert set(reasons) == {"e1", "e2", "z1", "j1", "g1"}
        assert all("abstained" in reason for reason in reasons.values())
    else:
        assert reasons["x1"].startswith("answered: best rerank score")
    assert "x1" not in {m["id"] for m in out["misses"]["hybrid"]}  # no decision to miss


# -- what people read --------------------------------------------------------------------


class Page(HTMLParser):
    """Collects headings, tables (rows of cell texts) and images of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self.external: list[str] = []
        self._text: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th", "h2", "h3"):
            self._text = []
        elif tag == "img":
            self.images.append(attributes["src"])
        if tag in ("script", "link") or str(attributes.get("src", "")).startswith("http"):
            self.external.append(tag)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._text is not None:
            self.tables[-1][-1].append("".join(self._text).strip())
        elif tag in ("h2", "h3") and self._text is not None:
            self.headings.append("".join(self._text).strip())
        if tag in ("td", "th", "h2", "h3"):
            self._text = None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


@pytest.fixture(scope="module")
def reranked_report(two_docsets, tiny_embedder, tiny_reranker, questions):
    ask = pipeline(two_docsets, tiny_embedder, tiny_reranker, min_rerank_score=1.0)
    return report(evaluate(ask, questions, k=5))


def test_html_report_has_the_tables_and_a_chart(reranked_report, tmp_path):
    path = tmp_path / "eval.html"
    write_report(reranked_report, path, title="eval <test>")
    page = Page()
    page.feed(path.read_text("utf-8"))

    assert page.external == []  # self-contained
    [image] = page.images
    assert image.startswith("data:image/png;base64,")
    png = base64.b64decode(image.split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert page.headings[:4] == [
        "Overall",
        "By language: recall@5",
        "By doc set: recall@5",
        "Missed questions",
    ]
    overall, languages, docsets, *misses = page.tables
    assert [row[0] for row in overall[1:]] == ["dense", "bm25", "hybrid", "hybrid+rerank"]
    assert overall[4][5] == "0.167"  # abstain accuracy: only the unanswerable one is right
    assert overall[1][5] == "-"  # dense has no abstain decision
    assert [row[0] for row in languages[1:]] == ["English", "Chinese", "Japanese"]
    assert languages[0][3:] == ["dense", "bm25", "hybrid", "hybrid+rerank"]
    assert {row[0] for row in docsets[1:]} == {"first", "second", "(none)", "(not found)"}
    assert len(misses) == 4 and "hybrid+rerank: 5" in page.headings
    assert {row[0] for row in misses[3][1:]} == {"e1", "e2", "z1", "j1", "g1"}
    assert "<test>" not in path.read_text("utf-8")  # escaped


def test_html_keeps_the_question_text_escaped(reranked_report):
    tricky = json.loads(json.dumps(reranked_report))
    tricky["misses"]["dense"] = [
        {
            "id": "<b>",
            "language": "English",
            "docset": "first",
            "question": "x' onmouseover='alert(1)",
            "relevant": ["a.md"],
            "found": [],
            "reason": "not found",
        }
    ]
    html = render_html(tricky)
    assert "onmouseover='alert" not in html and "&lt;b&gt;" in html


def test_terminal_report_shows_splits_abstain_and_misses(reranked_report):
    text = format_report(reranked_report)
    assert "recall@5 by language" in text and "recall@5 by doc set" in text
    assert "abstained on 1 of 1 unanswerable questions, answered 0 of 5 answerable" in text
    assert "missed by hybrid+rerank (5):" in text
    assert "z1     Chinese   怎么安装 zebrafish 客户端？" in text
    english = next(line for line in text.splitlines() if line.startswith("English"))
    assert english.split()[1] == "3+1"  # three answerable, one unanswerable
