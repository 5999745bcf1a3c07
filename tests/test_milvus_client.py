"""Opening Milvus: the channel options each kind of server gets."""

from __future__ import annotations

from rag_core.milvus_client import grpc_options, open_client


def test_no_keepalive_pings_on_the_in_process_loopback(tmp_path):
    local = grpc_options(str(tmp_path / "milvus.db"))
    assert local["grpc.keepalive_permit_without_calls"] is False
    assert local["grpc.keepalive_time_ms"] == 2**31 - 1
    # A server gets a ping per 5 minutes during a call, none while idle.
    remote = grpc_options("http://milvus:19530")
    assert remote == {
        "grpc.keepalive_permit_without_calls": False,
        "grpc.keepalive_time_ms": 300_000,
    }


def test_a_lite_file_opens_with_those_options(tmp_path):
    client = open_client(str(tmp_path / "data" / "milvus.db"))
    try:
        assert client.list_collections() == []
    finally:
        client.close()
