"""Errors that carry a message fit to show a user as it is, in one line."""

from __future__ import annotations


class RagbotError(Exception):
    """Base class: ``str(error)`` is a complete, user-facing sentence."""


class ConfigError(RagbotError):
    """A setting is missing or invalid."""


class InputError(RagbotError):
    """The user's input cannot be used (empty question, missing path, ...)."""


class ModelLoadError(RagbotError):
    """A configured model could not be loaded."""


class StoreUnavailableError(RagbotError):
    """Milvus could not be reached or answered with an error."""


class IndexMismatchError(RagbotError):
    """The collection was built with another embedding model, model revision or dimension."""


class IndexNotFoundError(RagbotError):
    """Nothing has been indexed yet."""


class GenerationError(RagbotError):
    """The chat model failed after its retries.

    ``busy`` is true when the server kept answering 429, so the user can be told to
    come back in a minute rather than that the service is down.
    """

    def __init__(self, message: str, *, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy
