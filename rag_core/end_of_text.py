"""Qwen3-Embedding's end-of-text token, which every embedded input must end with.

Qwen3-Embedding embeds a text as the hidden state of its last token, and was trained on
inputs that end with ``<|endoftext|>``. The hub's current tokenizer appends it (a
post-processor in ``tokenizer.json``); the tokenizers of earlier snapshots did not, and
the vectors of the same text then differ. :class:`EndOfText` finds out once, at load,
which kind of tokenizer it has, and encodes so that both give the same token ids, the
ones sentence-transformers gives with the current tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rag_core.errors import ModelLoadError

ENDOFTEXT = "<|endoftext|>"
_PROBE = "a"


@dataclass(frozen=True, slots=True)
class EndOfText:
    """The id of ``<|endoftext|>`` and whether the tokenizer already ends inputs with it."""

    token_id: int
    appended_by_tokenizer: bool

    @classmethod
    def of(cls, tokenizer: Any, *, model: str) -> EndOfText:
        """Inspect ``tokenizer`` (of the embedding model ``model``) by encoding one probe.

        Raises:
            ModelLoadError: the vocabulary has no ``<|endoftext|>`` (not a Qwen3 tokenizer).
        """
        token_id = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ModelLoadError(
                f"The tokenizer of the embedding model {model} has no {ENDOFTEXT} token, which "
                "Qwen3-Embedding ends every input with; set RAGBOT_EMBED_MODEL to a "
                "Qwen3-Embedding model or a sentence-transformers one."
            )
        probe = tokenizer(_PROBE, return_attention_mask=False)["input_ids"]
        return cls(token_id=int(token_id), appended_by_tokenizer=probe[-1:] == [token_id])

    def encode(self, tokenizer: Any, texts: Sequence[str], *, max_length: int) -> list[list[int]]:
        """Token ids of each text, ending with ``<|endoftext|>``, at most ``max_length``
        of them (the end-of-text token included, as the tokenizer counts its own)."""
        if self.appended_by_tokenizer:
            return list(_encode(tokenizer, texts, max_length))
        if max_length < 2:
            return [[self.token_id] for _ in texts]
        return [[*row, self.token_id] for row in _encode(tokenizer, texts, max_length - 1)]


def _encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    encoded = tokenizer(
        list(texts), truncation=True, max_length=max_length, return_attention_mask=False
    )
    return encoded["input_ids"]
