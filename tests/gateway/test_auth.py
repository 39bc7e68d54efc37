"""Upstream auth: each scheme, the shared OAuth2 token, and unconfigured upstreams."""

from __future__ import annotations

import asyncio
import base64

import grpc
import pydantic
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.core import deadlines
from services.core.breaker import State
from services.core.errors import DeadlineExceeded
from services.gateway import oauth2
from services.gateway.factory import build_upstream
from services.gateway.settings import UpstreamConfig
from services.gateway.upstream import Outgoing
from tests.gateway.conftest import invoke, upstream_table
from tests.waiting import wait_for
from wedsync.gateway.v1 import gateway_pb2


async def test_api_key_in_configured_header(make_upstream, gateway, monkeypatch) -> None:
    """API-key auth sends the key from the named variable in the configured header."""
    monkeypatch.setenv("TEST_API_KEY", "pm-key")
    up = await make_upstream(require={"x-postmark-server-token": "pm-key"})
    auth = {"type": "api_key", "api_key_env": "TEST_API_KEY", "header": "X-Postmark-Server-Token"}
    stub = await gateway({"svc": upstream_table([up.url], auth=auth)})
    reply = await stub.Invoke(invoke("svc", headers={"X-Postmark-Server-Token": "caller-forged"}), timeout=10)
    assert reply.status_code == 200
    assert up.requests[0].headers["x-postmark-server-token"] == "pm-key"


async def test_basic_auth(make_upstream, gateway, monkeypatch) -> None:
    """Basic auth sends user:password from the two named variables."""
    monkeypatch.setenv("TEST_USER", "wed")
    monkeypatch.setenv("TEST_PASS", "s3cret")
    expected = "Basic " + base64.b64encode(b"wed:s3cret").decode()
    up = await make_upstream(require={"authorization": expected})
    auth = {"type": "basic", "username_env": "TEST_USER", "password_env": "TEST_PASS"}
    stub = await gateway({"svc": upstream_table([up.url], auth=auth)})
    assert (await stub.Invoke(invoke("svc"), timeout=10)).status_code == 200


def oauth_table(url: str) -> dict:
    return upstream_table(
        [url],
        auth={
            "type": "oauth2_client_credentials",
            "client_id_env": "TEST_CLIENT_ID",
            "client_secret_env": "TEST_CLIENT_SECRET",
        },
    )


@pytest.fixture
def oauth_env(monkeypatch) -> None:
    monkeypatch.setenv("TEST_CLIENT_ID", "cid")
    monkeypatch.setenv("TEST_CLIENT_SECRET", "csecret")


async def test_oauth2_single_flight_with_cold_cache(make_upstream, gateway, oauth_env) -> None:
    """100 concurrent calls with a cold token cache cause exactly one token request."""
    up = await make_upstream(oauth_client=("cid", "csecret"), token_delay_s=0.2)
    stub = await gateway({"svc": oauth_table(up.url)})
    replies = await asyncio.gather(*(stub.Invoke(invoke("svc"), timeout=30) for _ in range(100)))
    assert all(r.status_code == 200 for r in replies)
    assert up.token_requests == 1
    assert len(up.requests) == 100


async def test_oauth2_token_shared_between_replicas(make_upstream, gateway, oauth_env) -> None:
    """Two gateway replicas on one Redis share one token: concurrent calls to both fetch it once."""
    up = await make_upstream(oauth_client=("cid", "csecret"), token_delay_s=0.2)
    a = await gateway({"svc": oauth_table(up.url)})
    b = await gateway({"svc": oauth_table(up.url)})
    calls = [stub.Invoke(invoke("svc"), timeout=30) for stub in (a, b) for _ in range(20)]
    replies = await asyncio.gather(*calls)
    assert all(r.status_code == 200 for r in replies)
    assert up.token_requests == 1


