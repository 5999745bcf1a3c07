"""The three ways of searching the index in Milvus: dense, BM25 and hybrid (RRF)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pymilvus import AnnSearchRequest, MilvusClient, RRFRanker

from rag_core import store_schema as rows
from rag_core.errors import InputError
from rag_core.settings import SearchMode
from rag_core.types import ScoredChunk

RRF_K = 60
MAX_LIMIT = 16_384  # Milvus' largest top-k
SEARCH_MODES = ("hybrid", "dense", "bm25")


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
) -> list[ScoredChunk]:
    """One search request against ``collection`` (an alias works); pymilvus errors pass.

    A hybrid query with blank text has nothing for BM25 to match, so it runs dense only.
    """
    dense_params = {"metric_type": "IP", "params": {"ef": max(rows.HNSW_MIN_EF, limit)}}
    bm25_params: dict[str, Any] = {"metric_type": "BM25"}
    common: dict[str, Any] = {
        "limit": limit,
        "output_fields": rows.OUTPUT_FIELDS,
        "timeout": timeout,
    }
    if mode == "bm25":
        hits = client.search(
            collection, data=[text], anns_field=rows.SPARSE, search_params=bm25_params, **common
        )
    elif mode == "dense" or not text.strip():
        hits = client.search(
            collection,
            data=[_as_list(vector)],
            anns_field=rows.DENSE,
            search_params=dense_params,
            **common,
        )
    else:
        requests = [
            AnnSearchRequest([_as_list(vector)], rows.DENSE, dense_params, limit),
            AnnSearchRequest([text], rows.SPARSE, bm25_params, limit),
        ]
        hits = client.hybrid_search(collection, requests, RRFRanker(RRF_K), **common)
    return [
        ScoredChunk(rows.row_to_chunk(hit["entity"]), _score(hit["distance"], mode))
        for hit in (hits[0] if hits else [])
    ]


def _as_list(vector: np.ndarray | None) -> list[float]:
    if vector is None:
        raise InputError("This search needs a query vector.")
    return np.asarray(vector, dtype=np.float32).reshape(-1).tolist()


def _score(distance: float, mode: SearchMode) -> float:
    # Milvus Lite reports BM25 as a negative distance, Milvus as a positive score.
    return abs(float(distance)) if mode == "bm25" else float(distance)
