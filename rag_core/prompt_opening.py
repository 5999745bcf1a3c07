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

    def as_cache(self) -> DynamicCache:
        """A cache that gives every row of a batch the opening, storing nothing new."""
        return _OpeningCache(self.states)


class _OpeningCache(DynamicCache):
    """Each layer attends to the opening plus the batch's own tokens.

    The batch's keys and values are not kept: the forward pass never comes back for
    them, and keeping them for all layers at once more than doubles the peak memory
    (20 pairs of 619 tokens, 0.6B model, float32: 5.5 GB against 2.4 GB).
    """

    def __init__(self, states: tuple[tuple[torch.Tensor, torch.Tensor], ...]) -> None:
        super().__init__(list(states))  # sizes the mask and positions: opening + new tokens
        self._opening_states = states

    def update(  # type: ignore[override]
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *_: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self._opening_states[layer_idx]
        shape = (key_states.shape[0], -1, -1, -1)
        return (
            torch.cat([keys.expand(*shape), key_states], dim=-2),
            torch.cat([values.expand(*shape), value_states], dim=-2),
        )


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
