"""Qwen3Embedder against sentence-transformers, plus the generic embedder, loader and devices."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from transformers import AutoTokenizer

from rag_core.devices import cpu_has_fast_bf16, resolve_device, torch_dtype_for
from rag_core.embedding import (
    Qwen3Embedder,
    SentenceTransformerEmbedder,
    load_embedder,
    packaged_fallback_model_path,
)
from rag_core.errors import ConfigError, ModelLoadError
from rag_core.settings import DEFAULT_QUERY_INSTRUCTION
from tests.model_factory import build_qwen3_embedding

TEXTS = [
    "What is Milvus?",
    "How do I create an index on a vector field before loading the collection into memory, "
    "and which index type should I pick for a million vectors?",
    "yes",
    "Hybrid search combines dense vectors with sparse BM25 vectors.",
    "",
    "kubectl apply -f milvus.yaml",
    "Partitions split a collection so that a search can skip data it does not need; " * 3,
    "Errors: connection refused.",
    "Authentication needs a username and password or an API token.",
    "a",
]


@pytest.fixture(scope="module")
def st_model(tiny_embedding_path: Path) -> SentenceTransformer:
    return SentenceTransformer(
        str(tiny_embedding_path), device="cpu", model_kwargs={"dtype": torch.float32}
    )


def test_queries_match_sentence_transformers(tiny_embedder, st_model):
    expected = st_model.encode(TEXTS, prompt_name="query", normalize_embeddings=True)
    np.testing.assert_allclose(tiny_embedder.embed_queries(TEXTS), expected, atol=1e-5)


def test_documents_match_sentence_transformers(tiny_embedder, st_model):
    expected = st_model.encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(tiny_embedder.embed_documents(TEXTS), expected, atol=1e-5)


def test_matryoshka_dim_matches_truncate_then_renormalise(tiny_embedding_path, st_model):
    embedder = Qwen3Embedder(str(tiny_embedding_path), device="cpu", dtype="float32", dim=16)
    expected = st_model.encode(TEXTS, normalize_embeddings=True, truncate_dim=16)
    got = embedder.embed_documents(TEXTS)
    assert embedder.dim == 16
    assert got.shape == (len(TEXTS), 16)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    full = st_model.encode(TEXTS, normalize_embeddings=True)
    assert not np.allclose(got, full[:, :16], atol=1e-3)  # renormalised, not just cut


def test_query_format_and_default_instruction(tiny_embedder):
    assert tiny_embedder.instruction == DEFAULT_QUERY_INSTRUCTION
    assert tiny_embedder.format_query("What is BM25?") == (
        f"Instruct: {DEFAULT_QUERY_INSTRUCTION}\nQuery:What is BM25?"
    )
    np.testing.assert_allclose(
        tiny_embedder.embed_queries(["What is BM25?"]),
        tiny_embedder.embed_documents([tiny_embedder.format_query("What is BM25?")]),
        atol=1e-6,
    )


def test_custom_instruction_changes_queries_only(tiny_embedding_path, tiny_embedder):
    custom = Qwen3Embedder(
        str(tiny_embedding_path), device="cpu", dtype="float32", instruction="Find code"
    )
    assert custom.format_query("x") == "Instruct: Find code\nQuery:x"
    assert not np.allclose(custom.embed_queries(TEXTS[:3]), tiny_embedder.embed_queries(TEXTS[:3]))
    np.testing.assert_allclose(
        custom.embed_documents(TEXTS[:3]), tiny_embedder.embed_documents(TEXTS[:3]), atol=1e-6
    )


def test_order_is_restored_with_mixed_lengths(tiny_embedder):
    batched = tiny_embedder.embed_documents(TEXTS)
    one_by_one = np.vstack([tiny_embedder.embed_documents([text]) for text in TEXTS])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    permutation = [7, 2, 9, 0, 4, 1, 8, 3, 6, 5]
    shuffled = tiny_embedder.embed_documents([TEXTS[i] for i in permutation])
    np.testing.assert_allclose(shuffled, batched[permutation], atol=1e-5)
    assert len({tuple(np.round(row, 4)) for row in batched}) == len(TEXTS)


def test_batch_size_does_not_change_results(tiny_embedding_path):
    single = Qwen3Embedder(str(tiny_embedding_path), device="cpu", dtype="float32", batch_size=1)
    eight = Qwen3Embedder(str(tiny_embedding_path), device="cpu", dtype="float32", batch_size=8)
    np.testing.assert_allclose(
        single.embed_documents(TEXTS), eight.embed_documents(TEXTS), atol=1e-5
    )
    np.testing.assert_allclose(single.embed_queries(TEXTS), eight.embed_queries(TEXTS), atol=1e-5)


def test_right_padding_tokenizer_gives_the_same_vectors(tmp_path, tiny_embedder):
    right = build_qwen3_embedding(tmp_path / "right", padding_side="right")
    assert AutoTokenizer.from_pretrained(right).padding_side == "right"
    embedder = Qwen3Embedder(str(right), device="cpu", dtype="float32", batch_size=8)
    np.testing.assert_allclose(
        embedder.embed_documents(TEXTS), tiny_embedder.embed_documents(TEXTS), atol=1e-5
    )


def test_rows_are_unit_norm_float32(tiny_embedder):
    for rows in (tiny_embedder.embed_queries(TEXTS), tiny_embedder.embed_documents(TEXTS)):
        assert rows.dtype == np.float32
        assert rows.shape == (len(TEXTS), tiny_embedder.dim)
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


def test_empty_input_gives_an_empty_matrix(tiny_embedder):
    for rows in (tiny_embedder.embed_queries([]), tiny_embedder.embed_documents([])):
        assert rows.shape == (0, 64)
        assert rows.dtype == np.float32


def test_progress_reports_each_batch(tiny_embedding_path):
    embedder = Qwen3Embedder(str(tiny_embedding_path), device="cpu", dtype="float32", batch_size=4)
    seen: list[int] = []
    embedder.embed_documents(TEXTS, progress=seen.append)
    assert seen == [4, 4, 2]


def test_truncation_at_max_length(tiny_embedding_path, st_model):
    short = Qwen3Embedder(str(tiny_embedding_path), device="cpu", dtype="float32", max_length=8)
    long_texts = [TEXTS[1], TEXTS[6]]
    st_model.max_seq_length = 8
    try:
        expected = st_model.encode(long_texts, normalize_embeddings=True)
    finally:
        st_model.max_seq_length = 32768
    got = short.embed_documents(long_texts)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    full = Qwen3Embedder(str(tiny_embedding_path), device="cpu", dtype="float32").embed_documents(
        long_texts
    )
    assert not np.allclose(got, full, atol=1e-3)


def test_count_tokens_excludes_special_tokens(tiny_embedder, tiny_embedding_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_embedding_path)
    text = TEXTS[1]
    plain = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny_embedder.count_tokens(text) == len(plain)
    assert len(tokenizer(text)["input_ids"]) == len(plain) + 1  # the appended <|endoftext|>
    assert tiny_embedder.count_tokens("") == 0


def test_dim_larger_than_model_is_a_config_error(tiny_embedding_path):
    with pytest.raises(ConfigError, match=r"\(65\).*\(64\)"):
        Qwen3Embedder(str(tiny_embedding_path), device="cpu", dtype="float32", dim=65)
    with pytest.raises(ConfigError, match="positive"):
        Qwen3Embedder(str(tiny_embedding_path), device="cpu", dtype="float32", dim=0)


def test_missing_model_path_names_the_path_and_setting(tmp_path):
    missing = tmp_path / "no-such-model"
    for build in (Qwen3Embedder, load_embedder):
        with pytest.raises(ModelLoadError) as caught:
            build(str(missing), device="cpu", dtype="float32")
        assert str(missing) in str(caught.value)
        assert "RAGBOT_EMBED_MODEL" in str(caught.value)


def test_folder_without_a_model_is_a_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        load_embedder(str(tmp_path), device="cpu", dtype="float32")


def test_uncached_hub_id_fails_fast_when_offline(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE") as caught:
        load_embedder("ragbot-tests/not-a-real-model", device="cpu", dtype="float32")
    assert time.monotonic() - started < 5
    assert "ragbot-tests/not-a-real-model" in str(caught.value)


def test_load_embedder_picks_the_implementation(tiny_embedding_path, minilm_path):
    qwen = load_embedder(
        str(tiny_embedding_path), device="cpu", dtype="float32", dim=32, instruction="Find code"
    )
    assert isinstance(qwen, Qwen3Embedder)
    assert (qwen.dim, qwen.instruction) == (32, "Find code")
    assert qwen.multilingual
    generic = load_embedder(str(minilm_path), device="cpu", dtype="float32", max_length=8192)
    assert isinstance(generic, SentenceTransformerEmbedder)
    assert generic.dim == 384
    assert not generic.multilingual  # a BERT trained on English


def test_a_sentence_transformer_of_a_multilingual_family_says_so(minilm_path, tmp_path):
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

    folder = tmp_path / "tiny-xlmr"
    config = XLMRobertaConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
    )
    XLMRobertaModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm_path).save_pretrained(folder)
    embedder = load_embedder(str(folder), device="cpu", dtype="float32")
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder.multilingual
    assert embedder.embed_queries(["¿Cómo creo una partición?"]).shape == (1, 32)


def test_packaged_fallback_is_the_minilm_folder(minilm_path):
    assert packaged_fallback_model_path() == str(minilm_path)


def test_minilm_prefers_the_relevant_passage(minilm_path):
    embedder = SentenceTransformerEmbedder(
        str(minilm_path), device="cpu", dtype="float32", max_length=8192
    )
    assert embedder.instruction == ""
    assert embedder.count_tokens("create an index") == 3
    query = embedder.embed_queries(["How do I create an index on a vector field in Milvus?"])[0]
    relevant, irrelevant = embedder.embed_documents(
        [
            "To build an index on a vector field, call create_index with the index parameters.",
            "The recipe needs two eggs, flour and a pinch of salt.",
        ]
    )
    assert float(query @ relevant) > float(query @ irrelevant) + 0.2


def test_minilm_matryoshka_rows_are_unit_norm(minilm_path):
    embedder = SentenceTransformerEmbedder(str(minilm_path), device="cpu", dtype="float32", dim=128)
    rows = embedder.embed_documents(TEXTS[:4])
    assert rows.shape == (4, 128)
    assert rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_queries([]).shape == (0, 128)


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(None) == resolve_device("auto")
    assert resolve_device("auto") in {"cuda", "mps", "cpu"}
    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda"
    else:
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="gpu"):
        resolve_device("gpu")
    assert torch_dtype_for("cuda:0") == torch.bfloat16
    assert torch_dtype_for("cpu", "float32") == torch.float32
    expected_cpu = torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    assert torch_dtype_for("cpu") == expected_cpu
    assert torch_dtype_for("mps") == torch.float32


def test_auto_precision_stays_close_to_float32(tiny_embedding_path):
    texts = ["how do I create an index", "Milvus Lite keeps data in a local file"]
    exact = Qwen3Embedder(str(tiny_embedding_path), device="cpu", dtype="float32")
    fast = Qwen3Embedder(str(tiny_embedding_path), device="cpu", dtype="bfloat16")
    cosine = (exact.embed_documents(texts) * fast.embed_documents(texts)).sum(axis=1)
    assert fast.embed_documents(texts).dtype == np.float32
    assert cosine.min() > 0.98


def test_unknown_dtype_is_a_config_error(tiny_embedding_path):
    with pytest.raises(ConfigError, match="RAGBOT_DTYPE"):
        Qwen3Embedder(str(tiny_embedding_path), device="cpu", dtype="float8")
