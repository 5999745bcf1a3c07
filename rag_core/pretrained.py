"""Loading a tokenizer and weights with ``from_pretrained``, with one kind of error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoTokenizer

from rag_core.devices import locate_model
from rag_core.errors import ModelLoadError
from rag_core.model_revision import model_revision

LOAD_ERRORS = (OSError, ValueError, KeyError, RuntimeError)


@dataclass(frozen=True, slots=True)
class Pretrained:
    """A loaded tokenizer and model, and the revision of the files they came from
    (see :func:`rag_core.model_revision.model_revision`)."""

    tokenizer: Any
    model: Any
    revision: str


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
    loaded = load_pretrained_revision(model_class, name, kind=kind, hint=hint, dtype=dtype)
    return loaded.tokenizer, loaded.model


def load_pretrained_revision(
    model_class: Any,
    name: str,
    *,
    kind: str,
    hint: str,
    dtype: torch.dtype,
    revision: str | None = None,
) -> Pretrained:
    """:func:`load_pretrained` at the hub ``revision`` (a branch, tag or commit; None:
    the default branch; ignored for a folder), telling which revision was loaded."""
    source = locate_model(name, hint=hint, revision=revision)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source.location, local_files_only=source.local_files_only, revision=source.revision
        )
        model = model_class.from_pretrained(
            source.location,
            dtype=dtype,
            local_files_only=source.local_files_only,
            revision=source.revision,
        )
        loaded = model_revision(source)  # after the load, which may move the hub ref
    except LOAD_ERRORS as error:
        raise load_error(kind, name, error, hint=hint) from error
    return Pretrained(tokenizer=tokenizer, model=model, revision=loaded)
