"""Length-sorted batches under a token budget, for every model that pads its inputs.

A forward pass costs what its padded tensor holds: rows × the longest row. Sorting
all of a call's inputs by length, longest first, and cutting the sorted list where the
padded size would pass a budget keeps padding small (neighbours have nearly the same
length) and bounds memory by tokens rather than by how many texts a call brings.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass


def token_bounded_batches(
    lengths: Sequence[int], batch_tokens: int, *, max_rows: int | None = None
) -> Iterator[list[int]]:
    """Indices, longest first, grouped so ``longest × count <= batch_tokens`` and
    ``count <= max_rows``; a row longer than the budget runs alone. Ties keep input order."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for index in order:
        full = max_rows is not None and len(batch) >= max_rows
        if batch and (full or lengths[batch[0]] * (len(batch) + 1) > batch_tokens):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """The forward passes of one call: each input's length in tokens and the batches
    (lists of input indices, longest first) they run in."""

    lengths: list[int]
    batches: list[list[int]]

    @classmethod
    def by_tokens(
        cls, lengths: Sequence[int], batch_tokens: int, *, max_rows: int | None = None
    ) -> BatchPlan:
        """The plan :func:`token_bounded_batches` makes for ``lengths``."""
        return cls(
            list(lengths), list(token_bounded_batches(lengths, batch_tokens, max_rows=max_rows))
        )

    @property
    def real_tokens(self) -> int:
        """Tokens the inputs hold."""
        return sum(self.lengths)

    @property
    def padded_tokens(self) -> int:
        """Tokens the padded tensors hold: each batch's longest length × its row count."""
        return sum(max(self.lengths[i] for i in batch) * len(batch) for batch in self.batches)
