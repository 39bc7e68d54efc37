"""The cap on what the gateway reads of an upstream's answer (``max_response_bytes``).

Checked while reading: an oversized answer fails the call after at most the cap was read
— also when a small gzip body would inflate far past it — as FAILED_PRECONDITION naming
the setting: it is the caller's request that asks for too much, so it is neither retried
nor counted against the breaker every caller shares.
"""

from __future__ import annotations

import asyncio
import json
import random
import tracemalloc
import zlib
from collections.abc import AsyncIterator

import grpc
import httpx
import pydantic
import pytest

from services.core.server import MAX_MESSAGE_BYTES
from services.gateway.bodies import ResponseTooLarge, UndecodableBody, read_body
from services.gateway.settings import DEFAULT_MAX_RESPONSE_BYTES, MAX_RESPONSE_BYTES, UpstreamConfig
from tests.gateway.conftest import invoke, upstream_table
from tests.gateway.upstreams import RawServer, answer
from wedsync.gateway.v1 import gateway_pb2, gateway_pb2_grpc

CAP = 256 * 1024
SENT_AT_MOST = 64 * 1024 * 1024  # what the stand-ins would send, far past the cap


async def health_of(stub) -> gateway_pb2.ServiceHealth:
    return (await stub.GetServiceHealth(gateway_pb2.GetServiceHealthRequest(service_id="svc"))).health


def test_default_and_largest_cap_leave_half_the_reply_limit() -> None:
    """Without configuration an upstream's answers are capped at 4 MiB, and no more can be
    configured: half the gRPC reply limit (the server's real one), so the headers and the
    normalised copy that travel with the body have room."""
    assert MAX_RESPONSE_BYTES == MAX_MESSAGE_BYTES // 2  # replies are measured against MAX_MESSAGE_BYTES
    assert UpstreamConfig().max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 4 * 1024 * 1024
    assert UpstreamConfig(max_response_bytes=4 * 1024 * 1024).max_response_bytes == 4 * 1024 * 1024
    with pytest.raises(pydantic.ValidationError):
        UpstreamConfig(max_response_bytes=4 * 1024 * 1024 + 1)


async def test_answer_at_the_cap_is_returned_and_one_byte_more_is_not(make_upstream, gateway) -> None:
    """A body of exactly max_response_bytes comes back whole; one byte more is FAILED_PRECONDITION
    naming the setting, with no retry hint (retrying gets the same answer)."""
    up = await make_upstream(raw=b"x" * 1000)
    stub = await gateway({"svc": upstream_table([up.url], max_response_bytes=1000)})
    reply = await stub.Invoke(invoke("svc"), timeout=10)
    assert reply.status_code == 200 and reply.body == b"x" * 1000
    up.raw = b"x" * 1001
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc"), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = err.value.details() or ""
    assert "larger than 1000 bytes" in details and "ask for less" in details
    assert "gateway.upstreams.svc.max_response_bytes" in details
    trailers = dict(err.value.trailing_metadata() or ())
    assert "retry-after-ms" not in trailers and "grpc-status-details-bin" not in trailers
    assert len(up.requests) == 2


async def test_oversized_answers_never_open_the_breaker(make_upstream, gateway) -> None:
    """One caller asking for too much, again and again (past failure_threshold = 3): every call is
    FAILED_PRECONDITION, the breaker stays closed, health counts no failure, and other callers'
    requests go through."""
    up = await make_upstream(raw=b"x" * 2000)
    stub = await gateway({"svc": upstream_table([up.url], max_response_bytes=1000)})
    for _ in range(5):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Invoke(invoke("svc"), timeout=10)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
    assert len(up.requests) == 5  # one attempt each
    health = await health_of(stub)
    assert health.breaker_state == gateway_pb2.BREAKER_STATE_CLOSED
    assert health.consecutive_failures == 0 and health.status == gateway_pb2.SERVICE_STATUS_HEALTHY
    up.raw = b"small"
    assert (await stub.Invoke(invoke("svc"), timeout=10)).body == b"small"


