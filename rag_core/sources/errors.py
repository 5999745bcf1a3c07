"""The error every source raises for a problem its user can fix."""

from __future__ import annotations

from rag_core.errors import InputError


class SourceError(InputError):
    """A doc set's source cannot be cloned, fetched or read; the message names the fix."""
