"""Choosing the BM25 analyzer: the pure decision, the probe against Milvus Lite's real
refusal of ``english``, and ``english`` itself on a Milvus 2.5 engine that has it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from pymilvus import MilvusClient

from rag_core import store_schema as rows
from rag_core.analyzers import (
    PROBE_PREFIX,
    AnalyzerChooser,
    Support,
    choose_analyzer,
    probe_english,
)
from rag_core.errors import ConfigError, InputError
from rag_core.store import MilvusStore, open_client
from rag_core.store_schema import build_schema
from rag_core.store_search import leg_searcher
from rag_core.types import Chunk


@pytest.mark.parametrize(
    ("setting", "language", "english", "chosen"),
    [
        ("auto", "English", Support.SUPPORTED, "english"),
        ("auto", "en", Support.SUPPORTED, "english"),
        ("auto", "English", Support.REFUSED, "english_stop"),
        ("auto", "French", Support.SUPPORTED, "standard"),
        ("auto", "French", Support.REFUSED, "standard"),
        ("english", "English", Support.SUPPORTED, "english"),
        ("english_stop", "English", None, "english_stop"),
        ("english_stop", "French", None, "english_stop"),
        ("standard", "English", Support.SUPPORTED, "standard"),
        ("standard", "English", None, "standard"),
    ],
)
def test_choose_analyzer(setting, language, english, chosen):
    assert choose_analyzer(setting, docs_language=language, english=english) == chosen


def test_asking_for_english_where_milvus_lacks_it_is_a_config_error():
    with pytest.raises(ConfigError, match="RAGBOT_BM25_ANALYZER"):
        choose_analyzer("english", docs_language="English", english=Support.REFUSED)
    with pytest.raises(ConfigError):
        choose_analyzer("klingon", docs_language="English", english=None)  # type: ignore[arg-type]


class CountingClient(MilvusClient):
    """The real client, counting the probe's calls."""

    probes = 0

    def create_collection(self, name, *args, **kwargs):  # type: ignore[override]
        if name.startswith(PROBE_PREFIX):
            CountingClient.probes += 1
        return super().create_collection(name, *args, **kwargs)


@pytest.fixture
def client(milvus_uri: str) -> Iterator[MilvusClient]:
    open_client(milvus_uri).close()  # creates the folder
    client = CountingClient(uri=milvus_uri)
    CountingClient.probes = 0
    yield client
    client.close()


def test_milvus_lite_refuses_english_and_the_probe_leaves_nothing(client, caplog):
    with caplog.at_level(logging.INFO, logger="rag_core.analyzers"):
        assert probe_english(client, timeout=10) is Support.REFUSED
    # Refused for the analyzer itself, not for some other fault of the probe.
    assert "english" in caplog.text and "tokenizer" in caplog.text
    assert not [n for n in client.list_collections() if n.startswith(PROBE_PREFIX)]


def test_the_chooser_asks_the_server_once(client):
    chooser = AnalyzerChooser(client, timeout=10)
    assert chooser.choose("standard", docs_language="English") == "standard"
    assert chooser.choose("english_stop", docs_language="English") == "english_stop"
    assert CountingClient.probes == 0  # neither needs an answer
    assert chooser.choose("auto", docs_language="English") == "english_stop"
    assert chooser.choose("auto", docs_language="English") == "english_stop"
    assert CountingClient.probes == 1
    with pytest.raises(ConfigError):
        chooser.choose("english", docs_language="English")


def test_the_choice_is_recorded_with_the_build(client):
    store = MilvusStore(client, collection="analyzed_docs")
    version = store.create_version(embed_model="test/axes", dim=2)
    text = "Partitions group entities."
    chunk = Chunk(
        doc_path="a.md", title="A", heading_path=(), anchor="", url="", chunk_index=0, text=text
    )
    store.insert(version, [chunk], np.array([[1.0, 0.0]], dtype=np.float32))
    store.publish(version)
    info = store.index_info()
    assert info is not None and info.analyzer == "english_stop"
    props = client.describe_collection(version)["properties"]
    assert props["ragbot.analyzer"] == "english_stop"
    found = store.search(query_vector=None, query_text="PARTITIONS", mode="bm25", limit=1)
    assert [hit.chunk.text for hit in found] == [text]  # the standard tokenizer lower-cases
    with pytest.raises(ConfigError):
        store.create_version(embed_model="test/axes", dim=2, analyzer="english")


