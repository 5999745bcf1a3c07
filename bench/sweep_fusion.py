"""Hybrid fusion settings swept over a questions file: recall@5 per language split.

    .venv/bin/python bench/sweep_fusion.py --milvus COPY/milvus.db --collection ALIAS
        --questions questions.jsonl [--model PATH_OR_ID] [--candidates 40]
        [--k 10,30,60,100] [--bm25-weights 0.2,0.35,0.5,0.7,1] [--depths 1,2,4]
        [--foreign-bm25-weights 0.5,1,2] [--translations FILE] [--top 15] [--latency]

Searches a ready Milvus Lite index (work on a copy: Milvus Lite allows one process per
file) exactly as :meth:`RagPipeline.retrieve` does for ``ragbot eval``: each question is
planned by :func:`rag_core.query_plan.plan_query` (a CJK question's BM25 leg reads its
Latin terms), its two legs are fetched once per depth with the store's own leg search,
and every grid point is fused with :func:`rag_core.store_search.fuse_hits` to
``--candidates`` chunks; recall@5 counts the relevant documents among the first five
distinct documents. The dense weight stays 1 (only the ratio of the weights matters).
``--foreign-bm25-weights`` is the BM25 weight of an untranslated question not in the
docs' language (``RAGBOT_FOREIGN_BM25_WEIGHT``). ``--translations`` (JSON: question ->
its English rewrite) measures the translated path with rewrites given by hand.

Prints dense, BM25 and the old default (k=60, equal weights, depth 1) first, then the
``--top`` grid points by the lowest split (the worst language), then overall recall.
``--latency`` also prints the p50 of one hybrid search: legs in parallel (as served),
one after the other, and Milvus' own ``hybrid_search`` with ``RRFRanker``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from pymilvus import AnnSearchRequest, MilvusClient, RRFRanker

from rag_core import store_schema as rows
from rag_core.embedding import load_embedder, packaged_fallback_model_path
from rag_core.evaluation import load_questions
from rag_core.languages import detect_script
from rag_core.query_plan import SearchQuery, needs_translation, plan_query
from rag_core.store import MilvusStore, open_client
from rag_core.store_search import Fusion, fuse_hits, leg_searcher, search_legs
from rag_core.types import ScoredChunk

K_AT = 5
MRR_DEPTH = 10
SPLITS = ("latin", "cjk", "all")


@dataclass
class Case:
    """One answerable question: how it is searched and its legs at each depth."""

    relevant: frozenset[str]
    split: str  # the question's script
    query: SearchQuery
    foreign: bool  # not in the docs' language and not translated: the foreign BM25 weight
    vector: list[float]
    legs: dict[int, tuple[list[ScoredChunk], list[ScoredChunk]]]
    raw_bm25: list[ScoredChunk]  # BM25 over the whole question, as searched before


def floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def index_arguments(description: str) -> argparse.ArgumentParser:
    """A parser with the options every retrieval bench over a ready index takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--milvus", required=True, help="Milvus Lite file (a copy) or URI")
    parser.add_argument("--collection", required=True, help="the alias of the index")
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--model", default="", help="embedder (default: packaged MiniLM)")
    parser.add_argument("--candidates", type=int, default=40)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = index_arguments(__doc__.splitlines()[0])
    parser.add_argument("--docs-language", default="English")
    parser.add_argument("--k", type=floats, default=floats("10,30,60,100"))
    parser.add_argument("--bm25-weights", type=floats, default=floats("0.2,0.35,0.5,0.7,1"))
    parser.add_argument("--depths", type=floats, default=floats("1,2,4"))
    parser.add_argument("--foreign-bm25-weights", type=floats, default=floats("0.5,1,2"))
    parser.add_argument("--translations", type=Path, help="JSON: question -> English rewrite")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--latency", action="store_true")
    return parser.parse_args(argv)


def load_cases(args: argparse.Namespace) -> list[Case]:
    """Every answerable question, planned, embedded and searched at every depth."""
    model = args.model or packaged_fallback_model_path()
    embedder = load_embedder(model, device="cpu")
    translations = json.loads(args.translations.read_text("utf-8")) if args.translations else {}
    search = leg_searcher(open_index(args), args.collection, 60.0)
    cases = []
    for asked in (q for q in load_questions(args.questions) if q.answerable):
        question = asked.question
        query = plan_query(
            question,
            docs_language=args.docs_language,
            fusion=Fusion(),
            foreign_bm25_weight=1.0,
            translation=translations.get(question),
        )
        vector = embedder.embed_queries([query.dense_text])[0].tolist()
        legs = {}
        for depth in depths_of(args):
            limit = args.candidates * depth
            bm25 = search("bm25", query.bm25_text, limit) if query.bm25_text.strip() else []
            legs[depth] = (search("dense", vector, limit), bm25)
        foreign = needs_translation(question, args.docs_language) and not query.translated
        raw = search("bm25", question, args.candidates)
        split = detect_script(question)
        cases.append(Case(asked.relevant, split, query, foreign, vector, legs, raw))
    return cases


