"""The reranking prompt's fixed opening, run through the model once and reused.

Every reranking prompt starts with the same tokens: the system turn, the instruction
and ``<Query>:``. Their keys and values do not depend on what follows, so they are
computed once per instruction and handed to each batch as a ready-made cache; each
pair then costs only its own query and document tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache

# A few tokens are not worth the extra bookkeeping.
MIN_OPENING_TOKENS = 8


@dataclass(frozen=True)
class PromptOpening:
    """Token ids of the shared opening and, per layer, its key and value states."""

    ids: tuple[int, ...]
    states: tuple[tuple[torch.Tensor, torch.Tensor], ...]

    def __len__(self) -> int:
        return len(self.ids)

    def starts(self, rows: Sequence[Sequence[int]]) -> bool:
        """Whether every row begins with the opening and has tokens after it."""
        size = len(self.ids)
        return all(len(row) > size and tuple(row[:size]) == self.ids for row in rows)

    def cache_for(self, batch_size: int) -> DynamicCache:
        """A fresh cache holding the opening for ``batch_size`` rows (views, no copies)."""
        shape = (batch_size, -1, -1, -1)
        return DynamicCache([(k.expand(*shape), v.expand(*shape)) for k, v in self.states])


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix that all ``rows`` share."""
    if not rows:
        return 0
    first, size = rows[0], min(len(row) for row in rows)
    for row in rows[1:]:
        size = next((i for i in range(size) if row[i] != first[i]), size)
    return size


@torch.inference_mode()
def compute_opening(
    base_model: torch.nn.Module, ids: Sequence[int], device: str
) -> PromptOpening | None:
    """Run ``ids`` through the decoder once and keep its per-layer keys and values.

    Returns None when the opening is too short to be worth it.
    """
    if len(ids) < MIN_OPENING_TOKENS:
        return None
    input_ids = torch.tensor([list(ids)], dtype=torch.long, device=device)
    cache = base_model(input_ids=input_ids, use_cache=True).past_key_values
    states = tuple((keys, values) for keys, values, *_ in cache)
    return PromptOpening(ids=tuple(ids), states=states)