async def test_oauth2_token_refreshed_before_expiry(make_upstream, gateway, oauth_env) -> None:
    """A token with a 3 s life is renewed before it expires, so calls keep succeeding."""
    up = await make_upstream(oauth_client=("cid", "csecret"), token_ttl_s=3.0)
    stub = await gateway({"svc": oauth_table(up.url)})
    assert (await stub.Invoke(invoke("svc"), timeout=10)).status_code == 200
    await wait_for(lambda: up.token_requests == 1, what="first token")

    async def renewed() -> bool:
        reply = await stub.Invoke(invoke("svc"), timeout=10)
        assert reply.status_code == 200 and reply.attempts == 1  # never met an expired token
        return up.token_requests >= 2

    await wait_for(renewed, timeout=10, interval=0.1, what="token renewed")


async def test_oauth2_401_invalidates_token_and_retries_once(make_upstream, gateway, oauth_env) -> None:
    """When the upstream rejects the cached token (401), the gateway fetches a new one and retries once."""
    up = await make_upstream(oauth_client=("cid", "csecret"))
    stub = await gateway({"svc": oauth_table(up.url)})
    assert (await stub.Invoke(invoke("svc"), timeout=10)).status_code == 200
    up.valid_tokens.clear()  # the provider revoked it
    reply = await stub.Invoke(invoke("svc"), timeout=10)
    assert reply.status_code == 200
    assert reply.attempts == 2
    assert up.token_requests == 2


async def test_oauth2_persistent_401_is_returned_after_one_renewal(make_upstream, gateway, oauth_env) -> None:
    """A 401 that persists with a fresh token is returned as a result after exactly one renewal."""
    up = await make_upstream(oauth_client=("cid", "csecret"), require={"x-never": "sent"})
    stub = await gateway({"svc": oauth_table(up.url)})
    reply = await stub.Invoke(invoke("svc"), timeout=10)
    assert reply.status_code == 401
    assert reply.attempts == 2
    assert up.token_requests == 2


async def test_missing_credentials_make_service_unconfigured(make_upstream, gateway, monkeypatch) -> None:
    """A missing secret makes its upstream UNCONFIGURED (FAILED_PRECONDITION naming it); others work."""
    monkeypatch.delenv("TEST_MISSING_KEY", raising=False)
    monkeypatch.setenv("TEST_OTHER_KEY", "other-secret-value")
    up = await make_upstream()
    stub = await gateway(
        {
            "broken": upstream_table([up.url], auth={"type": "bearer", "token_env": "TEST_MISSING_KEY"}),
            "fine": upstream_table([up.url], auth={"type": "bearer", "token_env": "TEST_OTHER_KEY"}),
            "nourl": upstream_table([], base_urls_env="TEST_MISSING_URL"),
        }
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("broken"), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "TEST_MISSING_KEY" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("nourl"), timeout=10)
    assert "TEST_MISSING_URL" in err.value.details()
    assert (await stub.Invoke(invoke("fine"), timeout=10)).status_code == 200
    services = (await stub.ListServices(gateway_pb2.ListServicesRequest())).services
    by_id = {s.service_id: s for s in services}
    assert [s.service_id for s in services] == ["broken", "fine", "nourl"]
    assert by_id["broken"].status == gateway_pb2.SERVICE_STATUS_UNCONFIGURED
    assert by_id["fine"].status == gateway_pb2.SERVICE_STATUS_HEALTHY
    assert "other-secret-value" not in str(services)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{stub.host.port}")
    try:
        health = health_pb2_grpc.HealthStub(channel)

        async def status(name: str) -> int:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=2)
            return reply.status

        await wait_for(
            lambda: _is(status("fine"), health_pb2.HealthCheckResponse.SERVING), what="fine SERVING"
        )
        assert await status("broken") == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await status("nourl") == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await status("") == health_pb2.HealthCheckResponse.SERVING
    finally:
        await channel.close()


async def _is(value, expected) -> bool:
    return (await value) == expected