def open_index(args: argparse.Namespace) -> MilvusClient:
    """A client of the index file with the published version loaded."""
    client = open_client(args.milvus)
    MilvusStore(client, collection=args.collection).load_published()
    return client


def depths_of(args: argparse.Namespace) -> list[int]:
    return sorted({1, *(int(d) for d in args.depths)})


def documents(found: Sequence[ScoredChunk]) -> list[str]:
    return list(dict.fromkeys(hit.chunk.doc_path for hit in found))


def recall(found: Sequence[ScoredChunk], relevant: frozenset[str]) -> float:
    return len(relevant.intersection(documents(found)[:K_AT])) / len(relevant)


def first_rank(found: Sequence[ScoredChunk], relevant: frozenset[str]) -> int | None:
    """1-based rank of the first relevant document, None when it is not found."""
    ranked = documents(found)
    return next((n for n, doc in enumerate(ranked, start=1) if doc in relevant), None)


def scores(
    cases: Sequence[Case], pick: Callable[[Case], Sequence[ScoredChunk]]
) -> dict[str, float]:
    """Mean recall@5 (``split``) and MRR@10 (``mrr split``) per split of the ranked lists
    ``pick(case)`` returns."""
    values: dict[str, list[float]] = {}
    for case in cases:
        found = pick(case)
        rank = first_rank(found, case.relevant)
        mrr = 1 / rank if rank is not None and rank <= MRR_DEPTH else 0.0
        for split in {case.split, "all"} & set(SPLITS):
            values.setdefault(split, []).append(recall(found, case.relevant))
            values.setdefault(f"mrr {split}", []).append(mrr)
    return {key: statistics.fmean(v) for key, v in values.items()}


def fused(case: Case, k: float, bm25: float, depth: int, foreign: float, limit: int) -> list:
    """What ``run_search`` returns for the case with these settings."""
    weight = foreign if case.foreign else bm25
    dense, sparse = case.legs[depth]
    if not sparse or not weight:
        return dense[:limit]
    return fuse_hits(dense, sparse, Fusion(k=k, bm25_weight=weight, depth=depth), limit)


def old_hybrid(case: Case, limit: int) -> list[ScoredChunk]:
    """Hybrid search as it was: equal weights, k=60, lists of ``limit``, whole question."""
    dense = case.legs[1][0][:limit]
    if not case.raw_bm25:
        return dense
    return fuse_hits(dense, case.raw_bm25, Fusion(), limit)


def grid_rows(cases: Sequence[Case], args: argparse.Namespace) -> list[tuple[str, dict]]:
    limit = args.candidates
    foreign_weights = args.foreign_bm25_weights if any(c.foreign for c in cases) else [1.0]
    rows_out = []
    for k, bm25, depth, foreign in itertools.product(
        args.k, args.bm25_weights, sorted({int(d) for d in args.depths}), foreign_weights
    ):
        label = f"k={k:g} bm25={bm25:g} depth={depth} foreign={foreign:g}"
        rows_out.append(
            (label, scores(cases, lambda c: fused(c, k, bm25, depth, foreign, limit)))  # noqa: B023
        )
    return rows_out


def print_table(title: str, table: Sequence[tuple[str, dict]], counts: dict[str, int]) -> None:
    """Recall@5 then MRR@10 per split, one row per setting."""
    columns = [s for s in SPLITS if counts[s]] + [f"mrr {s}" for s in SPLITS if counts[s]]
    heads = [f"{c} ({counts[c.removeprefix('mrr ')]})" for c in columns]
    width = max(14, *(len(h) + 2 for h in heads))
    print(f"\n{title}\n{'setting':<40}" + "".join(f"{h:>{width}}" for h in heads))
    for label, row in table:
        print(f"{label:<40}" + "".join(f"{row.get(c, float('nan')):>{width}.3f}" for c in columns))


