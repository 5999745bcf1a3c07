"""The three ways of searching the index in Milvus: dense, BM25 and hybrid.

A hybrid search runs the dense and the BM25 leg as two requests at once, each
``depth`` times deeper than the answer, and fuses them here with weighted reciprocal
rank fusion (:func:`fuse`): Milvus' own ``RRFRanker`` has no per-leg weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymilvus import MilvusClient

from rag_core import store_schema as rows
from rag_core.errors import InputError
from rag_core.settings import SearchMode
from rag_core.types import ScoredChunk

RRF_K = 60
MAX_LIMIT = 16_384  # Milvus' largest top-k
SEARCH_MODES = ("hybrid", "dense", "bm25")


@dataclass(frozen=True, slots=True)
class Fusion:
    """How a hybrid search fuses its legs: a chunk at 1-based rank ``r`` of a leg scores
    ``weight / (k + r)`` there, summed over the legs; each leg fetches ``depth`` times
    the limit first. A zero weight leaves that leg out."""

    k: float = RRF_K
    dense_weight: float = 1.0
    bm25_weight: float = 1.0
    depth: int = 1

    def __post_init__(self) -> None:
        if self.k <= 0 or self.depth < 1:
            raise InputError(f"RRF k must be positive and depth at least 1, not {self}.")
        if min(self.dense_weight, self.bm25_weight) < 0 or not (
            self.dense_weight or self.bm25_weight
        ):
            raise InputError(f"Leg weights must be non-negative, one of them positive: {self}.")


def fuse(
    legs: Sequence[Sequence[str]], weights: Sequence[float], *, k: float, limit: int
) -> list[tuple[str, float]]:
    """Weighted reciprocal rank fusion of ranked id lists: the best ``limit`` ids with
    their fused scores, best first. Ties go to the id seen first (earlier leg, then
    better rank), so the order is deterministic."""
    if len(legs) != len(weights):
        raise InputError(f"{len(legs)} ranked lists but {len(weights)} weights.")
    scores: dict[str, float] = {}
    for ranked, weight in zip(legs, weights, strict=True):
        for rank, key in enumerate(ranked, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    order = {key: position for position, key in enumerate(scores)}
    best = sorted(scores.items(), key=lambda item: (-item[1], order[item[0]]))
    return best[:limit]


def check_query(vector: np.ndarray | None, text: str, mode: SearchMode, limit: int) -> None:
    """Raise :class:`InputError` for a query Milvus would reject or could not answer."""
    if mode not in SEARCH_MODES:
        raise InputError(f"Unknown search mode {mode!r}; use hybrid, dense or bm25.")
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"The search limit must be between 1 and {MAX_LIMIT}, not {limit}.")
    if mode != "bm25" and vector is None:
        raise InputError(f"A {mode} search needs a query vector.")
    if mode == "bm25" and not text.strip():
        raise InputError("A bm25 search needs query text.")


def run_search(
    client: MilvusClient,
    collection: str,
    *,
    vector: np.ndarray | None,
    text: str,
    mode: SearchMode,
    limit: int,
    timeout: float,
    fusion: Fusion | None = None,
) -> list[ScoredChunk]:
    """One search against ``collection`` (an alias works); pymilvus errors pass.

    A hybrid query with blank text, or a zero BM25 weight, runs dense only (and with a
    zero dense weight, BM25 only); scores are then those of that leg.
    """
    fusion = Fusion() if fusion is None else fusion
    search = leg_searcher(client, collection, timeout)
    if mode == "hybrid":
        if not text.strip() or not fusion.bm25_weight:
            mode = "dense"
        elif not fusion.dense_weight:
            mode = "bm25"
    if mode == "bm25":
        return search("bm25", text, limit)
    if mode == "dense":
        return search("dense", _as_list(vector), limit)
    depth = min(MAX_LIMIT, limit * fusion.depth)
    dense, bm25 = search_legs(search, _as_list(vector), text, depth)
    return fuse_hits(dense, bm25, fusion, limit)


LegSearch = Callable[[str, Any, int], list[ScoredChunk]]
"""``(leg, query, limit)`` -> that leg's hits, best first (``leg``: dense or bm25)."""


def search_legs(
    search: LegSearch, vector: list[float], text: str, depth: int
) -> tuple[list[ScoredChunk], list[ScoredChunk]]:
    """The dense and the BM25 leg, ``depth`` hits each, requested at the same time
    (the BM25 leg on a helper thread): a hybrid search waits for the slower leg only."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bm25-leg") as helper:
        bm25 = helper.submit(search, "bm25", text, depth)
        dense = search("dense", vector, depth)
        return dense, bm25.result()


def fuse_hits(
    dense: Sequence[ScoredChunk], bm25: Sequence[ScoredChunk], fusion: Fusion, limit: int
) -> list[ScoredChunk]:
    """The two legs' hits fused by :func:`fuse`, scored with the fused score."""
    chunks = {hit.chunk.id: hit.chunk for hit in (*bm25, *dense)}
    fused = fuse(
        [[hit.chunk.id for hit in dense], [hit.chunk.id for hit in bm25]],
        [fusion.dense_weight, fusion.bm25_weight],
        k=fusion.k,
        limit=limit,
    )
    return [ScoredChunk(chunks[key], score) for key, score in fused]


def leg_searcher(client: MilvusClient, collection: str, timeout: float) -> LegSearch:
    """A function searching one leg of ``collection``."""

    def search(leg: str, query: Any, limit: int) -> list[ScoredChunk]:
        if leg == "dense":
            field = rows.DENSE
            params: dict[str, Any] = {
                "metric_type": "IP",
                "params": {"ef": max(rows.HNSW_MIN_EF, limit)},
            }
        else:
            field, params = rows.SPARSE, {"metric_type": "BM25"}
        hits = client.search(
            collection,
            data=[query],
            anns_field=field,
            search_params=params,
            limit=limit,
            output_fields=rows.OUTPUT_FIELDS,
            timeout=timeout,
        )
        return [
            ScoredChunk(rows.row_to_chunk(hit["entity"]), _score(hit["distance"], leg))
            for hit in (hits[0] if hits else [])
        ]

    return search


def _as_list(vector: np.ndarray | None) -> list[float]:
    if vector is None:
        raise InputError("This search needs a query vector.")
    return np.asarray(vector, dtype=np.float32).reshape(-1).tolist()


def _score(distance: float, leg: str) -> float:
    # Milvus Lite reports BM25 as a negative distance, Milvus as a positive score.
    return abs(float(distance)) if leg == "bm25" else float(distance)
