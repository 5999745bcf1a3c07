"""Exact token counts on a private copy of a tokenizer, safe to call from any thread."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any


def token_counter(tokenizer: Any, *, special_tokens: bool = False) -> Callable[[str], int]:
    """A fast, exact token count without special tokens, for sizing chunks (with them when
    ``special_tokens``: what a forward pass reads, before truncation).

    Fast tokenizers are counted on a private copy of their Rust tokenizer with
    truncation and padding off: the shared one keeps whatever truncation the last
    embedding call set (which would cap counts), and the Python wrapper costs more
    than the count itself (the chunker asks tens of thousands of times per corpus).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return lambda text: len(tokenizer(text, add_special_tokens=special_tokens)["input_ids"])
    counter = copy.deepcopy(backend)
    counter.no_truncation()
    counter.no_padding()
    return lambda text: len(counter.encode(text, add_special_tokens=special_tokens).ids)
