"""The gateway's HTTP/1.1 pool (aiohttp behind httpx's transport interface) against scripted
raw servers: keep-alive, framing, a neutral session, error translation, and what the
gateway does with each error (retry, failover, or neither)."""

from __future__ import annotations

import asyncio
import errno
import gzip
from collections.abc import AsyncIterator

import aiohttp
import grpc
import httpx
import pytest

from services.core.local_redis import free_port
from services.gateway.aiohttp_pool import AiohttpPool, translate
from services.gateway.netbackend import SchemeRouter, pooled_transport
from tests.gateway.conftest import invoke, upstream_table
from tests.gateway.upstreams import RawServer, answer
from tests.waiting import wait_for

TIMEOUTS = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"


async def close_after_request(request: bytes, writer: asyncio.StreamWriter) -> bool:
    """Read the whole request, answer nothing, close: the request reached the upstream."""
    return False


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpPool]:
    pool = AiohttpPool(limits=httpx.Limits(max_connections=4, max_keepalive_connections=4), verify=True)
    yield pool
    await pool.aclose()


async def send(
    pool: AiohttpPool, method: str, url: str, timeouts: dict[str, float] = TIMEOUTS, **kwargs: object
) -> httpx.Response:
    request = httpx.Request(method, url, extensions={"timeout": timeouts}, **kwargs)  # type: ignore[arg-type]
    response = await pool.handle_async_request(request)
    try:
        await response.aread()
    finally:
        await response.aclose()
    return response


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientOSError(errno.ECONNRESET, "reset"), httpx.ReadError),
        (aiohttp.ClientPayloadError("cut short"), httpx.ReadError),
        (aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout),
        (aiohttp.ConnectionTimeoutError("connect"), httpx.ConnectTimeout),
    ],
)
def test_translate_maps_each_aiohttp_error_to_the_httpx_pool_equivalent(
    error: BaseException, expected: type[httpx.TransportError]
) -> None:
    """Each aiohttp error becomes the httpx error httpx's own pool raises, chained to it."""
    translated = translate(error)
    assert type(translated) is expected
    assert translated.__cause__ is error


def test_translate_undoes_httpx_aiohttp_connect_timeout_for_a_disconnect() -> None:
    """httpx_aiohttp's ConnectTimeout for a server disconnect becomes RemoteProtocolError."""
    mapped = httpx.ConnectTimeout("Server disconnected")
    mapped.__cause__ = aiohttp.ServerDisconnectedError()
    assert type(translate(mapped)) is httpx.RemoteProtocolError


async def test_keep_alive_reuses_one_connection(transport: AiohttpPool) -> None:
    """Sequential requests to one origin share a single kept-alive connection."""
    async with RawServer(answer(OK)) as server:
        for _ in range(3):
            response = await send(transport, "GET", f"{server.url}/a")
            assert (response.status_code, response.content) == (200, b"ok")
    assert server.connections == 1


async def test_request_line_headers_and_body_are_sent(transport: AiohttpPool) -> None:
    """Method, escaped path with query, Host, caller headers and the body reach the server."""
    async with RawServer(answer(OK)) as server:
        await send(transport, "POST", f"{server.url}/a b?x=1", headers={"x-one": "1"}, content=b'{"k":1}')
    request = server.requests[0]
    assert request.startswith(b"POST /a%20b?x=1 HTTP/1.1\r\n")
    assert server.header(0, "host") == f"127.0.0.1:{server.port}"
    assert server.header(0, "x-one") == "1" and request.endswith(b'\r\n\r\n{"k":1}')


async def test_session_adds_no_headers_and_keeps_no_cookies(transport: AiohttpPool) -> None:
    """Only the given headers go upstream; a Set-Cookie is never sent back on a later request."""
    with_cookie = OK.replace(b"\r\n\r\n", b"\r\nset-cookie: session=caller-a; Path=/\r\n\r\n", 1)
    async with RawServer(answer(with_cookie)) as server:
        await send(transport, "GET", server.url + "/a")
        await send(transport, "POST", server.url + "/b", content=b"raw")
    assert server.header(1, "cookie") is None
    for index in (0, 1):
        for name in ("user-agent", "accept", "accept-encoding"):
            assert server.header(index, name) is None
    assert server.header(1, "content-type") is None
    assert server.header(1, "content-length") == "3"


