"""The cap on what the gateway reads of an upstream's answer (``max_response_bytes``).

Checked while reading: an oversized answer fails the call as an upstream failure
(UNAVAILABLE naming the setting, counted against the instance, not retried) after at most
the cap was read — also when a small gzip body would inflate far past it.
"""

from __future__ import annotations

import asyncio
import tracemalloc
import zlib

import grpc
import pytest

from services.gateway.settings import DEFAULT_MAX_RESPONSE_BYTES, UpstreamConfig
from tests.gateway.conftest import invoke, upstream_table
from tests.gateway.upstreams import RawServer, answer
from wedsync.gateway.v1 import gateway_pb2

CAP = 256 * 1024
SENT_AT_MOST = 64 * 1024 * 1024  # what the stand-ins would send, far past the cap


async def health_of(stub) -> gateway_pb2.ServiceHealth:
    return (await stub.GetServiceHealth(gateway_pb2.GetServiceHealthRequest(service_id="svc"))).health


def test_default_cap_is_8_mib() -> None:
    """Without configuration an upstream's answers are capped at 8 MiB, the gRPC reply limit."""
    assert UpstreamConfig().max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 8 * 1024 * 1024


async def test_answer_at_the_cap_is_returned_and_one_byte_more_is_not(make_upstream, gateway) -> None:
    """A body of exactly max_response_bytes comes back whole; one byte more is UNAVAILABLE."""
    up = await make_upstream(raw=b"x" * 1000)
    stub = await gateway({"svc": upstream_table([up.url], max_response_bytes=1000)})
    reply = await stub.Invoke(invoke("svc"), timeout=10)
    assert reply.status_code == 200 and reply.body == b"x" * 1000
    up.raw = b"x" * 1001
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc"), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "larger than 1000 bytes" in err.value.details()


async def test_oversized_answer_is_cut_off_while_reading(gateway) -> None:
    """A 64 MiB chunked answer to a GET: the gateway hangs up after the cap (the upstream never
    finishes sending), answers UNAVAILABLE naming the setting, counts one failure, and does not
    retry (the same request would get the same answer)."""
    finished = asyncio.Event()

    async def endless(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"y" * 65536
        for _ in range(SENT_AT_MOST // len(chunk)):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()  # raises once the gateway has hung up
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        finished.set()
        return True

    async with RawServer(endless) as server:
        stub = await gateway({"svc": upstream_table([server.url], max_response_bytes=CAP)})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Invoke(invoke("svc"), timeout=20)
        details = err.value.details() or ""
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, details
        assert f"larger than {CAP} bytes" in details
        assert "gateway.upstreams.svc.max_response_bytes" in details
        assert len(server.requests) == 1
        health = await health_of(stub)
        assert health.request_count == 1 and health.consecutive_failures == 1
        assert "larger than" in health.last_error
    assert not finished.is_set()


async def test_compression_bomb_is_refused_without_inflating_it(gateway) -> None:
    """A 64 KiB gzip body that inflates to 64 MiB: UNAVAILABLE, and the gateway never holds much
    more than the cap (traced Python memory stays far below the inflated size)."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1024 * 1024)
    bomb = b"".join(squeeze.compress(zeros) for _ in range(SENT_AT_MOST // len(zeros))) + squeeze.flush()
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb)
    async with RawServer(answer(head + bomb)) as server:
        stub = await gateway({"svc": upstream_table([server.url], max_response_bytes=CAP)})
        tracemalloc.start()
        try:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Invoke(invoke("svc", method="POST", body=b"{}"), timeout=20)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
    assert f"larger than {CAP} bytes" in (err.value.details() or "")
    assert peak < 16 * CAP, f"peak {peak} bytes traced while reading a bomb capped at {CAP}"


async def test_gzip_answer_under_the_cap_is_decoded(gateway) -> None:
    """The cap counts decoded bytes, and an answer under it is returned decoded, as before."""
    body = b'{"word": "' + b"confetti" * 1000 + b'"}'
    squeeze = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    packed = squeeze.compress(body) + squeeze.flush()
    raw = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(packed), packed)
    async with RawServer(answer(raw)) as server:
        stub = await gateway({"svc": upstream_table([server.url], max_response_bytes=len(body))})
        reply = await stub.Invoke(invoke("svc"), timeout=10)
        assert reply.body == body and "content-encoding" not in reply.headers
        stub = await gateway({"svc": upstream_table([server.url], max_response_bytes=len(body) - 1)})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Invoke(invoke("svc"), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
