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
_SERVER_PING_MS = 300_000  # the least gRPC servers accept by default (Milvus accepts less)


def grpc_options(uri: str) -> dict[str, object]:
    """Channel options. gRPC servers (a Milvus Lite server: ``milvus-lite server``, or the
    one a ``.db`` path runs in this process) accept one keepalive ping per 5 minutes by
    default and answer more with GOAWAY ``too_many_pings``, which gRPC logs as an error.
    pymilvus pings every 10 s: here no pings while idle, one per 5 minutes during a call
    to a server (every request has its own deadline anyway), and none at all on the
    in-process loopback."""
    local = uri.endswith(".db")
    return {
        "grpc.keepalive_permit_without_calls": False,
        "grpc.keepalive_time_ms": _NEVER_MS if local else _SERVER_PING_MS,
    }


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
