"""MilvusStore against real Milvus Lite: in-process (a .db file) and over http:// (a server).

Every test in ``TestStoreContract`` runs once per backend; each uses its own collection.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

from rag_core.errors import (
    ConfigError,
    IndexMismatchError,
    IndexNotFoundError,
    InputError,
    StoreUnavailableError,
)
from rag_core.store import MilvusStore
from rag_core.types import Chunk
from tests.fixtures.milvus import free_port, wait_for_port

DIM = 8
MODEL = "test/bag-of-axes"

StoreFactory = Callable[..., MilvusStore]


def unit(*weights: float) -> np.ndarray:
    """A unit vector in DIM dimensions from its first coordinates."""
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(weights)] = weights
    return vector / np.linalg.norm(vector)


def chunk(path: str, index: int, text: str, **meta: object) -> Chunk:
    fields: dict[str, object] = {
        "title": path.rsplit("/", 1)[-1].removesuffix(".md").title(),
        "heading_path": ("Intro",),
        "anchor": "intro",
        "url": f"https://docs.example.com/{path}#intro",
    }
    fields.update(meta)
    return Chunk(doc_path=path, chunk_index=index, text=text, **fields)  # type: ignore[arg-type]


CORPUS = [
    (chunk("guide/install.md", 0, "Install the server with the package manager."), unit(1)),
    (chunk("guide/install.md", 1, "Configure ports and the data directory."), unit(0.8, 0.6)),
    (
        chunk("guide/backup.md", 0, "Backups use the zygomorphic snapshot tool nightly."),
        unit(0, 0, 1),
    ),
    (chunk("guide/scaling.md", 0, "Add query nodes to scale out search."), unit(0, 0, 0, 1)),
    (chunk("faq.md", 0, "Quokka mode keeps quokka replicas warm."), unit(0.9, 0, 0, 0, 0.44)),
]


@pytest.fixture(params=["lite", "server"])
def backend_uri(request: pytest.FixtureRequest, milvus_uri: str) -> str:
    if request.param == "lite":
        return milvus_uri
    return str(request.getfixturevalue("milvus_server"))


@pytest.fixture
def make_store(backend_uri: str, collection_name: str) -> Iterator[StoreFactory]:
    """Stores on the test's backend and collection; all its versions are dropped after."""
    opened: list[MilvusStore] = []
    if backend_uri.endswith(".db"):
        Path(backend_uri).parent.mkdir(parents=True, exist_ok=True)
    client = MilvusClient(uri=backend_uri)

    def factory(**options: object) -> MilvusStore:
        options.setdefault("collection", collection_name)
        store = MilvusStore(MilvusClient(uri=backend_uri), uri=backend_uri, **options)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()
    if collection_name in client.list_aliases().get("aliases", []):
        client.drop_alias(collection_name)
    for name in client.list_collections():
        if name.startswith(collection_name):
            client.drop_collection(name)
    client.close()


@pytest.fixture
def store(make_store: StoreFactory) -> MilvusStore:
    return make_store()


def build(store: MilvusStore, items: list[tuple[Chunk, np.ndarray]], model: str = MODEL) -> str:
    version = store.create_version(embed_model=model, dim=DIM)
    store.insert(version, [c for c, _ in items], np.stack([v for _, v in items]))
    return version


def ids(found: list) -> list[str]:
    return [hit.chunk.id for hit in found]