def print_misses(cases: Sequence[Case], picks: dict[str, Callable]) -> None:
    """Each question a list misses (recall@5 below 1): the first relevant rank per list."""
    print(f"\nmisses: rank of the first relevant document ({', '.join(picks)})")
    for number, case in enumerate(cases, start=1):
        found = {name: pick(case) for name, pick in picks.items()}
        if all(recall(hits, case.relevant) == 1 for hits in found.values()):
            continue
        ranks = [first_rank(hits, case.relevant) for hits in found.values()]
        shown = "  ".join(f"{'-' if r is None else r:>4}" for r in ranks)
        print(f"  #{number:<3}{case.split:<6}{shown}   {case.query.dense_text[:70]!r}")


def latency(cases: Sequence[Case], args: argparse.Namespace) -> None:
    """p50 ms of one search, each way, over every question with BM25 text (three rounds)."""
    client = open_index(args)
    search = leg_searcher(client, args.collection, 60.0)
    n = args.candidates

    def served(case: Case, depth: int) -> None:  # what run_search does for hybrid
        dense, bm25 = search_legs(search, case.vector, case.query.bm25_text, n * depth)
        fuse_hits(dense, bm25, Fusion(depth=depth), n)

    def in_turn(case: Case) -> None:
        dense = search("dense", case.vector, n)
        fuse_hits(dense, search("bm25", case.query.bm25_text, n), Fusion(), n)

    def milvus_rrf(case: Case) -> None:
        requests = [
            AnnSearchRequest([case.vector], rows.DENSE, {"metric_type": "IP"}, n),
            AnnSearchRequest([case.query.bm25_text], rows.SPARSE, {}, n),
        ]
        client.hybrid_search(
            args.collection, requests, RRFRanker(60), limit=n, output_fields=rows.OUTPUT_FIELDS
        )

    ways: dict[str, Callable[[Case], object]] = {
        "dense only": lambda c: search("dense", c.vector, n),
        "legs in turn, depth 1": in_turn,
        "RRFRanker, depth 1": milvus_rrf,
    }
    for depth in depths_of(args):
        ways[f"parallel legs, depth {depth}"] = lambda c, d=depth: served(c, d)
    timings: dict[str, list[float]] = {name: [] for name in ways}
    for case in [c for c in cases if c.query.bm25_text.strip()] * 3:
        for name, way in ways.items():
            start = time.perf_counter()
            way(case)
            timings[name].append((time.perf_counter() - start) * 1000)
    print(f"\nsearch latency, p50 ms over {len(timings['dense only'])} searches")
    for name, values in timings.items():
        print(f"  {name:<26}{statistics.median(values):8.1f}")


def rank_key(row: dict[str, float], counts: dict[str, int]) -> tuple[float, ...]:
    """Best first: the worst split's recall@5, overall recall@5, the worst split's MRR@10,
    overall MRR@10."""
    splits = [s for s in SPLITS if counts[s]]
    return (
        -min(row[s] for s in splits),
        -row["all"],
        -min(row[f"mrr {s}"] for s in splits),
        -row["mrr all"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cases = load_cases(args)
    counts = {split: sum(1 for c in cases if c.split == split) for split in SPLITS}
    counts["all"] = len(cases)
    n = args.candidates
    baselines = [
        ("dense", scores(cases, lambda c: c.legs[1][0][:n])),
        ("bm25 (whole question)", scores(cases, lambda c: c.raw_bm25)),
        ("bm25 (Latin terms of CJK)", scores(cases, lambda c: c.legs[1][1][:n])),
        ("old hybrid: k=60 equal depth=1 whole q", scores(cases, lambda c: old_hybrid(c, n))),
        ("k=60 equal depth=1, Latin terms", scores(cases, lambda c: fused(c, 60, 1, 1, 1, n))),
    ]
    print_table("baselines (recall@5)", baselines, counts)
    table = grid_rows(cases, args)
    table.sort(key=lambda item: rank_key(item[1], counts))
    print_table(f"best {args.top} of {len(table)} by the worst split", table[: args.top], counts)
    best = table[0][0]
    k, bm25, depth, foreign = (float(part.split("=")[1]) for part in best.split()[:4])
    print_misses(
        cases,
        {
            "dense": lambda c: c.legs[1][0][:n],
            "bm25": lambda c: c.legs[1][1][:n],
            "old": lambda c: old_hybrid(c, n),
            "best": lambda c: fused(c, k, bm25, int(depth), foreign, n),
        },
    )
    if args.latency:
        latency(cases, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
