"""Retrieval quality on the real Milvus 2.4 docs with a real embedding model.

The packaged all-MiniLM-L6-v2 embeds the whole corpus into Milvus Lite once per
session; the shared questions then measure document-level recall for each mode.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_core.docset_stores import DocSetStores
from rag_core.docsets import DocSet
from rag_core.evaluation import evaluate, load_questions, report
from rag_core.ingest.chunking import MarkdownChunker
from rag_core.ingest.indexer import Indexer
from rag_core.pipeline import RagPipeline
from rag_core.settings import Settings

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "milvus_docs"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus_pipeline(tmp_path_factory, minilm_path):
    if not (CORPUS / "questions.jsonl").is_file():
        pytest.fail(f"the shared corpus is missing: {CORPUS}")
    from rag_core.embedding import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(str(minilm_path), device="cpu", batch_size=64)
    uri = str(tmp_path_factory.mktemp("quality") / "milvus.db")
    docs = DocSet(name="milvus", kind="folder", source=str(CORPUS), collection="milvus_docs")
    stores = DocSetStores.connect(uri, [docs])
    chunker = MarkdownChunker(embedder.count_tokens, max_tokens=256, overlap_tokens=32)
    summary = Indexer(stores["milvus"], embedder, chunker).index(CORPUS)
    assert summary.files >= 269 and summary.skipped == 0
    settings = Settings(_env_file=None, candidates=40, rerank_model="none")
    yield RagPipeline(settings, embedder=embedder, stores=stores)
    stores.close()


def test_hybrid_retrieval_meets_the_targets_on_every_language(corpus_pipeline):
    questions = load_questions(CORPUS / "questions.jsonl")
    result = report(evaluate(corpus_pipeline, questions, k=5), k=5)
    scores, languages = result["modes"], result["splits"]["language"]
    print(scores, languages)
    assert scores["hybrid"]["recall@5"] >= 0.93
    assert scores["bm25"]["recall@5"] > 0.5
    assert languages["English"]["modes"]["hybrid"]["recall@5"] >= 0.95
    for language, split in languages.items():
        figures = split["modes"]
        if split["n"]:
            assert figures["hybrid"]["recall@5"] >= figures["dense"]["recall@5"], language


def test_citations_point_into_the_corpus(corpus_pipeline):
    answer = corpus_pipeline.ask(
        "MilvusClient('example.db') fails with Illegal uri, expected form https://user:pwd@..."
    )
    paths = [c.path for c in answer.citations]
    assert paths and all((CORPUS / p).is_file() for p in paths)
    assert "en/faq/operational_faq.md" in paths


@pytest.mark.parametrize(
    "questions",
    [
        CORPUS / "questions.jsonl",
        Path(__file__).resolve().parents[1] / "bench" / "heldout_questions.jsonl",
        Path(__file__).resolve().parents[1] / "bench" / "heldout2_questions.jsonl",
    ],
    ids=lambda path: path.name,
)
def test_every_question_file_points_at_real_documents_holding_its_hint(questions: Path):
    """A mistyped path would count as a miss in every mode, and a hint not on its page
    would mislead whoever reads the misses."""
    asked = load_questions(questions)
    ids = [q.id for q in asked]
    assert len(ids) == len(set(ids))
    assert any(not q.answerable for q in asked)
    for q in asked:
        missing = sorted(path for path in q.relevant if not (CORPUS / path).is_file())
        assert not missing, f"{q.id}: no such document {missing}"
        if q.answer_hint:
            pages = " ".join((CORPUS / p).read_text("utf-8").lower() for p in q.relevant)
            assert q.answer_hint.lower() in pages, f"{q.id}: hint {q.answer_hint!r} not found"