async def token_failure(stub, service_id: str = "svc") -> str:
    """Invoke, expect UNAVAILABLE, and return its message."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke(service_id), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
    return err.value.details() or ""


async def test_failing_token_endpoint_opens_the_breaker(
    make_upstream, gateway, oauth_env, monkeypatch
) -> None:
    """A token endpoint answering 503 is UNAVAILABLE naming it and counts as a breaker failure, so
    after the threshold calls fail fast without asking it again; once it heals, calls succeed.
    (Failures are not remembered here, so that each call asks the endpoint.)"""
    monkeypatch.setattr(oauth2, "FAILURE_TTL_S", 0.0)
    up = await make_upstream(oauth_client=("cid", "csecret"), token_status=503)
    stub = await gateway({"svc": oauth_table(up.url)})  # failure_threshold 3, reset_timeout 0.5 s
    for _ in range(3):
        message = await token_failure(stub)
        assert "OAuth2 token endpoint" in message and "503" in message
        assert "csecret" not in message
    health = (await stub.GetServiceHealth(gateway_pb2.GetServiceHealthRequest(service_id="svc"))).health
    assert health.instances[0].breaker_state == gateway_pb2.BREAKER_STATE_OPEN
    assert health.consecutive_failures == 3 and "token endpoint" in health.last_error
    message = await token_failure(stub)  # open: fails fast, still saying what opened it
    assert "circuit breaker open" in message and "token endpoint" in message
    assert up.token_requests == 3 and up.requests == []
    up.token_status = 0

    async def works() -> bool:
        return (await stub.Invoke(invoke("svc"), timeout=10)).status_code == 200

    await wait_for(works, timeout=10, interval=0.1, what="calls succeed once the token endpoint heals")


async def test_refused_client_credentials_name_the_variables(make_upstream, gateway, monkeypatch) -> None:
    """Client credentials the token endpoint refuses: UNAVAILABLE naming the variables to check
    and the OAuth2 error, never their values; each refusal counts against the breaker."""
    monkeypatch.setenv("TEST_CLIENT_ID", "cid")
    monkeypatch.setenv("TEST_CLIENT_SECRET", "wrong-secret-value")
    up = await make_upstream(oauth_client=("cid", "csecret"))
    stub = await gateway({"svc": oauth_table(up.url)})
    message = await token_failure(stub)
    assert "refused the client credentials" in message and "invalid_client" in message
    assert "$TEST_CLIENT_ID" in message and "$TEST_CLIENT_SECRET" in message
    assert "wrong-secret-value" not in message and "cid" not in message.replace("TEST_CLIENT_ID", "")
    health = (await stub.GetServiceHealth(gateway_pb2.GetServiceHealthRequest(service_id="svc"))).health
    assert health.consecutive_failures == 1 and up.requests == []


UNUSABLE = {
    "bearer-trailing-newline": ({"type": "bearer", "token_env": "TEST_BAD_SECRET"}, "sk_live_SECRET\n"),
    "bearer-crlf-injection": ({"type": "bearer", "token_env": "TEST_BAD_SECRET"}, "sk_SECRET\r\nX-Evil: 1"),
    "api-key-non-ascii": (
        {"type": "api_key", "api_key_env": "TEST_BAD_SECRET", "header": "X-Postmark-Server-Token"},
        "clé-SECRET",
    ),
    "api-key-trailing-space": ({"type": "api_key", "api_key_env": "TEST_BAD_SECRET"}, "SECRET "),
    "basic-password-escape": (
        {"type": "basic", "username_env": "TEST_USER", "password_env": "TEST_BAD_SECRET"},
        "pw\x1bSECRET",
    ),
    "oauth2-secret-delete": (
        {
            "type": "oauth2_client_credentials",
            "client_id_env": "TEST_USER",
            "client_secret_env": "TEST_BAD_SECRET",
        },
        "SECRET\x7f",
    ),
}


@pytest.mark.parametrize("auth,value", list(UNUSABLE.values()), ids=list(UNUSABLE))
async def test_unusable_credential_is_a_configuration_error(
    make_upstream, gateway, monkeypatch, auth: dict, value: str
) -> None:
    """A secret no request can carry (control characters, CR/LF, non-ASCII or surrounding spaces
    in a header) is caught at start: the upstream is UNCONFIGURED and Invoke is FAILED_PRECONDITION
    naming the variable and the problem, never the value — not INTERNAL on every call."""
    monkeypatch.setenv("TEST_USER", "wed")
    monkeypatch.setenv("TEST_BAD_SECRET", value)
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url], auth=auth)})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc"), timeout=10)
    message = err.value.details() or ""
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, message
    assert "$TEST_BAD_SECRET is unusable" in message
    assert "SECRET" not in message.replace("TEST_BAD_SECRET", "")
    services = (await stub.ListServices(gateway_pb2.ListServicesRequest())).services
    assert services[0].status == gateway_pb2.SERVICE_STATUS_UNCONFIGURED
    assert up.requests == [] and up.token_requests == 0


async def test_trailing_newline_is_pointed_out(make_upstream, gateway, monkeypatch) -> None:
    """The usual culprit, a newline at the end (from a secrets file), is named as such."""
    monkeypatch.setenv("TEST_BAD_SECRET", "sk_live_SECRET\n")
    up = await make_upstream()
    stub = await gateway(
        {"svc": upstream_table([up.url], auth={"type": "bearer", "token_env": "TEST_BAD_SECRET"})}
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc"), timeout=10)
    assert "control character 0x0a at the end" in (err.value.details() or "")


async def test_unusable_base_url_variable_is_named(make_upstream, gateway, monkeypatch) -> None:
    """A base-URL variable holding a control character makes only its upstream UNCONFIGURED
    (naming the variable) instead of failing start-up or blaming callers' paths."""
    up = await make_upstream()
    monkeypatch.setenv("TEST_BAD_URL", f"{up.url}/a\x1bb")
    stub = await gateway(
        {"bad": upstream_table([], base_urls_env="TEST_BAD_URL"), "fine": upstream_table([up.url])}
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("bad"), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "$TEST_BAD_URL is unusable" in (err.value.details() or "")
    assert (await stub.Invoke(invoke("fine"), timeout=10)).status_code == 200
    assert len(up.requests) == 1


@pytest.mark.parametrize(
    "value,why",
    [
        ("http://127.0.0.1:9/v1?api_key=SECRETKEY", "has a query"),
        ("http://127.0.0.1:9/v1#SECRETKEY", "has a fragment"),
        ("http://127.0.0.1:9,ftp://SECRETKEY@host", "entry 2 of 2 does not start with http"),
        ("http://user:SECRETKEY@127.0.0.1:9", "must not carry user:password@"),
        ("http://127.0.0.1:9/SECRET KEY", "whitespace at position 25"),
    ],
    ids=["query", "fragment", "scheme", "userinfo", "space"],
)
async def test_bad_base_url_variable_is_never_repeated(
    make_upstream, gateway, monkeypatch, caplog, value: str, why: str
) -> None:
    """A base-URL variable that is no base URL: the message (to callers and in the start-up log)
    gives the variable's name and what is wrong with it — never its value, which may carry a key."""
    monkeypatch.setenv("TEST_BAD_URL", value)
    stub = await gateway({"bad": upstream_table([], base_urls_env="TEST_BAD_URL")})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("bad"), timeout=10)
    message = err.value.details() or ""
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, message
    assert "$TEST_BAD_URL is unusable" in message and why in message
    assert "SECRET" not in message and "127.0.0.1:9" not in message
    logged = [str(record.__dict__) for record in caplog.records]
    assert any("TEST_BAD_URL" in line for line in logged)
    assert not any("SECRET" in line for line in logged)


