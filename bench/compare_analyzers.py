"""BM25 analyzers compared on a questions file: recall@5 and MRR@10 per script.

    .venv/bin/python bench/compare_analyzers.py --milvus COPY/milvus.db --collection ALIAS
        --questions questions.jsonl [--model PATH_OR_ID] [--candidates 40]
        [--copies URI]

Copies the published version of a ready index (text, vectors, metadata) into one
throwaway collection per analyzer of ``rag_core.store_schema.ANALYZER_PARAMS`` (an
analyzer this Milvus refuses is reported and skipped; the copies are dropped at the end),
then searches every answerable question as ``RagPipeline.retrieve`` does with the default
settings: planned by :func:`rag_core.query_plan.plan_query`, the dense leg from the index
itself, the BM25 leg from each copy, fused with the default weights. Work on a copy of a
Milvus Lite file: Lite allows one process per file. ``--copies URI`` makes the copies
on another Milvus, to measure an analyzer the index's own server refuses (Milvus Lite
3.x has no ``english``; a Milvus 2.5 server, such as ``milvus-lite==2.5.1``'s, has).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from pymilvus import MilvusClient, MilvusException
from pymilvus.milvus_client import IndexParams
from sweep_fusion import SPLITS, index_arguments, print_table, scores

from rag_core import store_scan
from rag_core import store_schema as rows
from rag_core.embedding import load_embedder, packaged_fallback_model_path
from rag_core.evaluation import load_questions
from rag_core.languages import detect_script
from rag_core.log_filters import dropped
from rag_core.milvus_client import open_client
from rag_core.query_plan import SearchQuery, foreign_weight, fusion_of, plan_query
from rag_core.settings import Settings
from rag_core.store import MilvusStore
from rag_core.store_search import LegSearch, fuse_hits, leg_searcher
from rag_core.types import Embedder, ScoredChunk

COPY_PREFIX = "bench_analyzer_"


@dataclass
class Case:
    """One answerable question, its plan, and what each analyzer's legs found."""

    relevant: frozenset[str]
    split: str
    query: SearchQuery
    dense: list[ScoredChunk]
    bm25: dict[str, list[ScoredChunk]] = field(default_factory=dict)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = index_arguments(__doc__.splitlines()[0])
    parser.add_argument(
        "--copies", default="", help="Milvus URI for the copies (default: --milvus)"
    )
    return parser.parse_args(argv)


def copy_index_params() -> IndexParams:
    """The copy's indexes: only its BM25 leg is searched, so its vectors get FLAT, which
    every Milvus takes (Milvus Lite 2.5 has no HNSW)."""
    params = MilvusClient.prepare_index_params()
    params.add_index(field_name=rows.DENSE, index_type="FLAT", metric_type="IP")
    params.add_index(field_name=rows.SPARSE, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    return params


def copy_with(client: MilvusClient, name: str, analyzer: str, data: list[dict]) -> bool:
    """``data`` in a new collection whose BM25 reads ``analyzer``; False when refused."""
    try:
        with dropped("pymilvus.decorators"):  # a refusal is an answer, not a fault
            client.create_collection(
                name,
                schema=rows.build_schema(len(data[0][rows.DENSE]), analyzer=analyzer),
                index_params=copy_index_params(),
            )
    except MilvusException as error:
        print(f"{analyzer}: refused by this Milvus ({error})")
        return False
    for start in range(0, len(data), 500):
        client.insert(name, data[start : start + 500])
    client.flush(name)
    client.load_collection(name)
    return True


def plan_cases(
    questions: Path, embedder: Embedder, settings: Settings, dense_search: LegSearch, depth: int
) -> list[Case]:
    """Each answerable question planned as ``RagPipeline.retrieve`` plans it, with its
    dense leg (``depth`` chunks) already searched."""
    foreign = foreign_weight(
        settings.foreign_bm25_weight,
        bm25_weight=settings.bm25_weight,
        multilingual=embedder.multilingual,
    )
    cases = []
    for asked in (q for q in load_questions(questions) if q.answerable):
        query = plan_query(
            asked.question,
            docs_language=settings.docs_language,
            fusion=fusion_of(settings),
            foreign_bm25_weight=foreign,
        )
        vector = embedder.embed_queries([query.dense_text])[0].tolist()
        dense = dense_search("dense", vector, depth)
        cases.append(Case(asked.relevant, detect_script(asked.question), query, dense))
    return cases


def search_copies(
    copies: MilvusClient, data: list[dict], cases: list[Case], depth: int
) -> list[str]:
    """Copy ``data`` once per analyzer, search every case's BM25 leg on each copy, drop the
    copies; returns the analyzers this Milvus accepted."""
    analyzers = []
    try:
        for analyzer in rows.ANALYZER_PARAMS:
            name = f"{COPY_PREFIX}{analyzer}"
            if name in copies.list_collections():
                copies.drop_collection(name)
            if not copy_with(copies, name, analyzer, data):
                continue
            analyzers.append(analyzer)
            search = leg_searcher(copies, name, 60)
            for case in cases:
                text = case.query.bm25_text
                case.bm25[analyzer] = search("bm25", text, depth) if text.strip() else []
    finally:
        for analyzer in rows.ANALYZER_PARAMS:
            if f"{COPY_PREFIX}{analyzer}" in copies.list_collections():
                copies.drop_collection(f"{COPY_PREFIX}{analyzer}")
    return analyzers


def print_scores(cases: list[Case], analyzers: list[str], candidates: int) -> None:
    def hybrid(case: Case, analyzer: str) -> list[ScoredChunk]:
        sparse = case.bm25[analyzer]
        if not sparse or not case.query.fusion.bm25_weight:
            return case.dense[:candidates]
        return fuse_hits(case.dense, sparse, case.query.fusion, candidates)

    counts = {split: sum(1 for c in cases if c.split == split) for split in SPLITS}
    counts["all"] = len(cases)
    table = [("dense", scores(cases, lambda c: c.dense[:candidates]))]  # type: ignore[arg-type]
    for analyzer in analyzers:
        table.append(
            (f"bm25 {analyzer}", scores(cases, lambda c: c.bm25[analyzer][:candidates]))  # type: ignore[arg-type]  # noqa: B023
        )
        table.append((f"hybrid {analyzer}", scores(cases, lambda c: hybrid(c, analyzer))))  # type: ignore[arg-type]  # noqa: B023
    print_table("recall@5 and MRR@10 per analyzer (default fusion)", table, counts)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(_env_file=None)
    embedder = load_embedder(args.model or packaged_fallback_model_path(), device="cpu")
    client = open_client(args.milvus)
    MilvusStore(client, collection=args.collection).load_published()
    version = str(client.describe_alias(args.collection)["collection_name"])
    data = [
        row
        for page in store_scan.pages(
            client, version, store_scan.COPIED_FIELDS, rows_per_page=1000, timeout=60
        )
        for row in page
    ]
    depth = args.candidates * settings.fusion_depth
    dense_search = leg_searcher(client, version, 60)
    cases = plan_cases(args.questions, embedder, settings, dense_search, depth)
    print(f"{len(data):,} rows of {version}; {len(cases)} answerable questions")
    copies = open_client(args.copies) if args.copies else client
    try:
        analyzers = search_copies(copies, data, cases, depth)
    finally:
        client.close()
        if copies is not client:
            copies.close()
    print_scores(cases, analyzers, args.candidates)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
