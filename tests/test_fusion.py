"""Weighted reciprocal rank fusion: the pure function, and hybrid search on Milvus Lite."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from rag_core.errors import InputError
from rag_core.store import MilvusStore, open_client
from rag_core.store_search import Fusion, fuse
from rag_core.types import Chunk

DIM = 4


def test_fuse_sums_weighted_reciprocal_ranks():
    fused = fuse([["a", "b", "c"], ["c", "a"]], [1.0, 0.5], k=10, limit=3)
    scores = dict(fused)
    assert scores["a"] == pytest.approx(1 / 11 + 0.5 / 12)
    assert scores["b"] == pytest.approx(1 / 12)
    assert scores["c"] == pytest.approx(1 / 13 + 0.5 / 11)
    assert [key for key, _ in fused] == ["a", "c", "b"]


def test_fuse_weights_decide_and_ties_go_to_the_first_seen():
    legs = [["dense-top", "shared"], ["bm25-top", "shared"]]
    assert fuse(legs, [1.0, 1.0], k=60, limit=3)[0][0] == "shared"  # in both lists
    assert fuse(legs, [1.0, 1.0], k=60, limit=3)[1:] == [
        ("dense-top", pytest.approx(1 / 61)),
        ("bm25-top", pytest.approx(1 / 61)),
    ]
    bm25_heavy = [key for key, _ in fuse(legs, [1.0, 3.0], k=60, limit=3)]
    assert bm25_heavy == ["shared", "bm25-top", "dense-top"]
    assert fuse(legs, [3.0, 1.0], k=60, limit=3)[1][0] == "dense-top"
    dense_only = [key for key, _ in fuse(legs, [1.0, 0.0], k=60, limit=3)]
    assert dense_only == ["dense-top", "shared", "bm25-top"]  # bm25-top scores 0
    assert fuse([[], []], [1.0, 1.0], k=60, limit=5) == []
    assert len(fuse(legs, [1.0, 1.0], k=60, limit=2)) == 2


def test_fuse_and_fusion_refuse_nonsense():
    with pytest.raises(InputError):
        fuse([["a"]], [1.0, 1.0], k=60, limit=1)
    for bad in (
        {"k": 0},
        {"depth": 0},
        {"dense_weight": -1},
        {"dense_weight": 0, "bm25_weight": 0},
    ):
        with pytest.raises(InputError):
            Fusion(**bad)  # type: ignore[arg-type]


def axis(*weights: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(weights)] = weights
    return vector / np.linalg.norm(vector)


def chunk(name: str, text: str) -> Chunk:
    return Chunk(
        doc_path=f"{name}.md", title=name, heading_path=(), anchor="", url="", chunk_index=0,
        text=text,
    )  # fmt: skip


# Dense ranks d1, d2, both, ...; BM25 ranks b1, b2, both: "both" is third in each leg.
ROWS = [
    (chunk("d1", "Dense neighbour one about ports."), axis(1)),
    (chunk("d2", "Dense neighbour two about ports."), axis(0.95, 0.31)),
    (chunk("b1", "quokka quokka quokka quokka"), axis(0, 0, 1)),
    (chunk("b2", "quokka quokka quokka and more"), axis(0, 0, 0.9, 0.44)),
    (chunk("both", "quokka mode keeps replicas warm in the cluster."), axis(0.85, 0.53)),
    (chunk("far", "Unrelated text about backups."), axis(0, 0, 0, 1)),
]


@pytest.fixture
def store(milvus_uri: str) -> Iterator[MilvusStore]:
    store = MilvusStore(open_client(milvus_uri), collection="fusion_docs")
    version = store.create_version(embed_model="test/axes", dim=DIM)
    store.insert(version, [c for c, _ in ROWS], np.stack([v for _, v in ROWS]))
    store.publish(version)
    yield store
    store.close()


def names(found) -> list[str]:
    return [hit.chunk.doc_path.removesuffix(".md") for hit in found]


def search(store: MilvusStore, limit: int, **fusion: float) -> list[str]:
    found = store.search(
        query_vector=axis(1),
        query_text="quokka",
        mode="hybrid",
        limit=limit,
        fusion=Fusion(**fusion),  # type: ignore[arg-type]
    )
    return names(found)


def test_the_legs_are_as_the_fusion_tests_assume(store):
    dense = store.search(query_vector=axis(1), query_text="", mode="dense", limit=3)
    bm25 = store.search(query_vector=None, query_text="quokka", mode="bm25", limit=3)
    assert names(dense) == ["d1", "d2", "both"]
    assert names(bm25) == ["b1", "b2", "both"]


def test_leg_weights_decide_the_order(store):
    assert search(store, 2) == ["d1", "b1"]  # a tie at rank 1: the dense leg's first
    assert search(store, 2, dense_weight=1.0, bm25_weight=0.5) == ["d1", "d2"]
    assert search(store, 2, dense_weight=0.5, bm25_weight=1.0) == ["b1", "b2"]
    assert search(store, 3, dense_weight=1.0, bm25_weight=0.0) == ["d1", "d2", "both"]
    assert search(store, 3, dense_weight=0.0, bm25_weight=1.0) == ["b1", "b2", "both"]


def test_deeper_legs_let_an_answer_both_legs_agree_on_rise(store):
    # Lists of 2: "both" (third in each leg) is never seen.
    assert "both" not in search(store, 2, depth=1)
    # Lists of 4: it is third twice, 2/63 beats 1/61, and it comes first.
    assert search(store, 2, depth=2)[0] == "both"


def test_fused_scores_are_the_weighted_rrf_scores(store):
    found = store.search(
        query_vector=axis(1),
        query_text="quokka",
        mode="hybrid",
        limit=1,
        fusion=Fusion(k=10, dense_weight=2.0, bm25_weight=1.0, depth=3),
    )
    assert names(found) == ["both"]
    assert found[0].score == pytest.approx(2.0 / 13 + 1.0 / 13)


def test_blank_text_or_zero_bm25_weight_is_a_dense_search(store):
    dense = store.search(query_vector=axis(1), query_text="", mode="dense", limit=3)
    for text, weight in (("", 1.0), ("quokka", 0.0)):
        found = store.search(
            query_vector=axis(1),
            query_text=text,
            mode="hybrid",
            limit=3,
            fusion=Fusion(bm25_weight=weight),
        )
        assert [(h.chunk.id, round(h.score, 5)) for h in found] == [
            (h.chunk.id, round(h.score, 5)) for h in dense
        ]
