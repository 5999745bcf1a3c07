"""How pymilvus and gRPC failures are recognised and worded for :mod:`rag_core.store`."""

from __future__ import annotations

import grpc
from pymilvus import MilvusException
from pymilvus.exceptions import ErrorCode

COLLECTION_NOT_LOADED = 101  # Milvus' code for a search on a released collection


def is_not_loaded(error: MilvusException) -> bool:
    """A released collection: Milvus Lite releases everything when its process restarts."""
    message = str(error.message).lower()
    return error.code == COLLECTION_NOT_LOADED or "not loaded" in message or "load()" in message


def is_not_found(error: MilvusException) -> bool:
    """A missing collection or alias."""
    message = str(error.message).lower()
    return error.code == ErrorCode.COLLECTION_NOT_FOUND or (
        "not exist" in message or "not found" in message
    )


def reason(error: BaseException) -> str:
    """The error's own message on one line, without a trailing full stop."""
    if isinstance(error, MilvusException):
        text = str(error.message) or type(error).__name__
    elif isinstance(error, grpc.RpcError) and hasattr(error, "details"):
        text = str(error.details()) or type(error).__name__
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split()).rstrip(".")
