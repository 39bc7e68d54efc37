"""Invoke end to end: proxying, errors, retries, deadlines, request hygiene."""

from __future__ import annotations

import asyncio
import json
import time

import grpc
import pytest

from tests.gateway.conftest import invoke, upstream_table
from tests.gateway.upstreams import RawServer, answer
from wedsync.gateway.v1 import gateway_pb2


async def test_invoke_proxies_request_and_returns_response(make_upstream, gateway) -> None:
    """A GET with query and headers reaches the upstream and its answer comes back as is."""
    up = await make_upstream(body={"hello": "world"})
    stub = await gateway({"svc": upstream_table([up.url])})
    reply = await stub.Invoke(
        invoke(
            "svc",
            "/v1/items/a b",
            query=[
                gateway_pb2.QueryParameter(key="expand[]", value="x"),
                gateway_pb2.QueryParameter(key="expand[]", value="y"),
            ],
            headers={"X-Trace": "t1"},
        ),
        timeout=10,
    )
    assert reply.status_code == 200
    assert reply.body == b'{"hello": "world"}'
    assert reply.attempts == 1
    assert reply.instance == up.url
    assert reply.upstream_request_id == "req_1"
    assert reply.normalization == gateway_pb2.NORMALIZATION_STATUS_RAW
    seen = up.requests[0]
    assert seen.path == "/v1/items/a b"
    assert seen.query == "expand%5B%5D=x&expand%5B%5D=y"
    assert seen.headers["x-trace"] == "t1"


async def test_unknown_service_is_not_found(make_upstream, gateway) -> None:
    """An unknown service id answers NOT_FOUND naming the configured ones."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url])})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("nope"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "svc" in err.value.details()


async def test_upstream_4xx_is_a_result_and_does_not_trip_the_breaker(make_upstream, gateway) -> None:
    """Ten 404s in a row come back as results; the breaker stays closed and the service HEALTHY."""
    up = await make_upstream(status=404, body={"error": {"message": "no such thing"}})
    stub = await gateway({"svc": upstream_table([up.url])})
    for _ in range(10):
        reply = await stub.Invoke(invoke("svc"), timeout=10)
        assert reply.status_code == 404 and reply.attempts == 1
    health = (await stub.GetServiceHealth(gateway_pb2.GetServiceHealthRequest(service_id="svc"))).health
    assert health.breaker_state == gateway_pb2.BREAKER_STATE_CLOSED
    assert health.status == gateway_pb2.SERVICE_STATUS_HEALTHY
    assert health.error_rate == 0.0


async def test_idempotent_request_retried_on_503(make_upstream, gateway) -> None:
    """A GET that meets two 503s is retried and succeeds on the third attempt."""
    up = await make_upstream(fail_first=2, fail_status=503)
    stub = await gateway({"svc": upstream_table([up.url])})
    reply = await stub.Invoke(invoke("svc"), timeout=10)
    assert reply.status_code == 200
    assert reply.attempts == 3
    assert len(up.requests) == 3


async def test_retries_stop_at_configured_attempts(make_upstream, gateway) -> None:
    """A GET meeting only 502s makes exactly `attempts` tries and returns the last 502 as a result."""
    up = await make_upstream(fail_first=100, fail_status=502)
    stub = await gateway({"svc": upstream_table([up.url], breaker={"failure_threshold": 50})})
    reply = await stub.Invoke(invoke("svc"), timeout=10)
    assert reply.status_code == 502
    assert reply.attempts == 3
    assert len(up.requests) == 3


async def test_500_is_not_retried(make_upstream, gateway) -> None:
    """Only 502/503/504 and 429 are retried: a 500 comes back after one attempt."""
    up = await make_upstream(fail_first=1, fail_status=500)
    stub = await gateway({"svc": upstream_table([up.url])})
    reply = await stub.Invoke(invoke("svc"), timeout=10)
    assert reply.status_code == 500 and reply.attempts == 1
    assert len(up.requests) == 1


async def test_post_without_idempotency_key_is_not_retried(make_upstream, gateway) -> None:
    """A POST meeting a 503 is not repeated unless it carries an idempotency key."""
    up = await make_upstream(fail_first=1, fail_status=503)
    stub = await gateway({"svc": upstream_table([up.url])})
    reply = await stub.Invoke(invoke("svc", method="POST", body=b"{}"), timeout=10)
    assert reply.status_code == 503 and reply.attempts == 1
    assert "idempotency-key" not in up.requests[0].headers


async def test_post_with_idempotency_key_is_retried_and_key_sent(make_upstream, gateway) -> None:
    """A POST with an idempotency key is retried, sending the key upstream as Idempotency-Key."""
    up = await make_upstream(fail_first=1, fail_status=503)
    stub = await gateway({"svc": upstream_table([up.url])})
    reply = await stub.Invoke(invoke("svc", method="POST", body=b"{}", idempotency_key="k-1"), timeout=10)
    assert reply.status_code == 200 and reply.attempts == 2
    assert [r.headers["idempotency-key"] for r in up.requests] == ["k-1", "k-1"]


async def test_429_retry_after_is_honoured(make_upstream, gateway) -> None:
    """After a 429 with Retry-After: 1 the retry comes no sooner than one second later."""
    up = await make_upstream(fail_first=1, fail_status=429, retry_after="1")
    stub = await gateway({"svc": upstream_table([up.url], retry={"backoff_s": 0.01, "max_backoff_s": 2})})
    reply = await stub.Invoke(invoke("svc"), timeout=10)
    assert reply.status_code == 200 and reply.attempts == 2
    assert up.requests[1].at - up.requests[0].at >= 1.0


async def test_429_retry_after_beyond_deadline_is_returned(make_upstream, gateway) -> None:
    """A 429 whose Retry-After exceeds the caller's deadline is returned, not retried early."""
    up = await make_upstream(fail_first=1, fail_status=429, retry_after="30")
    stub = await gateway({"svc": upstream_table([up.url])})
    reply = await stub.Invoke(invoke("svc"), timeout=5)
    assert reply.status_code == 429 and reply.attempts == 1
    assert reply.headers["retry-after"] == "30"
    assert len(up.requests) == 1


async def test_deadline_shorter_than_upstream_delay(make_upstream, gateway) -> None:
    """The caller's deadline bounds the upstream call: DEADLINE_EXCEEDED, and no retry after it."""
    up = await make_upstream(delay_s=5.0)
    stub = await gateway({"svc": upstream_table([up.url])})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc"), timeout=1.0)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # a retry would come within the backoff (<= 0.05 s): wait well past it, then count
    await asyncio.sleep(0.5)
    assert len(up.requests) == 1
    health = (await stub.GetServiceHealth(gateway_pb2.GetServiceHealthRequest(service_id="svc"))).health
    assert health.consecutive_failures == 0  # the caller gave up; the upstream is not to blame


async def test_configured_timeout_is_retried_then_unavailable(make_upstream, gateway) -> None:
    """An upstream slower than timeout_s counts as a failure, is retried, then UNAVAILABLE."""
    up = await make_upstream(delay_s=2.0)
    stub = await gateway(
        {"svc": upstream_table([up.url], timeout_s=0.2, retry={"attempts": 2, "backoff_s": 0.01})}
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc"), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "svc" in err.value.details()
    assert len(up.requests) == 2


async def test_connection_reset_is_retried(resetting_server, gateway) -> None:
    """Connections reset by the upstream are retried for a GET, then reported UNAVAILABLE."""
    stub = await gateway({"svc": upstream_table([resetting_server.url], breaker={"failure_threshold": 50})})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc"), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert resetting_server.connections == 3


@pytest.mark.parametrize(
    "path",
    [
        "/../admin",
        "/v1/../../admin",
        "/v1/%2e%2e/admin",
        "/v1/%2E%2E/admin",
        "/v1/%252e%252e/admin",
        "/v1/..;/admin",
        "/v1/..;jsessionid=x/admin",
        "/v1/.;/admin",
        "/v1/%2e%2e;/admin",
        "/v1/..%3b/admin",
        "/..;/admin",
        "//evil.example.com/x",
        "http://evil.example.com/x",
        "/http://evil.example.com/x",
        "/v1\\..\\admin",
        "/v1/%5c..%5cadmin",
        "/v1/a%2fb",
        "v1/relative",
        "/v1/x?y=1",
        "/v1/x#frag",
        "/v1/\r\nHost: evil",
    ],
)
async def test_path_escape_attempts_are_refused(make_upstream, gateway, path: str) -> None:
    """Paths that could leave the base URL are refused with INVALID_ARGUMENT and never sent."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url + "/base"])})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc", path), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "path" in err.value.details()
    assert up.requests == []


async def test_dot_segment_with_parameters_is_refused_saying_why(make_upstream, gateway) -> None:
    """'..;' is refused as '..' is (servers that drop ';' parameters climb on it), and the message
    says so; a ';' elsewhere in a segment is fine and reaches the upstream."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url + "/base"])})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc", "/v1/..;/admin"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'..;'" in err.value.details() and "segments" in err.value.details()
    reply = await stub.Invoke(invoke("svc", "/v1/a;v=1/..x;/b"), timeout=10)
    assert reply.status_code == 200 and up.requests[0].path.startswith("/base/v1/a")


async def test_path_is_joined_under_the_base_path(make_upstream, gateway) -> None:
    """The path is appended to the instance's base path, percent-encoded."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url + "/base"])})
    await stub.Invoke(invoke("svc", "/v1/a:b/c d"), timeout=10)
    assert up.requests[0].path == "/base/v1/a:b/c d"


async def test_caller_authorization_and_hop_by_hop_headers_are_dropped(
    make_upstream, gateway, monkeypatch
) -> None:
    """Caller Authorization and hop-by-hop headers never reach the upstream; the gateway's credential does."""
    monkeypatch.setenv("TEST_TOKEN", "sk_test_123")
    up = await make_upstream(require={"authorization": "Bearer sk_test_123"})
    stub = await gateway(
        {"svc": upstream_table([up.url], auth={"type": "bearer", "token_env": "TEST_TOKEN"})}
    )
    reply = await stub.Invoke(
        invoke(
            "svc",
            headers={
                "Authorization": "Bearer caller-token",
                "Connection": "close",
                "Upgrade": "h2c",
                "Proxy-Authorization": "x",
                "TE": "trailers",
                "X-Kept": "yes",
            },
        ),
        timeout=10,
    )
    assert reply.status_code == 200
    seen = up.requests[0].headers
    assert seen["authorization"] == "Bearer sk_test_123"
    assert "upgrade" not in seen and "proxy-authorization" not in seen and "te" not in seen
    assert seen["x-kept"] == "yes"


async def test_body_over_limit_is_refused(make_upstream, gateway) -> None:
    """A body over max_body_bytes is refused with INVALID_ARGUMENT naming the limit and its key."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url], max_body_bytes=100)})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc", method="POST", body=b"x" * 101), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_body_bytes" in err.value.details()
    assert up.requests == []


async def test_unknown_method_is_refused(make_upstream, gateway) -> None:
    """A method outside the HTTP verbs the gateway proxies is INVALID_ARGUMENT."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url])})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc", method="CONNECT"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_connection_listed_headers_are_dropped(make_upstream, gateway) -> None:
    """Headers named in the caller's Connection header are hop-by-hop and not forwarded."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url])})
    await stub.Invoke(invoke("svc", headers={"Connection": "X-Private, close", "X-Private": "p"}), timeout=10)
    assert "x-private" not in up.requests[0].headers


async def test_compressed_response_is_returned_decoded_without_its_coding(make_upstream, gateway) -> None:
    """A gzip answer comes back decoded, without content-encoding/length headers that no longer fit."""
    body = {"word": "confetti" * 200}
    up = await make_upstream(body=body, gzip=True)
    stub = await gateway({"svc": upstream_table([up.url])})
    reply = await stub.Invoke(invoke("svc", headers={"Accept-Encoding": "gzip"}), timeout=10)
    assert reply.status_code == 200
    assert json.loads(reply.body) == body
    assert "accept-encoding" in reply.headers["vary"].lower()  # the upstream did compress
    assert "content-encoding" not in reply.headers and "content-length" not in reply.headers
    assert up.requests[0].headers["accept-encoding"] == "gzip"


BAD_GZIP = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
    b"Content-Length: 16\r\n\r\nthis is not gzip"
)


@pytest.mark.parametrize(("method", "attempts"), [("GET", 3), ("POST", 1)])
async def test_undecodable_body_is_an_upstream_failure(gateway, method: str, attempts: int) -> None:
    """A body its Content-Encoding cannot decode is the upstream's fault: counted against the
    instance like a malformed response, retried only when safe, then UNAVAILABLE — not INTERNAL."""
    async with RawServer(answer(BAD_GZIP)) as server:
        stub = await gateway({"svc": upstream_table([server.url], breaker={"failure_threshold": 3})})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Invoke(invoke("svc", method=method, body=b"{}"), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
        assert "svc" in err.value.details() and "decode" in err.value.details()
        assert len(server.requests) == attempts
        health = (await stub.GetServiceHealth(gateway_pb2.GetServiceHealthRequest(service_id="svc"))).health
        assert health.request_count == attempts and health.error_rate == 1.0
        assert health.consecutive_failures == attempts and "decode" in health.last_error
        expected = gateway_pb2.BREAKER_STATE_OPEN if attempts >= 3 else gateway_pb2.BREAKER_STATE_CLOSED
        assert health.instances[0].breaker_state == expected


def throttle_once(retry_after: bytes):
    """A raw handler: 429 with ``Retry-After: <retry_after>`` (bytes as sent), then 200s."""

    async def handler(request: bytes, writer: asyncio.StreamWriter) -> bool:
        first = handler.calls == 0  # type: ignore[attr-defined]
        handler.calls += 1  # type: ignore[attr-defined]
        head = (
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: " + retry_after if first else b"HTTP/1.1 200 OK"
        )
        writer.write(head + b"\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return True

    handler.calls = 0  # type: ignore[attr-defined]
    return handler


@pytest.mark.parametrize(
    "value",
    ["²".encode(), "٣".encode(), b"\xb2", b"1.5", b"-1", b"soon", b"Mon, 99 Foo 2020 00:00:00 GMT"],
    ids=[
        "superscript-two",
        "arabic-indic-three",
        "latin1-superscript",
        "fraction",
        "negative",
        "word",
        "bad-date",
    ],
)
async def test_garbled_retry_after_is_ignored(gateway, value: bytes) -> None:
    """Retry-After is ASCII digits or an HTTP date; anything else is ignored (plain backoff), not INTERNAL."""
    async with RawServer(throttle_once(value)) as server:
        stub = await gateway({"svc": upstream_table([server.url])})
        started = time.monotonic()
        reply = await stub.Invoke(invoke("svc"), timeout=10)
        assert reply.status_code == 200 and reply.attempts == 2
        assert len(server.requests) == 2
        assert time.monotonic() - started < 2.5  # not read as "٣" = 3 s: the backoff is 0.05 s at most


@pytest.mark.parametrize(
    "value",
    [b"9" * 400, b"60", b"Fri, 31 Dec 9999 23:59:59 GMT"],
    ids=["400-digits", "past-max-backoff", "year-9999"],
)
async def test_retry_after_past_max_backoff_returns_the_429(gateway, value: bytes) -> None:
    """A Retry-After longer than max_backoff_s is not slept through (even with no caller deadline):
    retrying sooner would break it, so the 429 comes back at once with the upstream's header."""
    async with RawServer(throttle_once(value)) as server:
        stub = await gateway({"svc": upstream_table([server.url])})  # max_backoff_s 0.05
        reply = await asyncio.wait_for(stub.Invoke(invoke("svc")), 5)  # no gRPC deadline
        assert reply.status_code == 429 and reply.attempts == 1
        assert reply.headers["retry-after"] == value.decode()
        assert len(server.requests) == 1