async def test_chunked_and_gzip_bodies_are_decoded(transport: AiohttpPool) -> None:
    """A chunked, gzip-encoded answer comes back as the decoded body."""
    packed = gzip.compress(b"hello world")
    raw = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-encoding: gzip\r\n\r\n"
        + b"%x\r\n" % len(packed)
        + packed
        + b"\r\n0\r\n\r\n"
    )
    async with RawServer(answer(raw)) as server:
        response = await send(transport, "GET", server.url)
    assert response.content == b"hello world"


async def test_body_until_close_is_complete(transport: AiohttpPool) -> None:
    """Without a length or chunking the body ends when the server closes; not reused."""
    raw = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it"
    async with RawServer(answer(raw, keep_open=False)) as server:
        first = await send(transport, "GET", server.url)
        await send(transport, "GET", server.url)
    assert first.content == b"all of it"
    assert server.connections == 2


async def test_head_and_interim_answers(transport: AiohttpPool) -> None:
    """HEAD has no body despite its length; a 100 Continue before the answer is skipped."""
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\n"
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    async with RawServer(answer(head)) as server:
        response = await send(transport, "HEAD", server.url)
    assert (response.status_code, response.content) == (200, b"")
    async with RawServer(answer(interim)) as server:
        response = await send(transport, "GET", server.url)
    assert (response.status_code, response.content) == (200, b"ok")


async def test_stale_idle_connection_is_replaced(transport: AiohttpPool) -> None:
    """An idle connection the server closed is dropped and a fresh one carries the request."""
    async with RawServer(answer(OK, keep_open=False)) as server:
        await send(transport, "GET", server.url)
        await wait_for(lambda: _idle_closed(transport), what="the client to see the server's close")
        response = await send(transport, "POST", server.url, content=b"{}")
    assert response.status_code == 200
    assert server.connections == 2 and len(server.requests) == 2


def _idle_closed(pool: AiohttpPool) -> bool:
    """Every idle connection in aiohttp's connector (a private table) has seen its close."""
    assert isinstance(pool.client, aiohttp.ClientSession)
    idle = pool.client.connector._conns.values()  # type: ignore[union-attr]
    return all(not proto.is_connected() for conns in idle for proto, _ in conns)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc",
        b"NOT HTTP AT ALL\r\n\r\n",
    ],
)
async def test_broken_answers_are_transport_errors_that_were_sent(transport: AiohttpPool, raw: bytes) -> None:
    """A closed, truncated or malformed answer is a transport error that is not ConnectError."""
    async with RawServer(answer(raw, keep_open=False)) as server:
        with pytest.raises(httpx.TransportError) as err:
            await send(transport, "GET", server.url)
    assert isinstance(err.value, (httpx.RemoteProtocolError, httpx.ReadError))
    assert len(server.requests) == 1


async def test_close_after_request_is_remote_protocol_error(transport: AiohttpPool) -> None:
    """A server that reads the request and closes gives RemoteProtocolError, sent exactly once,
    for a POST and a GET alike (aiohttp's own resend of idempotent requests is off)."""
    async with RawServer(close_after_request) as server:
        for method in ("POST", "GET"):
            with pytest.raises(httpx.RemoteProtocolError):
                await send(transport, method, server.url, content=b"{}" if method == "POST" else None)
    assert len(server.requests) == 2


