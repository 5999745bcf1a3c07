"""The reranking implementations ``bench_rerank.py`` compares, one loader per variant.

Each loader takes the saved model, the device, the weights' dtype name and the token
budget, and returns an object whose ``score(query, documents, instruction)`` gives one
probability per document. A new variant is a new loader in :data:`LOADERS` with its
line in :data:`DESCRIPTIONS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

RECIPE = "recipe"
PLAIN = "plain"
DEFAULT = "default"
DESCRIPTIONS = {
    RECIPE: "the Qwen3-Reranker model card's code: full-vocabulary logits at every position",
    PLAIN: "one padded batch, last position, yes/no rows",
    DEFAULT: "Qwen3Reranker.score: token-budget batches, cached prompt opening, yes-no row",
}


class Scorer(Protocol):
    def score(self, query: str, documents: list[str], instruction: str) -> list[float]: ...


class ModelCardReranker:
    """The Qwen3-Reranker model card's usage example, kept as written there."""

    def __init__(self, model_dir: Path, device: str, dtype: str, max_length: int = 8192) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rag_core.devices import torch_dtype_for
        from rag_core.reranking import RERANK_PREFIX, RERANK_SUFFIX

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        self.model = (
            AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype_for(device, dtype))
            .to(device)
            .eval()
        )
        self.token_false_id = self.tokenizer.convert_tokens_to_ids("no")
        self.token_true_id = self.tokenizer.convert_tokens_to_ids("yes")
        self.prefix_tokens = self.tokenizer.encode(RERANK_PREFIX, add_special_tokens=False)
        self.suffix_tokens = self.tokenizer.encode(RERANK_SUFFIX, add_special_tokens=False)
        self.max_length = max_length
        self.torch = torch

    def process_inputs(self, pairs: list[str]) -> Any:
        inputs = self.tokenizer(
            pairs,
            padding=False,
            truncation="longest_first",
            return_attention_mask=False,
            max_length=self.max_length - len(self.prefix_tokens) - len(self.suffix_tokens),
        )
        for i, ele in enumerate(inputs["input_ids"]):
            inputs["input_ids"][i] = self.prefix_tokens + ele + self.suffix_tokens
        inputs = self.tokenizer.pad(
            inputs, padding=True, return_tensors="pt", max_length=self.max_length
        )
        for key in inputs:
            inputs[key] = inputs[key].to(self.model.device)
        return inputs

    def compute_logits(self, inputs: Any) -> list[float]:
        with self.torch.no_grad():
            batch_scores = self.model(**inputs).logits[:, -1, :]
            true_vector = batch_scores[:, self.token_true_id]
            false_vector = batch_scores[:, self.token_false_id]
            batch_scores = self.torch.stack([false_vector, true_vector], dim=1)
            batch_scores = self.torch.nn.functional.log_softmax(batch_scores, dim=1)
            return batch_scores[:, 1].exp().tolist()

    def score(self, query: str, documents: list[str], instruction: str) -> list[float]:
        from rag_core.reranking import format_rerank_body

        pairs = [format_rerank_body(instruction, query, doc) for doc in documents]
        return self.compute_logits(self.process_inputs(pairs))


class PlainReranker(ModelCardReranker):
    """The model card's code with its obvious fix: the same single padded batch, but
    the base model only, its last position only, and only the ``no``/``yes`` rows of
    the output layer (no cache kept, as nothing is generated)."""

    def __init__(self, model_dir: Path, device: str, dtype: str) -> None:
        super().__init__(model_dir, device, dtype)
        head = self.model.get_output_embeddings().weight
        self.rows = head[[self.token_false_id, self.token_true_id]].detach().clone()
        self.base = self.model.get_decoder()

    def compute_logits(self, inputs: Any) -> list[float]:
        with self.torch.inference_mode():
            hidden = self.base(**inputs, use_cache=False).last_hidden_state[:, -1, :]
            logits = hidden @ self.rows.T
            return self.torch.softmax(logits.float(), dim=1)[:, 1].tolist()


class DefaultReranker:
    """:class:`~rag_core.reranking.Qwen3Reranker` as the application configures it."""

    def __init__(self, model_dir: Path, device: str, dtype: str, batch_tokens: int) -> None:
        from rag_core.reranking import Qwen3Reranker

        self.reranker = Qwen3Reranker(
            str(model_dir), device=device, batch_tokens=batch_tokens, dtype=dtype
        )

    def score(self, query: str, documents: list[str], instruction: str) -> list[float]:
        return self.reranker.score(query, documents, instruction=instruction)

    def prompt_tokens(self, query: str, documents: list[str], instruction: str) -> list[int]:
        rows = self.reranker.build_inputs(query, documents, instruction=instruction)
        return [len(row) for row in rows]


def load_recipe(model_dir: Path, device: str, dtype: str, batch_tokens: int) -> Scorer:
    """The recipe ignores the token budget: one batch, whatever its size."""
    return ModelCardReranker(model_dir, device, dtype)


def load_plain(model_dir: Path, device: str, dtype: str, batch_tokens: int) -> Scorer:
    """One batch too: memory grows with the candidates, not bounded by the budget."""
    return PlainReranker(model_dir, device, dtype)


def load_default(model_dir: Path, device: str, dtype: str, batch_tokens: int) -> Scorer:
    return DefaultReranker(model_dir, device, dtype, batch_tokens)


LOADERS: dict[str, Callable[[Path, str, str, int], Scorer]] = {
    RECIPE: load_recipe,
    PLAIN: load_plain,
    DEFAULT: load_default,
}
