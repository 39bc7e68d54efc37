"""Caller-supplied headers, idempotency keys, paths and queries the gateway refuses up front.

Each refusal is INVALID_ARGUMENT naming the field, the upstream never sees a request, and
the instance's breaker is untouched: a caller's mistake must not open (or close) a breaker
every other caller shares.
"""

from __future__ import annotations

import re
from typing import Any

import grpc
import pytest

from services.gateway import hygiene
from tests.gateway.conftest import invoke, upstream_table
from wedsync.gateway.v1 import gateway_pb2

BAD_VALUES = {
    "non-ascii": "café",
    "nul": "a\x00b",
    "crlf": "a\r\nX-Injected: 1",
    "control": "a\x1bb",
    "delete": "a\x7fb",
}


async def get_health(stub: Any) -> gateway_pb2.ServiceHealth:
    reply = await stub.GetServiceHealth(gateway_pb2.GetServiceHealthRequest(service_id="svc"), timeout=5)
    return reply.health


async def refused(stub: Any, request: gateway_pb2.InvokeRequest) -> str:
    """Invoke ``request``, expect INVALID_ARGUMENT, and return its message."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    return err.value.details() or ""


async def assert_untouched(stub: Any) -> None:
    """No attempt was recorded and every breaker is still closed."""
    health = await get_health(stub)
    assert health.request_count == 0
    assert health.breaker_state == gateway_pb2.BREAKER_STATE_CLOSED
    assert [i.breaker_state for i in health.instances] == [gateway_pb2.BREAKER_STATE_CLOSED]


@pytest.mark.parametrize("value", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
async def test_bad_header_value_is_refused_before_the_upstream(make_upstream, gateway, value: str) -> None:
    """Non-ASCII, NUL, CR/LF and other control characters in a header value: INVALID_ARGUMENT naming it."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url], breaker={"failure_threshold": 2})})
    for _ in range(3):  # more than the threshold: a counted failure would open the breaker
        message = await refused(stub, invoke("svc", headers={"X-Note": value}))
        assert "x-note" in message and "header" in message
    assert up.requests == []
    await assert_untouched(stub)


