"""Script and language detection, Latin-term extraction, and what each leg searches with."""

from __future__ import annotations

import functools

import pytest

from rag_core.languages import (
    detect_script,
    in_language,
    is_cjk,
    latin_terms,
    looks_english,
    script_of_language,
)
from rag_core.query_plan import bm25_words, foreign_weight, needs_translation, plan_query
from rag_core.settings import Settings
from rag_core.store_search import Fusion

CHINESE = (
    "插入中文文本的时候报 `length exceeds max length`，可是我用 Python 的 len() 算出来的字符数"
)
JAPANESE = "MilvusClientでpartitionを作るとき、nlistはいくつにすればいいですか？"
KOREAN = "MinIO 버킷을 어떻게 설정하나요?"


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("How do I create a partition?", "latin"),
        ("¿Cómo filtro con `like` un campo VARCHAR?", "latin"),
        (CHINESE, "cjk"),
        (JAPANESE, "cjk"),
        (KOREAN, "cjk"),
        (
            "search 请求里的 guarantee_timestamp 是 uint64 数字，Milvus 的时间戳是怎么构成的？",
            "cjk",
        ),
        ("Как создать коллекцию в Milvus?", "other"),
        ("", "latin"),
        ("42 / 7 = 6", "latin"),
        # A few CJK characters in an English question do not make it CJK.
        ("What does the error 長さ mean when I insert rows into Milvus?", "latin"),
    ],
)
def test_detect_script(text, script):
    assert detect_script(text) == script


def test_cjk_ranges():
    assert all(is_cjk(c) for c in "中文かなカナ한글")
    assert not any(is_cjk(c) for c in "abcé1_Ж")


def test_latin_terms_keep_identifiers_whole_and_drop_numbers():
    question = (
        "用MilvusClient创建collection时，nlist和max_length怎么设？"
        "MinIO的bucket配置collection.ttl.seconds=3600，version 2.4.13，MinIO"
    )
    assert latin_terms(question) == [
        "MilvusClient",
        "collection",
        "nlist",
        "max_length",
        "MinIO",
        "bucket",
        "collection.ttl.seconds",
        "version",
    ]
    assert latin_terms("全部是中文的问题") == []


@pytest.mark.parametrize(
    ("text", "english"),
    [
        ("How do I make entities in a collection expire automatically?", True),
        ("Which scalar index type should I put on a VARCHAR field?", True),
        ("¿Cómo filtro con `like` un campo VARCHAR que contiene guiones bajos?", False),
        ("Comment créer une collection avec un index dans Milvus ?", False),
        ("Wie kann ich die Partition in Milvus löschen?", False),
        ("Como faço para criar uma coleção no Milvus?", False),
        ("MilvusClient nlist", True),  # too short to tell: English
    ],
)
def test_looks_english(text, english):
    assert looks_english(text) is english


def test_in_language_and_needs_translation():
    assert in_language("How do I drop a partition?", "English")
    assert in_language("How do I drop a partition?", "en")
    assert not in_language(CHINESE, "English")
    assert needs_translation("¿Cómo creo una partición en Milvus?", "English")
    assert not needs_translation(CHINESE, "Chinese")
    assert needs_translation("How do I drop a partition?", "Chinese")
    assert script_of_language("Japanese") == "cjk"
    assert script_of_language("Klingon") == "latin"


def test_bm25_reads_only_the_latin_terms_of_a_cjk_question():
    assert bm25_words(JAPANESE, "English") == "MilvusClient partition nlist"
    assert bm25_words("¿Cómo creo una partición?", "English") == "¿Cómo creo una partición?"
    assert bm25_words(JAPANESE, "Japanese") == JAPANESE


FUSION = Fusion(k=60, dense_weight=1.0, bm25_weight=0.8, depth=2)


def test_a_question_in_the_docs_language_is_searched_as_it_is():
    query = plan_query(
        "How do I drop a partition?",
        docs_language="English",
        fusion=FUSION,
        foreign_bm25_weight=0.3,
        translation="ignored",
    )
    assert (query.dense_text, query.bm25_text) == ("How do I drop a partition?",) * 2
    assert query.fusion == FUSION and not query.translated and query.script == "latin"


def test_an_untranslated_foreign_question_weighs_bm25_as_set():
    query = plan_query(JAPANESE, docs_language="English", fusion=FUSION, foreign_bm25_weight=0.3)
    assert query.dense_text == JAPANESE
    assert query.bm25_text == "MilvusClient partition nlist"
    assert query.fusion == Fusion(k=60, dense_weight=1.0, bm25_weight=0.3, depth=2)
    assert not query.translated and query.script == "cjk"


def test_a_translated_question_searches_both_legs_with_the_translation():
    translation = "When creating a partition with MilvusClient, what should nlist be?"
    query = plan_query(
        JAPANESE + " MinIO",
        docs_language="English",
        fusion=FUSION,
        foreign_bm25_weight=0.3,
        translation=translation,
    )
    assert query.translated and query.dense_text == translation
    # Latin terms of the original the translation lost are added for BM25.
    assert query.bm25_text == f"{translation} MinIO"
    assert query.fusion == FUSION


def test_a_blank_translation_is_no_translation():
    query = plan_query(
        JAPANESE, docs_language="English", fusion=FUSION, foreign_bm25_weight=0.5, translation=" "
    )
    assert not query.translated and query.fusion.bm25_weight == 0.5


def test_the_foreign_bm25_weight_follows_the_embedder_unless_set():
    # A multilingual embedder carries the question: BM25 reads part of it, down-weighted.
    assert foreign_weight(None, bm25_weight=0.3, multilingual=True) == pytest.approx(0.15)
    # One that reads one language finds little for it: its Latin terms rank.
    assert foreign_weight(None, bm25_weight=0.3, multilingual=False) == 10
    assert foreign_weight(0.7, bm25_weight=0.3, multilingual=True) == 0.7
    assert foreign_weight(0.0, bm25_weight=0.3, multilingual=False) == 0.0


@pytest.mark.parametrize("value", ["auto", "", " AUTO "])
def test_the_foreign_bm25_weight_setting_reads_auto_as_unset(value: str):
    assert Settings(_env_file=None, foreign_bm25_weight=value).foreign_bm25_weight is None
    assert Settings(_env_file=None, foreign_bm25_weight="0.4").foreign_bm25_weight == 0.4


def test_how_a_question_was_searched_is_said_for_foreign_ones_only():
    plan = functools.partial(
        plan_query, docs_language="English", fusion=FUSION, foreign_bm25_weight=0.3
    )
    assert plan("How do I drop a partition?").how_searched() == ""
    assert plan(JAPANESE).how_searched() == (
        "not translated; BM25 read only 'MilvusClient partition nlist'"
    )
    assert plan("パーティションとは？").how_searched() == (
        "not translated; no word of it BM25 could match"
    )
    assert plan("¿Cómo creo una partición?").how_searched() == "not translated"
    translated = plan(JAPANESE, translation="What is a partition?")
    assert translated.how_searched() == "searched as its translation 'What is a partition?'"
