"""Choosing the BM25 analyzer: the pure decision, and the probe against Milvus Lite's
real refusal of ``english``."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pytest
from pymilvus import MilvusClient

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
