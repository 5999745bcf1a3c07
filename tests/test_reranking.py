"""Qwen3Reranker against the model card's full-logits computation, plus batching and the prompt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rag_core.errors import ConfigError, ModelLoadError
from rag_core.prompt_opening import common_prefix_length
from rag_core.reranking import (
    RERANK_PREFIX,
    RERANK_SUFFIX,
    Qwen3Reranker,
    format_rerank_body,
    load_reranker,
)
from rag_core.settings import DEFAULT_RERANK_INSTRUCTION
from rag_core.token_batches import token_bounded_batches

QUERY = "How do I connect to Milvus Lite from Python?"
DOCUMENTS = [
    "Use MilvusClient with a local file name such as milvus_demo.db.",
    "The quick brown fox jumps over the lazy dog.",
    "yes",
    "",
    "Hybrid search combines dense vectors with sparse BM25 vectors and fuses the results "
    "with reciprocal rank fusion. " * 4,
    "kubectl apply -f milvus.yaml",
    "Authentication needs a username and password or an API token; TLS encrypts it.",
]


@pytest.fixture(scope="module")
def reference(tiny_reranker_path: Path):
    """The model card's computation: full causal-LM logits, softmax over [no, yes]."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_reranker_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_reranker_path, dtype=torch.float32).eval()
    no_id, yes_id = tokenizer.convert_tokens_to_ids(["no", "yes"])

    def score(query: str, documents: list[str], instruction: str) -> list[float]:
        scores = []
        for document in documents:
            text = RERANK_PREFIX + format_rerank_body(instruction, query, document) + RERANK_SUFFIX
            ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
            with torch.inference_mode():
                logits = model(input_ids=ids).logits[:, -1, [no_id, yes_id]]
            scores.append(float(torch.softmax(logits, dim=-1)[0, 1]))
        return scores

    return score


def test_scores_match_the_full_logits_reference(tiny_reranker, reference):
    got = tiny_reranker.score(QUERY, DOCUMENTS)
    expected = reference(QUERY, DOCUMENTS, DEFAULT_RERANK_INSTRUCTION)
    assert got == pytest.approx(expected, abs=1e-4)
    assert all(0.0 <= value <= 1.0 for value in got)
    assert max(got) - min(got) > 0.05  # the tiny model does tell documents apart


def test_batch_token_budget_does_not_change_scores(tiny_reranker_path, tiny_reranker):
    one_at_a_time = Qwen3Reranker(
        str(tiny_reranker_path), device="cpu", dtype="float32", batch_tokens=1
    )
    assert one_at_a_time.score(QUERY, DOCUMENTS) == pytest.approx(
        tiny_reranker.score(QUERY, DOCUMENTS), abs=1e-5
    )


def test_batches_respect_the_token_budget():
    lengths = [50, 120, 80, 10, 120, 30]
    batches = list(token_bounded_batches(lengths, 250))
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert max(lengths[i] for i in batch) * len(batch) <= 250
    assert batches[0] == [1, 4]  # longest first
    assert list(token_bounded_batches([500, 10], 100)) == [[0], [1]]  # oversize runs alone