async def test_silent_server_is_a_read_timeout(transport: AiohttpPool) -> None:
    """No byte within the read timeout raises ReadTimeout."""
    gate = asyncio.Event()

    async def hang(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await gate.wait()
        return False

    async with RawServer(hang) as server:
        with pytest.raises(httpx.ReadTimeout):
            await send(transport, "GET", server.url, {**TIMEOUTS, "read": 0.05})
        gate.set()


async def test_pool_limit_makes_callers_wait() -> None:
    """With every connection busy a caller waits for one, and gives up with a timeout."""
    pool = AiohttpPool(limits=httpx.Limits(max_connections=1, max_keepalive_connections=1), verify=True)
    gate = asyncio.Event()

    async def slow(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await gate.wait()
        writer.write(OK)
        return True

    async with RawServer(slow) as server:
        first = asyncio.create_task(send(pool, "GET", server.url))
        await wait_for(lambda: server.requests, what="the first request to hold the only connection")
        with pytest.raises(httpx.TimeoutException):
            await send(pool, "GET", server.url, {**TIMEOUTS, "pool": 0.05})
        second = asyncio.create_task(send(pool, "GET", server.url))
        gate.set()
        assert (await first).status_code == (await second).status_code == 200
    assert server.connections == 1
    await pool.aclose()


async def test_refused_connection_and_bad_header(transport: AiohttpPool) -> None:
    """Nobody listening raises ConnectError; a header with a line break is refused locally."""
    with pytest.raises(httpx.ConnectError):
        await send(transport, "POST", f"http://127.0.0.1:{free_port()}/", content=b"{}")
    async with RawServer(answer(OK)) as server:
        with pytest.raises(ValueError, match="header"):
            await send(transport, "GET", server.url, headers={"x-a": "b\r\nevil: 1"})
    assert server.requests == []


async def test_post_meeting_a_disconnect_is_neither_retried_nor_failed_over(make_upstream, gateway) -> None:
    """A POST without idempotency key that may have reached the upstream is sent exactly once,
    and reported UNAVAILABLE (not a deadline, though the caller's deadline bounds the call)."""
    good = await make_upstream()
    async with RawServer(close_after_request) as closing:
        stub = await gateway(
            {"svc": upstream_table([closing.url, good.url], breaker={"failure_threshold": 50})}
        )
        failed = 0
        for _ in range(12):
            try:
                await stub.Invoke(invoke("svc", method="POST", body=b"{}"), timeout=3)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
                failed += 1
    assert failed == len(closing.requests) >= 1
    assert len(closing.requests) + len(good.requests) == 12


async def test_get_meeting_a_disconnect_is_retried_by_the_gateway_alone(gateway) -> None:
    """A GET meeting a disconnect is retried by the gateway's policy only: 3 attempts, 3 sends."""
    async with RawServer(close_after_request) as closing:
        stub = await gateway({"svc": upstream_table([closing.url], breaker={"failure_threshold": 50})})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Invoke(invoke("svc"), timeout=3)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(closing.requests) == 3


async def test_refused_connection_fails_over_even_for_a_post(make_upstream, gateway) -> None:
    """A POST without idempotency key goes to another instance when one refuses connections."""
    good = await make_upstream()
    dead = f"http://127.0.0.1:{free_port()}"
    stub = await gateway({"svc": upstream_table([dead, good.url], breaker={"failure_threshold": 50})})
    for _ in range(6):
        reply = await stub.Invoke(invoke("svc", method="POST", body=b"{}"), timeout=3)
        assert reply.status_code == 200 and reply.instance == good.url
    assert len(good.requests) == 6


async def test_plain_http_goes_to_aiohttp_and_https_to_httpx_when_http2_is_on() -> None:
    """With HTTP/2 on (the default) only https requests go to httpx's pool; the rest to aiohttp."""
    transport = pooled_transport(limits=httpx.Limits(), http2=True, verify=True)
    assert isinstance(transport, SchemeRouter) and isinstance(transport.http1, AiohttpPool)
    assert isinstance(pooled_transport(limits=httpx.Limits(), http2=False, verify=True), AiohttpPool)
    seen: list[str] = []
    router = SchemeRouter(
        httpx.MockTransport(lambda request: (seen.append("http1"), httpx.Response(200))[1]),
        httpx.MockTransport(lambda request: (seen.append("https"), httpx.Response(200))[1]),
    )
    for url in ("http://up.example/a", "https://up.example/a"):
        await router.handle_async_request(httpx.Request("GET", url))
    assert seen == ["http1", "https"]
    await transport.aclose()