async def test_token_request_cut_short_by_the_callers_deadline_is_not_counted(
    make_upstream, redis_client, oauth_env
) -> None:
    """A slow token endpoint and a caller with 0.3 s left: the token request's timeout was the
    caller's deadline, so the call is DEADLINE_EXCEEDED and nothing counts against the breaker
    (threshold 3), however often it happens; a caller with time gets its token.

    Driven through Upstream.call with the deadline set as the interceptor sets it: through
    gRPC, the server's own cancellation at the deadline races the token request's timeout."""
    up = await make_upstream(oauth_client=("cid", "csecret"), token_delay_s=1.0)
    config = UpstreamConfig.model_validate(oauth_table(up.url))  # timeout_s 5: the deadline is shorter
    upstream = await build_upstream("svc_deadline", config, redis=redis_client, on_transition=lambda *a: None)
    out = Outgoing("GET", "/v1/thing", [], {}, b"", "", "tester")
    try:
        for _ in range(4):
            token = deadlines.set_deadline(0.3)
            try:
                with pytest.raises(DeadlineExceeded):
                    await upstream.call(out)
            finally:
                deadlines.reset_deadline(token)
        assert up.token_requests == 4
        instance = upstream.instances[0]
        assert instance.breaker.state is State.CLOSED and instance.breaker.consecutive_failures == 0
        assert instance.stats.consecutive_failures == 0 and upstream.stats.last_error == ""
        assert (await upstream.call(out)).response.status_code == 200
    finally:
        await upstream.client.aclose()