def test_the_shared_opening_runs_once_and_each_pair_runs_only_its_own_tokens(
    tiny_reranker_path, reference
):
    reranker = Qwen3Reranker(str(tiny_reranker_path), device="cpu", dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(tiny_reranker_path)
    fed: list[tuple[int, ...]] = []
    embed = reranker._base.get_input_embeddings()
    embed.register_forward_hook(lambda _module, args, _out: fed.append(tuple(args[0].shape)))
    opening = tokenizer.encode(RERANK_PREFIX, add_special_tokens=False) + tokenizer.encode(
        f"<Instruct>: {DEFAULT_RERANK_INSTRUCTION}\n<Query>:", add_special_tokens=False
    )
    other_query = "Which index suits a billion vectors?"

    for query, documents in ((QUERY, DOCUMENTS), (other_query, DOCUMENTS[:2])):
        fed.clear()
        rows = reranker.build_inputs(query, documents)
        assert all(row[: len(opening)] == opening for row in rows)
        scores = reranker.score(query, documents)
        if query == QUERY:
            assert fed.pop(0) == (1, len(opening))  # the opening runs once, on first use
        assert fed == [(len(documents), max(len(row) for row in rows) - len(opening))]
        expected = reference(query, documents, DEFAULT_RERANK_INSTRUCTION)
        assert scores == pytest.approx(expected, abs=1e-4)


def test_rows_that_do_not_start_with_the_opening_run_whole(tiny_reranker):
    rows = tiny_reranker.build_inputs(QUERY, DOCUMENTS[:3])
    opening = tiny_reranker._opening(DEFAULT_RERANK_INSTRUCTION)
    assert opening is not None and opening.starts(rows)
    with_opening = tiny_reranker._score_batch(rows, opening)
    assert tiny_reranker._score_batch(rows, None) == pytest.approx(with_opening, abs=1e-5)
    odd = [[rows[0][1], *rows[0][1:]], *rows[1:]]  # first token changed: no shared opening
    assert not opening.starts(odd)
    assert tiny_reranker._score_batch(odd, opening) == pytest.approx(
        tiny_reranker._score_batch(odd, None), abs=1e-6
    )


def test_openings_are_kept_for_a_bounded_number_of_instructions(tiny_reranker_path, reference):
    reranker = Qwen3Reranker(str(tiny_reranker_path), device="cpu", dtype="float32")
    for number in range(12):
        instruction = f"Find passages about topic {number}"
        scores = reranker.score(QUERY, DOCUMENTS[:2], instruction=instruction)
        assert 1 <= len(reranker._openings) <= 8
        assert instruction in reranker._openings
    assert scores == pytest.approx(reference(QUERY, DOCUMENTS[:2], instruction), abs=1e-4)


def test_common_prefix_length():
    assert common_prefix_length([]) == 0
    assert common_prefix_length([[1, 2, 3]]) == 3
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert common_prefix_length([[1, 2], [1, 2, 3]]) == 2
    assert common_prefix_length([[7], [1]]) == 0


def test_order_is_preserved(tiny_reranker):
    forward = tiny_reranker.score(QUERY, DOCUMENTS)
    backward = tiny_reranker.score(QUERY, DOCUMENTS[::-1])
    assert backward[::-1] == pytest.approx(forward, abs=1e-5)
    singles = [tiny_reranker.score(QUERY, [document])[0] for document in DOCUMENTS]
    assert singles == pytest.approx(forward, abs=1e-5)


def test_truncation_keeps_prefix_and_suffix(tiny_reranker_path, reference):
    reranker = Qwen3Reranker(str(tiny_reranker_path), device="cpu", dtype="float32", max_length=160)
    tokenizer = AutoTokenizer.from_pretrained(tiny_reranker_path)
    prefix = tokenizer(RERANK_PREFIX, add_special_tokens=False)["input_ids"]
    suffix = tokenizer(RERANK_SUFFIX, add_special_tokens=False)["input_ids"]
    long_document = "Milvus stores vectors in segments and compacts them. " * 200
    rows = reranker.build_inputs(QUERY, [long_document, "short"])
    assert len(rows[0]) == 160
    assert rows[0][: len(prefix)] == prefix
    assert rows[0][-len(suffix) :] == suffix
    assert len(rows[1]) < 160
    assert rows[1][-len(suffix) :] == suffix
    body = tokenizer.decode(rows[0][len(prefix) : -len(suffix)])
    assert body.startswith(f"<Instruct>: {DEFAULT_RERANK_INSTRUCTION}\n<Query>: {QUERY}")
    score = reranker.score(QUERY, [long_document])[0]
    assert 0.0 <= score <= 1.0


def test_rerank_sorts_best_first_and_respects_top_k(tiny_reranker):
    scores = tiny_reranker.score(QUERY, DOCUMENTS)
    ranked = tiny_reranker.rerank(QUERY, DOCUMENTS)
    assert [result.index for result in ranked] == sorted(
        range(len(DOCUMENTS)), key=lambda i: -scores[i]
    )
    assert all(result.document == DOCUMENTS[result.index] for result in ranked)
    assert [result.score for result in ranked] == sorted(scores, reverse=True)
    top = tiny_reranker.rerank(QUERY, DOCUMENTS, top_k=3)
    assert [result.index for result in top] == [result.index for result in ranked[:3]]
    assert tiny_reranker.rerank(QUERY, DOCUMENTS, top_k=0) == []
    assert len(tiny_reranker.rerank(QUERY, DOCUMENTS, top_k=50)) == len(DOCUMENTS)


def test_instruction_override_changes_scores(tiny_reranker_path, tiny_reranker, reference):
    instruction = "Given a question about Kubernetes, find the deployment manifest"
    default = tiny_reranker.score(QUERY, DOCUMENTS)
    overridden = tiny_reranker.score(QUERY, DOCUMENTS, instruction=instruction)
    assert max(abs(a - b) for a, b in zip(default, overridden, strict=True)) > 1e-3
    assert overridden == pytest.approx(reference(QUERY, DOCUMENTS, instruction), abs=1e-4)
    configured = Qwen3Reranker(
        str(tiny_reranker_path), device="cpu", dtype="float32", instruction=instruction
    )
    assert configured.instruction == instruction
    assert configured.score(QUERY, DOCUMENTS) == pytest.approx(overridden, abs=1e-6)


def test_empty_documents(tiny_reranker):
    assert tiny_reranker.score(QUERY, []) == []
    assert tiny_reranker.rerank(QUERY, [], top_k=3) == []


def test_missing_model_names_the_path_and_setting(tmp_path):
    missing = tmp_path / "no-such-reranker"
    with pytest.raises(ModelLoadError) as caught:
        Qwen3Reranker(str(missing), device="cpu", dtype="float32")
    assert str(missing) in str(caught.value)
    assert "RAGBOT_RERANK_MODEL" in str(caught.value)
    assert "none" in str(caught.value)


def test_max_length_too_small_for_the_prompt(tiny_reranker_path):
    with pytest.raises(ConfigError, match="RAGBOT_RERANK_MAX_LENGTH"):
        Qwen3Reranker(str(tiny_reranker_path), device="cpu", dtype="float32", max_length=16)


def test_load_reranker(tiny_reranker_path):
    assert load_reranker("") is None
    assert load_reranker("none") is None
    reranker = load_reranker(
        str(tiny_reranker_path), device="cpu", dtype="float32", batch_tokens=512
    )
    assert isinstance(reranker, Qwen3Reranker)
    assert reranker.model_id == str(tiny_reranker_path)


def test_bfloat16_scores_stay_close_to_float32(tiny_reranker, tiny_reranker_path):
    documents = ["Milvus Lite runs in process.", "Bananas are yellow.", "Use an HNSW index."]
    fast = Qwen3Reranker(str(tiny_reranker_path), device="cpu", dtype="bfloat16")
    exact_scores = tiny_reranker.score("How do I run Milvus Lite?", documents)
    fast_scores = fast.score("How do I run Milvus Lite?", documents)
    assert fast_scores == pytest.approx(exact_scores, abs=0.05)