@pytest.mark.parametrize("value", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
async def test_bad_idempotency_key_is_refused_before_the_upstream(make_upstream, gateway, value: str) -> None:
    """The idempotency key (sent as a header) is held to the same rules: INVALID_ARGUMENT naming it."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url], breaker={"failure_threshold": 2})})
    for _ in range(3):
        message = await refused(stub, invoke("svc", method="POST", body=b"{}", idempotency_key=value))
        assert "idempotency_key" in message
    assert up.requests == []
    await assert_untouched(stub)


@pytest.mark.parametrize("name", ["X-Note\n", "X Note", "X-Café", ":authority", "", "X" * 129])
async def test_bad_header_name_is_refused_before_the_upstream(make_upstream, gateway, name: str) -> None:
    """Names are RFC 9110 tokens — also no trailing newline, which a `$`-anchored pattern lets by."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url], breaker={"failure_threshold": 2})})
    for _ in range(3):
        assert "header name" in await refused(stub, invoke("svc", headers={name: "v"}))
    assert up.requests == []
    await assert_untouched(stub)


async def test_idempotency_key_length_is_capped(make_upstream, gateway) -> None:
    """255 characters are sent; 256 are refused with the limit in the message."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url])})
    key = "k" * hygiene.MAX_IDEMPOTENCY_KEY_CHARS
    reply = await stub.Invoke(invoke("svc", method="POST", idempotency_key=key), timeout=10)
    assert reply.status_code == 200 and up.requests[0].headers["idempotency-key"] == key
    message = await refused(stub, invoke("svc", method="POST", idempotency_key=key + "k"))
    assert "idempotency_key" in message and str(hygiene.MAX_IDEMPOTENCY_KEY_CHARS) in message
    assert len(up.requests) == 1


async def test_secret_header_value_is_not_echoed(make_upstream, gateway) -> None:
    """The refusal says where the bad character is, never the value (it may be a credential)."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url])})
    message = await refused(stub, invoke("svc", headers={"X-Api-Secret": "sk_live_ABCDEFG\x00"}))
    assert "sk_live" not in message and "ABCDEFG" not in message
    assert "position 15" in message


async def test_header_value_whitespace_and_visible_ascii_are_forwarded(make_upstream, gateway) -> None:
    """Visible ASCII with inner spaces/tabs goes through; surrounding whitespace is not part of a value."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url])})
    value = 'a\tb c ~!"#$%&()*+,-./:;<=>?@[\\]^_`{|}'
    reply = await stub.Invoke(invoke("svc", headers={"X-Ok": f"  {value} \t", "X-Empty": ""}), timeout=10)
    assert reply.status_code == 200
    assert up.requests[0].headers["x-ok"] == value
    assert up.requests[0].headers["x-empty"] == ""


async def test_malformed_request_does_not_reset_the_failure_streak(make_upstream, gateway) -> None:
    """A refused request between upstream failures is not a breaker success: the streak still opens it."""
    up = await make_upstream(fail_first=100, fail_status=500)
    stub = await gateway({"svc": upstream_table([up.url], breaker={"failure_threshold": 3})})
    for _ in range(2):
        assert (await stub.Invoke(invoke("svc"), timeout=10)).status_code == 500
    await refused(stub, invoke("svc", headers={"X-Note": "a\x00b"}))
    await refused(stub, invoke("svc", method="POST", idempotency_key="café"))
    assert (await stub.Invoke(invoke("svc"), timeout=10)).status_code == 500
    health = await get_health(stub)
    assert health.instances[0].breaker_state == gateway_pb2.BREAKER_STATE_OPEN
    assert len(up.requests) == 3


async def test_oversize_path_is_refused_and_not_cached(make_upstream, gateway) -> None:
    """A path over the limit (even past httpx's 64 KiB URL limit) is INVALID_ARGUMENT and not kept."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url])})
    limit = hygiene.MAX_PATH_CHARS
    at_limit = "/" + "a" * (limit - 1)
    reply = await stub.Invoke(invoke("svc", at_limit), timeout=10)
    assert reply.status_code == 200 and up.requests[0].path == at_limit
    for path in ("/" + "a" * limit, "/" + "b" * 70_000, "/" + "é" * 3000):  # é is 6 characters encoded
        message = await refused(stub, invoke("svc", path))
        assert "path" in message and str(limit) in message
        assert len(message) < 500  # the path itself is not echoed back
        assert path not in hygiene._checked_paths
    assert len(up.requests) == 1
    assert all(len(p) <= hygiene.MAX_CACHED_PATH_CHARS for p in hygiene._checked_paths)
    await get_health(stub)  # still serving


async def test_oversize_query_is_refused(make_upstream, gateway) -> None:
    """A query string over the limit once percent-encoded is INVALID_ARGUMENT naming `query`."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url])})
    limit = hygiene.MAX_QUERY_CHARS
    fits = [gateway_pb2.QueryParameter(key="q", value="v" * (limit - 2))]
    reply = await stub.Invoke(invoke("svc", query=fits), timeout=10)
    assert reply.status_code == 200 and len(up.requests[0].query) == limit
    for value in ("v" * (limit - 1), "w" * 70_000, "é" * 1500):  # é is 6 characters encoded
        message = await refused(stub, invoke("svc", query=[gateway_pb2.QueryParameter(key="q", value=value)]))
        assert "query" in message and str(limit) in message
    many = [gateway_pb2.QueryParameter(key="k", value="v")] * 3000  # "k=v&" x 3000
    assert "query" in await refused(stub, invoke("svc", query=many))
    assert len(up.requests) == 1
    await assert_untouched_breaker(stub)


async def assert_untouched_breaker(stub: Any) -> None:
    health = await get_health(stub)
    assert health.breaker_state == gateway_pb2.BREAKER_STATE_CLOSED and health.consecutive_failures == 0


async def test_dropped_headers_are_not_judged(make_upstream, gateway) -> None:
    """Headers the gateway never forwards (cookies, credentials, hop-by-hop) may hold what a
    browser sends, UTF-8 included: the call goes through and none of them is sent."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url])})
    headers = {"Cookie": "name=café", "Authorization": "Bearer \x00", "Keep-Alive": "x" * 10_000, "X-Ok": "1"}
    reply = await stub.Invoke(invoke("svc", headers=headers), timeout=10)
    assert reply.status_code == 200
    sent = {k.lower() for k in up.requests[0].headers}
    assert "x-ok" in sent and not {"cookie", "keep-alive"} & sent
    assert up.requests[0].headers.get("authorization", "") != "Bearer \x00"


URL_CHAR = re.compile(r"[^\s\x00-\x1f\x7f]")


@pytest.mark.parametrize(
    "value,allowed,expected",
    [
        ("visible ascii", hygiene.FIELD_CHAR, None),
        ("a\x00b", hygiene.FIELD_CHAR, "control character 0x00 at position 1"),
        ("key\n", hygiene.FIELD_CHAR, "control character 0x0a at the end (position 3)"),
        ("caf\u00e9!", hygiene.FIELD_CHAR, "a non-ASCII character at position 3"),
        ("a\u00a0b", hygiene.NOT_CONTROL, None),
        ("http://h/a b", URL_CHAR, "whitespace at position 10"),
        ("http://h/a\u00a0b", URL_CHAR, "a non-ASCII whitespace character at position 10"),
        ("x\x7f", hygiene.NOT_CONTROL, "control character 0x7f at the end (position 1)"),
    ],
)
def test_first_bad_char_names_kind_and_position_only(value: str, allowed: Any, expected: str | None) -> None:
    """The one helper behind every refusal that points at a character (caller headers and keys,
    secrets, base URLs): kind and position, never the character or the value."""
    assert hygiene.first_bad_char(value, allowed) == expected