async def test_burst_after_a_token_failure_makes_one_token_request(
    make_upstream, gateway, monkeypatch
) -> None:
    """30 concurrent calls with a secret the endpoint refuses: one token request; the callers that
    waited for it get its failure (UNAVAILABLE naming the variables), counted against the breaker
    once. Once the failure is no longer remembered (~1 s), the next call asks again."""
    monkeypatch.setenv("TEST_CLIENT_ID", "cid")
    monkeypatch.setenv("TEST_CLIENT_SECRET", "wrong-secret")
    up = await make_upstream(oauth_client=("cid", "csecret"), token_delay_s=0.2)
    stub = await gateway({"svc": oauth_table(up.url)})
    calls = [stub.Invoke(invoke("svc"), timeout=10) for _ in range(30)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        assert isinstance(result, grpc.aio.AioRpcError), result
        assert result.code() == grpc.StatusCode.UNAVAILABLE
        assert "refused the client credentials" in (result.details() or "")
    assert up.token_requests == 1
    health = (await stub.GetServiceHealth(gateway_pb2.GetServiceHealthRequest(service_id="svc"))).health
    assert health.consecutive_failures == 1 and health.breaker_state == gateway_pb2.BREAKER_STATE_CLOSED

    async def asked_again() -> bool:
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Invoke(invoke("svc"), timeout=10)
        return up.token_requests == 2

    await wait_for(
        asked_again, timeout=10, interval=0.1, what="a token request once the failure is forgotten"
    )


async def test_null_access_token_is_no_token(make_upstream, gateway, oauth_env) -> None:
    """`"access_token": null` is no token (it used to become the token "None"): UNAVAILABLE
    saying so, and the upstream is never called with it."""
    up = await make_upstream(oauth_client=("cid", "csecret"), token_answer={"access_token": None})
    stub = await gateway({"svc": oauth_table(up.url)})
    message = await token_failure(stub)
    assert "without an access_token" in message
    assert up.requests == [] and up.token_requests == 1


async def test_client_credentials_are_form_encoded_before_basic(make_upstream, gateway, monkeypatch) -> None:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined with ':' for HTTP Basic; a
    secret with '+', '%' and ':' reaches a conforming token endpoint intact."""
    client_id, secret = "wed:sync+id", "p+ss%2Fw:rd 100%"
    monkeypatch.setenv("TEST_CLIENT_ID", client_id)
    monkeypatch.setenv("TEST_CLIENT_SECRET", secret)
    up = await make_upstream(oauth_client=(client_id, secret))
    stub = await gateway({"svc": oauth_table(up.url)})
    assert (await stub.Invoke(invoke("svc"), timeout=10)).status_code == 200
    assert up.token_requests == 1


BASE64_SECRET = "q7/Xk+Zp0w==:x"  # '/', '+', '=' as in base64-style secrets (and a ':')


@pytest.mark.parametrize(
    "encoding,decodes,works",
    [
        (None, True, True),  # the default, "form": a conforming endpoint decodes
        ("form", False, False),  # the trade-off: an endpoint that does not decode refuses it
        ("raw", False, True),  # sent as is: the non-decoding endpoint accepts it
        ("raw", True, False),  # ... and a decoding one would read '+' as a space
    ],
    ids=["default-form-decoding", "form-non-decoding", "raw-non-decoding", "raw-decoding"],
)
async def test_client_auth_encoding(
    make_upstream, gateway, monkeypatch, encoding: str | None, decodes: bool, works: bool
) -> None:
    """auth.client_auth_encoding: "form" (default, RFC 6749 §2.3.1) form-urlencodes a base64-style
    secret before HTTP Basic; "raw" sends it as it is, for providers that do not decode. The
    wrong choice for the provider is a refusal of the client credentials (UNAVAILABLE)."""
    monkeypatch.setenv("TEST_CLIENT_ID", "wed-sync")
    monkeypatch.setenv("TEST_CLIENT_SECRET", BASE64_SECRET)
    up = await make_upstream(oauth_client=("wed-sync", BASE64_SECRET), oauth_decodes=decodes)
    table = oauth_table(up.url)
    if encoding is not None:
        table["auth"]["client_auth_encoding"] = encoding
    stub = await gateway({"svc": table})
    if works:
        assert (await stub.Invoke(invoke("svc"), timeout=10)).status_code == 200
    else:
        message = await token_failure(stub)
        assert "refused the client credentials: HTTP 401 (invalid_client)" in message
        assert BASE64_SECRET not in message
    assert up.token_requests == 1


async def test_raw_client_auth_refuses_a_client_id_with_a_colon(make_upstream, gateway, monkeypatch) -> None:
    """Unencoded, a ':' in the client id would split id and secret in the wrong place: the
    upstream is UNCONFIGURED naming the variable, no token request is made."""
    monkeypatch.setenv("TEST_CLIENT_ID", "wed:SECRETID")
    monkeypatch.setenv("TEST_CLIENT_SECRET", "csecret")
    up = await make_upstream(oauth_client=("wed:SECRETID", "csecret"), oauth_decodes=False)
    table = oauth_table(up.url)
    table["auth"]["client_auth_encoding"] = "raw"
    stub = await gateway({"svc": table})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc"), timeout=10)
    message = err.value.details() or ""
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, message
    assert "$TEST_CLIENT_ID is unusable" in message and "SECRETID" not in message
    assert up.token_requests == 0


def test_client_auth_encoding_is_form_or_raw() -> None:
    auth = {"type": "oauth2_client_credentials", "client_id_env": "A", "client_secret_env": "B"}
    assert UpstreamConfig(auth=auth).auth.client_auth_encoding == "form"
    with pytest.raises(pydantic.ValidationError):
        UpstreamConfig(auth={**auth, "client_auth_encoding": "base64"})


async def test_failed_renewal_keeps_using_the_current_token_until_it_expires(
    make_upstream, gateway, oauth_env
) -> None:
    """Renewal starts before expiry so the token endpoint may be down a while: calls keep
    succeeding with the current token (no breaker failure), and fail only once it has expired."""
    up = await make_upstream(oauth_client=("cid", "csecret"), token_ttl_s=4.0)  # renewed after 2 s
    stub = await gateway({"svc": oauth_table(up.url)})
    assert (await stub.Invoke(invoke("svc"), timeout=10)).status_code == 200
    first = up.requests[-1].headers["authorization"]
    up.token_status = 503

    async def renewal_failed_but_call_worked() -> bool:
        reply = await stub.Invoke(invoke("svc"), timeout=10)
        assert reply.status_code == 200 and up.requests[-1].headers["authorization"] == first
        return up.token_requests >= 2

    await wait_for(renewal_failed_but_call_worked, timeout=10, interval=0.1, what="a failed renewal")
    health = (await stub.GetServiceHealth(gateway_pb2.GetServiceHealthRequest(service_id="svc"))).health
    assert health.consecutive_failures == 0
    assert health.instances[0].breaker_state == gateway_pb2.BREAKER_STATE_CLOSED

    async def fails_once_expired() -> bool:
        try:
            await stub.Invoke(invoke("svc"), timeout=10)
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.UNAVAILABLE and "token endpoint" in (err.details() or "")
            return True
        return False

    await wait_for(fails_once_expired, timeout=10, interval=0.1, what="calls fail after expiry")