async def test_oversized_5xx_answer_is_an_upstream_failure(gateway) -> None:
    """A 503 whose body passes the cap is the upstream failing anyway: counted against the breaker,
    retried as a malformed answer (GET), then UNAVAILABLE."""
    raw = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2000\r\n\r\n" + b"e" * 2000
    async with RawServer(answer(raw)) as server:
        stub = await gateway({"svc": upstream_table([server.url], max_response_bytes=1000)})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Invoke(invoke("svc"), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
        assert "HTTP 503 with an answer larger than 1000 bytes" in (err.value.details() or "")
        assert len(server.requests) == 3
        health = await health_of(stub)
        assert health.consecutive_failures == 3
        assert health.breaker_state == gateway_pb2.BREAKER_STATE_OPEN


async def test_oversized_answer_is_cut_off_while_reading(gateway) -> None:
    """A 64 MiB chunked answer to a GET: the gateway hangs up after the cap (the upstream never
    finishes sending), answers FAILED_PRECONDITION naming the setting, counts no failure, and does
    not retry (the same request would get the same answer)."""
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
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, details
        assert f"larger than {CAP} bytes" in details
        assert "gateway.upstreams.svc.max_response_bytes" in details
        assert len(server.requests) == 1
        health = await health_of(stub)
        assert health.request_count == 1 and health.consecutive_failures == 0
    assert not finished.is_set()


async def test_compression_bomb_is_refused_without_inflating_it(gateway) -> None:
    """A 64 KiB gzip body that inflates to 64 MiB: FAILED_PRECONDITION, and the gateway never holds much
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
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
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
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def _gzip(data: bytes) -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    return squeeze.compress(data) + squeeze.flush()


async def test_stacked_codings_take_a_body_exactly_at_the_cap(gateway) -> None:
    """`Content-Encoding: gzip, gzip` of an incompressible body of exactly the cap: the inner layer
    (gzip data, a little longer than the body) is not held to the cap, the decoded body is — it
    comes back whole, and with the cap one byte lower it is refused."""
    body = random.Random(7).randbytes(CAP)
    packed = _gzip(_gzip(body))
    assert len(_gzip(body)) > CAP  # what the outer layer inflates to is past the cap
    raw = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip, gzip\r\nContent-Length: %d\r\n\r\n%s" % (
        len(packed),
        packed,
    )
    async with RawServer(answer(raw)) as server:
        stub = await gateway({"svc": upstream_table([server.url], max_response_bytes=CAP)})
        reply = await stub.Invoke(invoke("svc"), timeout=10)
        assert reply.body == body and "content-encoding" not in reply.headers
        stub = await gateway({"svc": upstream_table([server.url], max_response_bytes=CAP - 1)})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Invoke(invoke("svc"), timeout=10)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


class Chunks(httpx.AsyncByteStream):
    """A response body arriving in exactly these chunks (read_body's input, no transport)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


def _deflate(data: bytes, wbits: int) -> bytes:
    squeeze = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return squeeze.compress(data) + squeeze.flush()


@pytest.mark.parametrize("wbits", [-zlib.MAX_WBITS, zlib.MAX_WBITS], ids=["raw", "zlib-wrapped"])
async def test_empty_chunks_do_not_decide_the_deflate_flavour(wbits: int) -> None:
    """Empty chunks (before, between, after the data) are skipped: an empty first chunk is no
    "first bytes" telling zlib-wrapped from raw deflate, which the real first bytes then decide."""
    body = b"wedding " * 500
    packed = _deflate(body, wbits)
    for chunks in ([b"", packed], [b"", b"", packed[:10], b"", packed[10:], b""]):
        response = httpx.Response(200, headers={"content-encoding": "deflate"}, stream=Chunks(chunks))
        assert await read_body(response, len(body)) == body
        response = httpx.Response(200, headers={"content-encoding": "deflate"}, stream=Chunks(chunks))
        with pytest.raises(ResponseTooLarge):
            await read_body(response, len(body) - 1)
    garbage = httpx.Response(200, headers={"content-encoding": "deflate"}, stream=Chunks([b"", b"\xff" * 40]))
    with pytest.raises(UndecodableBody):
        await read_body(garbage, 1000)


@pytest.mark.parametrize(
    "coding,expected",
    [("br", "br"), ("br, gzip", "br"), ("gzip, br", "gzip, br"), ("zstd, identity", "zstd")],
)
async def test_codings_not_undone_stay_labelled(gateway, coding: str, expected: str) -> None:
    """A coding the gateway cannot undo (the caller asked for br or zstd) keeps its label:
    `Content-Encoding` lists the codings still applied to the body returned; outer gzip layers
    over it are undone. Never unlabelled compressed bytes."""
    inner = b"\x1b\x07\x00\xf8 pretend-brotli"
    sent = _gzip(inner) if coding.endswith("gzip") else inner
    raw = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        coding.encode(),
        len(sent),
        sent,
    )
    async with RawServer(answer(raw)) as server:
        stub = await gateway({"svc": upstream_table([server.url])})
        reply = await stub.Invoke(invoke("svc", headers={"Accept-Encoding": "br, zstd, gzip"}), timeout=10)
    assert reply.body == inner
    assert reply.headers["content-encoding"] == expected


async def test_normalised_copy_that_would_pass_the_reply_limit_is_left_out(make_upstream, gateway) -> None:
    """A body at the 4 MiB default cap whose normalised copy would take the reply past gRPC's
    8 MiB: the reply comes back with the whole raw body and normalisation FAILED saying why,
    instead of gRPC refusing to send it (RESOURCE_EXHAUSTED with no hint)."""
    addresses = "abcd," * ((DEFAULT_MAX_RESPONSE_BYTES - 100) // 5)
    raw = json.dumps([{"MessageID": "m-1", "ErrorCode": 0, "To": addresses}]).encode()
    assert len(raw) <= DEFAULT_MAX_RESPONSE_BYTES
    up = await make_upstream(raw=raw)
    stub = await gateway({"svc": upstream_table([up.url], normalizer="postmark")})
    options = [("grpc.max_receive_message_length", 2 * MAX_MESSAGE_BYTES)]  # a client's default is 4 MiB
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stub.host.port}", options=options) as channel:
        big = gateway_pb2_grpc.IntegrationGatewayServiceStub(channel)
        reply = await big.Invoke(invoke("svc", method="POST", body=b"{}"), timeout=30)
    assert reply.status_code == 200 and reply.body == raw
    assert reply.WhichOneof("normalized") is None
    assert reply.normalization == gateway_pb2.NORMALIZATION_STATUS_FAILED
    assert "left out" in reply.normalization_error and "gRPC message limit" in reply.normalization_error
    assert reply.ByteSize() <= MAX_MESSAGE_BYTES
    up.raw = json.dumps([{"MessageID": "m-2", "ErrorCode": 0, "To": "a@example.com"}]).encode()
    small = await stub.Invoke(invoke("svc", method="POST", body=b"{}"), timeout=10)
    assert small.normalization == gateway_pb2.NORMALIZATION_STATUS_NORMALIZED


def test_rough_reply_size_is_never_far_below_the_real_one() -> None:
    """render() measures a reply (ByteSize serialises it, body included) only when its rough size
    comes within SIZE_CHECK_SLACK of the limit: the rough size must not be below the real one
    by more than a few KiB of tags and scalars, whatever the body, headers or normalised copy."""
    from services.gateway.servicer import SIZE_CHECK_SLACK, _rough_size

    email = gateway_pb2.EmailMessage(id="m-1", provider="postmark")
    cases = [
        gateway_pb2.InvokeResponse(status_code=200),
        gateway_pb2.InvokeResponse(status_code=200, body=b"x" * 100_000, headers={"k": "v" * 1000}),
        gateway_pb2.InvokeResponse(
            headers={f"h{i}": "\u00e9\u20ac" * 50 for i in range(100)}, instance="https://a/"
        ),
        gateway_pb2.InvokeResponse(
            body=b"[]", email_list=gateway_pb2.EmailMessageList(messages=[email] * 20_000), attempts=3
        ),
        gateway_pb2.InvokeResponse(normalization_error="\U0001f600" * 500, upstream_request_id="r" * 300),
    ]
    for reply in cases:
        assert reply.ByteSize() <= _rough_size(reply) + 1024
    assert SIZE_CHECK_SLACK >= 64 * 1024