def test_an_unknown_analyzer_name_is_refused_by_the_schema():
    with pytest.raises(InputError):
        build_schema(4, analyzer="klingon")


def _one_chunk_store(client: MilvusClient, name: str, texts: list[str], analyzer: str):
    store = MilvusStore(client, collection=name)
    version = store.create_version(embed_model="test/axes", dim=2, analyzer=analyzer)  # type: ignore[arg-type]
    chunks = [
        Chunk(
            doc_path=f"{i}.md",
            title="",
            heading_path=(),
            anchor="",
            url="",
            chunk_index=0,
            text=text,
        )
        for i, text in enumerate(texts)
    ]
    store.insert(
        version, chunks, np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (len(chunks), 1))
    )
    store.publish(version)
    return store


def test_english_stop_drops_english_stop_words_on_both_sides(client):
    texts = ["The index of the collection is built.", "Partition keys route entities."]
    plain = _one_chunk_store(client, "plain_docs", texts, "standard")
    stopped = _one_chunk_store(client, "stopped_docs", texts, "english_stop")

    def found(store: MilvusStore, query: str) -> list[str]:
        hits = store.search(query_vector=None, query_text=query, mode="bm25", limit=2)
        return [hit.chunk.text for hit in hits]

    # "the" and "of" are words to standard, and match the first text; english_stop drops
    # them from the docs and the question alike, and a question of them only finds
    # nothing, without an error.
    assert found(plain, "the of") == [texts[0]]
    assert found(stopped, "the of") == []
    assert found(stopped, "The PARTITION of keys") == [texts[1]]


# Against a Milvus 2.5 engine (Milvus Lite 2.5 over gRPC), which has ``english``. It has
# no aliases and no HNSW, so these tests build the index's schema with a FLAT index
# themselves and search it with the store's own BM25 leg.


@pytest.fixture
def milvus25(milvus25_server: str) -> Iterator[MilvusClient]:
    client = CountingClient(uri=milvus25_server)
    CountingClient.probes = 0
    yield client
    client.close()


def test_a_milvus_with_english_is_found_to_have_it_and_auto_chooses_it(milvus25):
    before = set(milvus25.list_collections())
    chooser = AnalyzerChooser(milvus25, timeout=30)
    assert chooser.english() is Support.SUPPORTED
    assert chooser.choose("auto", docs_language="English") == "english"
    assert chooser.choose("english", docs_language="English") == "english"
    assert chooser.choose("auto", docs_language="Deutsch") == "standard"
    assert CountingClient.probes == 1
    assert set(milvus25.list_collections()) == before  # the probe dropped its collection


def _bm25_collection(client: MilvusClient, analyzer: str, texts: list[str]) -> str:
    name = f"analyzed_{analyzer}_{uuid.uuid4().hex[:8]}"
    params = MilvusClient.prepare_index_params()
    params.add_index(field_name=rows.DENSE, index_type="FLAT", metric_type="IP")
    params.add_index(field_name=rows.SPARSE, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection(name, schema=build_schema(2, analyzer=analyzer), index_params=params)
    vector = np.array([1.0, 0.0], dtype=np.float32)
    chunks = [
        Chunk(
            doc_path=f"{i}.md", title="", heading_path=(), anchor="", url="", chunk_index=0, text=t
        )
        for i, t in enumerate(texts)
    ]
    client.insert(name, [rows.chunk_to_row(chunk, vector) for chunk in chunks])
    client.flush(name)
    client.load_collection(name)
    return name


def test_english_stems_and_drops_stop_words_on_a_milvus_that_has_it(milvus25):
    texts = ["The index of the collection is built.", "Partitioning routes each entity."]
    english = leg_searcher(milvus25, _bm25_collection(milvus25, "english", texts), 30)
    stop = leg_searcher(milvus25, _bm25_collection(milvus25, "english_stop", texts), 30)

    def found(search, query: str) -> list[str]:
        return [hit.chunk.text for hit in search("bm25", query, 2)]

    # Snowball stemming: "partitions" and "partitioning" meet at "partit", "entities"
    # and "entity" at "entiti"; english_stop matches whole words only.
    assert found(english, "partitions of entities") == [texts[1]]
    assert found(stop, "partitions of entities") == []
    assert found(stop, "Partitioning") == [texts[1]]
    # Both drop the same stop words from the docs and the question alike.
    assert found(english, "the of") == found(stop, "the of") == []
    assert found(english, "the INDEX") == found(stop, "the INDEX") == [texts[0]]
