"""Opening Milvus: an embedded Milvus Lite file or a server, failing fast and clearly."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import grpc
from pymilvus import MilvusClient, MilvusException

from rag_core.errors import ConfigError, StoreUnavailableError
from rag_core.store_errors import reason

_REMOTE_SCHEMES = ("http", "https", "tcp", "unix")
_NEVER_MS = 2**31 - 1


def grpc_options(uri: str) -> dict[str, object]:
    """Channel options. A Milvus Lite server (``milvus-lite server``, or the one a ``.db``
    path runs in this process) keeps gRPC's default of one ping per 5 minutes and answers
    more with GOAWAY ``too_many_pings`` (logged by gRPC as an error): no pings while idle
    anywhere, and none at all on the in-process loopback, where a call that runs long
    (a flush, an index build) would otherwise ping every 10 s."""
    options: dict[str, object] = {"grpc.keepalive_permit_without_calls": False}
    if uri.endswith(".db"):
        options["grpc.keepalive_time_ms"] = _NEVER_MS
    return options


def open_client(uri: str, *, token: str = "", timeout_s: float = 10) -> MilvusClient:
    """A client of Milvus at ``uri``: a Milvus Lite ``*.db`` path (its folder is created)
    or an ``http(s)://``/``tcp://`` address. Fails within ``timeout_s`` seconds with
    :class:`StoreUnavailableError` naming the URI when it cannot be reached."""
    if uri.endswith(".db"):
        Path(uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
        target = str(Path(uri).expanduser())
    elif urlparse(uri).scheme.lower() in _REMOTE_SCHEMES:
        target = uri
    else:
        raise ConfigError(
            f"RAGBOT_MILVUS_URI {uri!r} is neither a Milvus Lite file path ending in .db "
            "nor an http(s):// or tcp:// address of a Milvus server."
        )
    try:
        return MilvusClient(
            uri=target, token=token, timeout=timeout_s, grpc_options=grpc_options(uri)
        )
    except (MilvusException, grpc.RpcError) as error:
        hint = (
            " Is another process using it? Several processes need a Milvus server "
            "(e.g. `milvus-lite server`) and RAGBOT_MILVUS_URI=http://HOST:PORT."
            if uri.endswith(".db")
            else ""
        )
        raise StoreUnavailableError(
            f"Cannot reach Milvus at {uri}: {reason(error)}.{hint}"
        ) from error
