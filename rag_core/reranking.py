"""Qwen3-Reranker: scores (query, document) pairs as the probability the model answers "yes".

The prompt is Qwen's official reranking format. Only what the score needs is
computed: the base model's final hidden state at the last position, projected on
the difference of the ``yes`` and ``no`` rows of the output layer, so
``sigmoid(h · (w_yes − w_no))`` equals the softmax over those two logits without
ever materialising logits over the ~150k-token vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import AutoModelForCausalLM

from rag_core.devices import resolve_device, torch_dtype_for
from rag_core.errors import ConfigError, ModelLoadError
from rag_core.pretrained import load_pretrained
from rag_core.prompt_opening import (
    PromptOpening,
    cache_keyword,
    common_prefix_length,
    compute_opening,
)
from rag_core.settings import DEFAULT_RERANK_INSTRUCTION
from rag_core.token_batches import token_bounded_batches
from rag_core.types import RerankResult, ranked_results

RERANK_MODEL_HINT = (
    "set RAGBOT_RERANK_MODEL to a Hugging Face model id, a local folder holding the model, "
    "or none to disable reranking"
)
RERANK_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query "
    'and the Instruct provided. Note that the answer can only be "yes" or "no".'
    "<|im_end|>\n<|im_start|>user\n"
)
RERANK_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
_DISABLED_NAMES = frozenset({"", "none", "off", "false"})
# Openings kept per reranker: one per distinct instruction, cleared beyond this.
_MAX_OPENINGS = 8


def format_rerank_body(instruction: str, query: str, document: str) -> str:
    """The user turn of the official prompt; the only part that is truncated."""
    return f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"


class Qwen3Reranker:
    """Cross-encoder reranking with Qwen3-Reranker (a causal LM judging yes/no).

    Pairs are run in length-sorted batches whose padded size (longest × count) stays
    within ``batch_tokens``, so memory is bounded by tokens rather than by the number
    of documents. The prompt's fixed opening (system turn and instruction) is run once
    per instruction and its keys and values are reused, so each pair costs only its own
    query and document tokens. Weights are bf16 on CUDA and on CPUs with native bf16
    unless ``dtype`` says otherwise; the final yes/no margin is always computed in float32.

    Raises:
        ModelLoadError: the model cannot be found or loaded, or its vocabulary lacks
            single ``yes``/``no`` tokens.
        ConfigError: ``max_length`` or ``batch_tokens`` is out of range, or the device
            is unavailable.
    """

    def __init__(
        self,
        model_name_or_path: str,
        *,
        device: str | None = None,
        max_length: int = 8192,
        instruction: str | None = None,
        batch_tokens: int = 16384,
        dtype: str = "auto",
    ) -> None:
        if batch_tokens < 1:
            raise ConfigError(f"RAGBOT_RERANK_BATCH_TOKENS must be positive, got {batch_tokens}.")
        self._model_id = model_name_or_path
        self._instruction = DEFAULT_RERANK_INSTRUCTION if instruction is None else instruction
        self._batch_tokens = batch_tokens
        self._device = resolve_device(device)
        self._dtype = torch_dtype_for(self._device, dtype)
        self._openings: dict[str, PromptOpening | None] = {}
        self._load_model()
        self._body_budget = max_length - len(self._prefix_ids) - len(self._suffix_ids)
        if self._body_budget < 1:
            raise ConfigError(
                f"RAGBOT_RERANK_MAX_LENGTH ({max_length}) leaves no room for the document; the "
                f"prompt alone takes {len(self._prefix_ids) + len(self._suffix_ids)} tokens."
            )

    def _load_model(self) -> None:
        """Load tokenizer and weights once; keep only the ``yes − no`` direction of the head."""
        self._tokenizer, model = load_pretrained(
            AutoModelForCausalLM,
            self._model_id,
            kind="reranking",
            hint=RERANK_MODEL_HINT,
            dtype=self._dtype,
        )
        yes_id, no_id = (self._single_token_id(word) for word in ("yes", "no"))
        model = model.to(self._device).eval()
        head = model.get_output_embeddings()
        with torch.no_grad():
            self._direction = head.weight[yes_id].float() - head.weight[no_id].float()
            bias = getattr(head, "bias", None)
            self._bias = float(bias[yes_id] - bias[no_id]) if bias is not None else 0.0
        self._base = model.get_decoder()
        self._cache_keyword = cache_keyword(self._base)
        self._pad_id = int(self._tokenizer.pad_token_id or 0)
        self._prefix_ids = self._encode(RERANK_PREFIX)
        self._suffix_ids = self._encode(RERANK_SUFFIX)

    def _single_token_id(self, word: str) -> int:
        ids = self._encode(word)
        if len(ids) != 1:
            raise ModelLoadError(
                f"{self._model_id} is not a Qwen3 reranker ({word!r} is not a single token in its "
                f"vocabulary); {RERANK_MODEL_HINT}."
            )
        return ids[0]

    def _encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def instruction(self) -> str:
        return self._instruction

    def score(
        self, query: str, documents: Sequence[str], *, instruction: str | None = None
    ) -> list[float]:
        """Probability in [0, 1] that each document answers ``query``, in input order."""
        return self.score_pairs(
            [(query, document) for document in documents], instruction=instruction
        )

    def score_pairs(
        self, pairs: Sequence[tuple[str, str]], *, instruction: str | None = None
    ) -> list[float]:
        """:meth:`score` for the candidates of several queries at once, in input order:
        their prompts share the token-bounded batches (a worker serving several questions
        at once scores them so). Consecutive pairs of one query are tokenized together."""
        instruction = self._instruction if instruction is None else instruction
        rows: list[list[int]] = []
        start = 0
        while start < len(pairs):
            query, end = pairs[start][0], start + 1
            while end < len(pairs) and pairs[end][0] == query:
                end += 1
            documents = [document for _, document in pairs[start:end]]
            rows += self.build_inputs(query, documents, instruction=instruction)
            start = end
        scores = [0.0] * len(rows)
        if not rows:
            return scores
        opening = self._opening(instruction)
        for batch in token_bounded_batches([len(row) for row in rows], self._batch_tokens):
            values = self._score_batch([rows[i] for i in batch], opening)
            for index, value in zip(batch, values, strict=True):
                scores[index] = value
        return scores

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_k: int | None = None,
        instruction: str | None = None,
    ) -> list[RerankResult]:
        """Documents with their scores, best first; at most ``top_k`` when given."""
        return ranked_results(
            documents, self.score(query, documents, instruction=instruction), top_k
        )

    def build_inputs(
        self, query: str, documents: Sequence[str], *, instruction: str | None = None
    ) -> list[list[int]]:
        """Token ids fed to the model per document: prefix, truncated body, suffix."""
        instruction = self._instruction if instruction is None else instruction
        bodies = self._tokenizer(
            [format_rerank_body(instruction, query, doc) for doc in documents],
            add_special_tokens=False,
            truncation=True,
            max_length=self._body_budget,
            return_attention_mask=False,
        )["input_ids"]
        return [self._prefix_ids + list(body) + self._suffix_ids for body in bodies]

    def _opening(self, instruction: str) -> PromptOpening | None:
        """The instruction's shared opening, computed on first use.

        Its tokens are those two prompts with different queries and documents share, so
        they never depend on how a query's first word is tokenized. Safe to call from
        several threads: at worst two compute the same opening, or one runs without it.
        """
        if instruction in self._openings:
            return self._openings.get(instruction)
        probes = [
            self.build_inputs(query, [document], instruction=instruction)[0]
            for query, document in (("a", "b"), ("z", "y"))
        ]
        opening = compute_opening(
            self._base,
            probes[0][: common_prefix_length(probes)],
            self._device,
            self._cache_keyword,
        )
        if len(self._openings) >= _MAX_OPENINGS:
            self._openings.clear()
        self._openings[instruction] = opening
        return opening

    @torch.inference_mode()
    def _score_batch(self, rows: list[list[int]], opening: PromptOpening | None) -> list[float]:
        if opening is None or not opening.starts(rows):
            opening = None
        skip = len(opening) if opening is not None else 0
        tails = [row[skip:] for row in rows]
        width = max(len(tail) for tail in tails)
        input_ids = torch.full((len(tails), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(tails), width), dtype=torch.long)
        for i, tail in enumerate(tails):  # left padding: the last position is always real
            input_ids[i, width - len(tail) :] = torch.tensor(tail, dtype=torch.long)
            mask[i, width - len(tail) :] = 1
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0) + skip
        cache = None
        if opening is not None:  # the opening's keys and values stand in for its tokens
            cache = opening.as_cache()
            mask = torch.cat([torch.ones((len(tails), skip), dtype=torch.long), mask], dim=1)
        hidden = self._base(
            input_ids=input_ids.to(self._device),
            attention_mask=mask.to(self._device),
            position_ids=position_ids.to(self._device),
            use_cache=cache is not None,
            **{self._cache_keyword: cache},
        ).last_hidden_state[:, -1, :]
        margin = hidden.float() @ self._direction + self._bias
        return torch.sigmoid(margin).cpu().tolist()


def load_reranker(
    model_name_or_path: str,
    *,
    device: str | None = None,
    max_length: int = 8192,
    instruction: str | None = None,
    batch_tokens: int = 16384,
    dtype: str = "auto",
) -> Qwen3Reranker | None:
    """A :class:`Qwen3Reranker`, or None when reranking is off (``""``, ``none`` or ``off``)."""
    if model_name_or_path.strip().lower() in _DISABLED_NAMES:
        return None
    return Qwen3Reranker(
        model_name_or_path.strip(),
        device=device,
        max_length=max_length,
        instruction=instruction,
        batch_tokens=batch_tokens,
        dtype=dtype,
    )
