"""Loading a tokenizer and weights with ``from_pretrained``, with one kind of error."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoTokenizer

from rag_core.devices import locate_model
from rag_core.errors import ModelLoadError

LOAD_ERRORS = (OSError, ValueError, KeyError, RuntimeError)


def load_error(kind: str, model: str, error: BaseException, *, hint: str) -> ModelLoadError:
    """A one-line :class:`ModelLoadError` naming the model, the first line of the cause and
    how to fix the setting (``hint``)."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ModelLoadError(f"Could not load the {kind} model {model} ({reason}); {hint}.")


def load_pretrained(
    model_class: Any, name: str, *, kind: str, hint: str, dtype: torch.dtype
) -> tuple[Any, Any]:
    """The tokenizer and model (``model_class.from_pretrained``) of ``name``, offline when
    its files are only in the local cache."""
    source = locate_model(name, hint=hint)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source.location, local_files_only=source.local_files_only
        )
        model = model_class.from_pretrained(
            source.location, dtype=dtype, local_files_only=source.local_files_only
        )
    except LOAD_ERRORS as error:
        raise load_error(kind, name, error, hint=hint) from error
    return tokenizer, model