class TestStoreContract:
    def test_chunks_round_trip_with_all_metadata(self, make_store: StoreFactory) -> None:
        store = make_store(batch_size=2)  # several insert batches, scan pages and lookups
        tricky = [
            chunk(
                "a/ü b.md",
                0,
                'Line one.\n\nLine two with `code` and "quotes".',
                heading_path=("Über", "A > B", ""),
                anchor="uber",
                url="",
            ),
            chunk(
                "notitle.txt",
                3,
                "No title, no headings.",
                title="",
                heading_path=(),
                anchor="",
                url="",
            ),
            chunk(
                "headings-only.md",
                7,
                "Heading but no title.",
                title="",
                heading_path=("Only", "Heads"),
            ),
            chunk("emoji.md", 1, "Rocket 🚀 launch", heading_path=("Ship 🚀",)),
            chunk("dup.md", 0, "Same words", title="Same"),
            chunk("dup2.md", 0, "Same words", title="Same", heading_path=("Intro",)),
        ]
        vectors = [unit(*([0.0] * i + [1.0])) for i in range(len(tricky))]
        version = build(store, list(zip(tricky, vectors, strict=True)))
        store.publish(version)

        for original, vector in zip(tricky, vectors, strict=True):
            found = store.search(query_vector=vector, query_text="", mode="dense", limit=1)
            assert found[0].chunk == original
            assert found[0].chunk.embed_text == original.embed_text
        assert store.stored_hashes(version) == {c.id: c.content_hash for c in tricky}
        assert tricky[4].content_hash == tricky[5].content_hash  # same text, same place
        wanted = {c.content_hash for c in tricky} | {"0" * 64}
        stored = store.vectors_for_hashes(version, wanted)
        assert set(stored) == {c.content_hash for c in tricky}
        for original, vector in zip(tricky[:4], vectors, strict=False):
            assert stored[original.content_hash].dtype == np.float32
            np.testing.assert_allclose(stored[original.content_hash], vector, atol=1e-6)
        shared = stored[tricky[4].content_hash]
        assert any(np.allclose(shared, v, atol=1e-6) for v in vectors[4:])

    def test_bm25_finds_the_exact_rare_keyword(self, store: MilvusStore) -> None:
        store.publish(build(store, CORPUS))
        found = store.search(query_vector=None, query_text="zygomorphic", mode="bm25", limit=5)
        assert ids(found)[0] == CORPUS[2][0].id
        assert found[0].score > 0
        assert all(a.score >= b.score for a, b in itertools.pairwise(found))

    def test_dense_ranks_by_inner_product(self, store: MilvusStore) -> None:
        store.publish(build(store, CORPUS))
        found = store.search(query_vector=unit(1), query_text="", mode="dense", limit=3)
        assert ids(found) == [CORPUS[0][0].id, CORPUS[4][0].id, CORPUS[1][0].id]
        assert found[0].score == pytest.approx(1.0, abs=1e-4)
        assert found[1].score == pytest.approx(float(unit(1) @ CORPUS[4][1]), abs=1e-4)

    def test_hybrid_fuses_dense_and_keyword_hits(self, store: MilvusStore) -> None:
        store.publish(build(store, CORPUS))
        query = unit(0, 0, 0, 1)  # dense alone: the scaling chunk
        found = store.search(query_vector=query, query_text="quokka", mode="hybrid", limit=2)
        assert set(ids(found)) == {CORPUS[3][0].id, CORPUS[4][0].id}
        dense = store.search(query_vector=query, query_text="quokka", mode="dense", limit=2)
        assert ids(dense)[0] == CORPUS[3][0].id
        both = store.search(
            query_vector=unit(0.9, 0, 0, 0, 0.44), query_text="quokka", mode="hybrid", limit=3
        )
        assert ids(both)[0] == CORPUS[4][0].id
        assert both[0].score == pytest.approx(2 / 61, abs=1e-4)  # rank 1 twice, RRF k=60

    def test_index_info_describes_the_published_version(self, store: MilvusStore) -> None:
        assert store.index_info() is None
        version = build(store, CORPUS)
        assert store.index_info() is None  # built but not published
        assert store.publish(version) is None
        info = store.index_info()
        assert info is not None
        assert (info.version, info.embed_model, info.embed_dim) == (version, MODEL, DIM)
        assert info.chunk_count == len(CORPUS)
        assert info.created_at is not None
        assert datetime.now(UTC) - info.created_at < timedelta(minutes=5)
        assert store.check_compatible(embed_model=MODEL, dim=DIM) == info

    def test_publish_is_atomic_and_drops_the_old_version(
        self, make_store: StoreFactory, store: MilvusStore
    ) -> None:
        old_items = [(c, v) for c, v in CORPUS if c.doc_path.startswith("guide/")]
        new_items = [(chunk("new.md", i, f"release {i} notes"), unit(1)) for i in range(4)]
        old = build(store, old_items)
        store.publish(old)
        old_ids = {c.id for c, _ in old_items}
        new_ids = {c.id for c, _ in new_items}

        new = store.create_version(embed_model=MODEL, dim=DIM)
        store.insert(new, [c for c, _ in new_items[:2]], np.stack([v for _, v in new_items[:2]]))
        half_built = store.search(query_vector=unit(1), query_text="", mode="dense", limit=10)
        assert set(ids(half_built)) == old_ids
        store.insert(new, [c for c, _ in new_items[2:]], np.stack([v for _, v in new_items[2:]]))

        reader = make_store()  # another client, as the bot would be
        seen: list[set[str]] = []
        errors: list[BaseException] = []
        stop = threading.Event()

        def keep_searching() -> None:
            while not stop.is_set():
                try:
                    hits = reader.search(
                        query_vector=unit(1), query_text="", mode="dense", limit=10
                    )
                    seen.append(set(ids(hits)))
                except BaseException as error:  # collected for the assert
                    errors.append(error)

        thread = threading.Thread(target=keep_searching)
        thread.start()
        time.sleep(0.2)
        dropped = store.publish(new)
        time.sleep(0.2)
        stop.set()
        thread.join()

        assert errors == []
        assert seen and seen[0] == old_ids
        assert all(found in (old_ids, new_ids) for found in seen)
        assert seen[-1] == new_ids
        assert dropped == old
        info = store.index_info()
        assert info is not None and info.version == new
        client = MilvusClient(uri=reader._uri)
        assert old not in client.list_collections()
        client.close()

    def test_a_released_index_is_loaded_again(self, make_store: StoreFactory) -> None:
        store = make_store()
        version = build(store, CORPUS)
        store.publish(version)
        client = MilvusClient(uri=store._uri)
        hashes = {c.content_hash for c, _ in CORPUS}

        # A restarted Milvus Lite starts with every collection released.
        client.release_collection(version)
        assert len(store.stored_hashes(version)) == len(CORPUS)
        client.release_collection(version)
        assert set(store.vectors_for_hashes(version, hashes)) == hashes
        client.release_collection(version)
        found = store.search(query_vector=None, query_text="zygomorphic", mode="bm25", limit=1)
        assert ids(found) == [CORPUS[2][0].id]
        client.release_collection(version)
        info = store.index_info()
        assert info is not None and info.chunk_count == len(CORPUS)
        client.close()

    def test_stale_versions_from_crashed_builds_are_dropped(self, store: MilvusStore) -> None:
        live = build(store, CORPUS[:2])
        store.publish(live)
        crashed = [store.create_version(embed_model=MODEL, dim=DIM) for _ in range(2)]
        store.insert(crashed[0], [CORPUS[3][0]], np.stack([CORPUS[3][1]]))
        other = MilvusStore(
            MilvusClient(uri=store._uri), collection=store.collection + "_x", uri=store._uri
        )
        bystander = other.create_version(embed_model=MODEL, dim=DIM)

        assert store.drop_stale_versions() == sorted(crashed)
        assert store.drop_stale_versions() == []
        info = store.index_info()
        assert info is not None and info.version == live
        assert other.drop_stale_versions() == [bystander]
        other.close()

    def test_mismatch_names_both_builds_and_the_fixes(self, store: MilvusStore) -> None:
        store.publish(build(store, CORPUS[:1], model="org/model-a"))
        with pytest.raises(IndexMismatchError) as caught:
            store.check_compatible(embed_model="org/model-b", dim=16)
        message = str(caught.value)
        for part in (
            "org/model-a",
            "org/model-b",
            "dim 8",
            "dim 16",
            "--recreate",
            "RAGBOT_EMBED_MODEL=org/model-a",
            "RAGBOT_EMBED_DIM=8",
        ):
            assert part in message
        assert "\n" not in message

    def test_nothing_indexed(self, store: MilvusStore) -> None:
        assert store.index_info() is None
        with pytest.raises(IndexNotFoundError, match="ragbot index PATH"):
            store.check_compatible(embed_model=MODEL, dim=DIM)
        with pytest.raises(IndexNotFoundError, match=store.collection):
            store.search(query_vector=unit(1), query_text="x", mode="hybrid", limit=3)

    def test_bad_input_is_refused_clearly(self, store: MilvusStore) -> None:
        version = build(store, CORPUS[:2])
        with pytest.raises(InputError, match="vectors of shape"):
            store.insert(version, [CORPUS[2][0]], np.zeros((2, DIM), dtype=np.float32))
        store.publish(version)
        with pytest.raises(InputError, match="published"):
            store.drop_version(version)
        with pytest.raises(InputError, match="not an index version"):
            store.drop_version("somebody_elses_collection")
        with pytest.raises(InputError, match="mode"):
            store.search(query_vector=unit(1), query_text="x", mode="fuzzy", limit=3)  # type: ignore[arg-type]
        with pytest.raises(InputError, match="limit"):
            store.search(query_vector=unit(1), query_text="x", mode="dense", limit=0)
        with pytest.raises(InputError, match="query vector"):
            store.search(query_vector=None, query_text="x", mode="hybrid", limit=3)
        with pytest.raises(InputError, match="query text"):
            store.search(query_vector=None, query_text=" ", mode="bm25", limit=3)
        with pytest.raises(InputError, match="content hash"):
            store.vectors_for_hashes(version, ['" or id != "'])

    def test_alias_name_taken_by_a_collection(self, store: MilvusStore) -> None:
        client = MilvusClient(uri=store._uri)
        schema = MilvusClient.create_schema()
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
        client.create_collection(store.collection, schema=schema)
        try:
            with pytest.raises(ConfigError, match="not an alias"):
                store.publish(build(store, CORPUS[:1]))
        finally:
            client.drop_collection(store.collection)
            client.close()


def test_connect_creates_the_lite_folder(tmp_path: Path, collection_name: str) -> None:
    uri = str(tmp_path / "deep" / "er" / "ragbot.db")
    store = MilvusStore.connect(uri, collection=collection_name)
    assert store.index_info() is None
    assert (tmp_path / "deep" / "er").is_dir()
    store.close()


def test_unreachable_server_fails_fast(closed_port_uri: str) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        MilvusStore.connect(closed_port_uri, collection="docs", timeout_s=3)
    assert time.monotonic() - started < 5
    assert closed_port_uri in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unsupported_uri_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\.db"):
        MilvusStore.connect("ftp://example.com/milvus", collection="docs")


def test_server_gone_mid_session_is_unavailable(tmp_path: Path) -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "milvus_lite",
        "server",
        "--data-dir",
        str(tmp_path / "d"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process, 60)
        store = MilvusStore.connect(f"http://127.0.0.1:{port}", collection="docs")
        store.publish(build(store, CORPUS[:1]))
    finally:
        process.terminate()
        process.wait(timeout=10)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{port}"):
        store.search(query_vector=unit(1), query_text="install", mode="hybrid", limit=3)
    assert time.monotonic() - started < 10
    store.close()
