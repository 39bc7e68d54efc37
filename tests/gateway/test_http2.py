"""HTTP/2 to upstreams that offer it (TLS + ALPN), HTTP/1.1 otherwise; a private CA via ca_file."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.core.local_redis import free_port
from tests.gateway.conftest import invoke, upstream_table
from tests.waiting import wait_for
from wedsync.gateway.v1 import gateway_pb2

hypercorn_asyncio = pytest.importorskip(
    "hypercorn.asyncio", reason="hypercorn (dev dependency) serves the h2 upstream"
)
serve, Config = hypercorn_asyncio.serve, pytest.importorskip("hypercorn.config").Config


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@contextlib.asynccontextmanager
async def serve_tls(directory: Path, app: Any) -> AsyncIterator[tuple[str, Path]]:
    """Serve ``app`` with hypercorn on loopback, TLS with h2 and http/1.1 (ALPN); (URL, CA file)."""
    cert_file, key_file = _self_signed(directory)
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile, config.keyfile = str(cert_file), str(key_file)
    config.alpn_protocols = ["h2", "http/1.1"]
    config.loglevel = "WARNING"
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    try:
        yield f"https://127.0.0.1:{port}", cert_file
    finally:
        stop.set()
        # A stream left stuck on flow control ends in errors at shutdown: not what is tested.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def tls_upstream(tmp_path: Path) -> AsyncIterator[tuple[str, Path, list[str]]]:
    """A hypercorn server on loopback speaking TLS with h2 and http/1.1 (ALPN); records versions."""
    versions: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        versions.append(scope["http_version"])
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    async with serve_tls(tmp_path, app) as (url, ca):
        yield url, ca, versions


async def test_http2_negotiated_with_private_ca(tls_upstream, gateway) -> None:
    """With http2 on (the default) and the upstream's CA in ca_file, calls go over HTTP/2."""
    pytest.importorskip("h2", reason="HTTP/2 needs httpx[http2] (the h2 package)")
    url, ca, versions = tls_upstream
    stub = await gateway({"svc": upstream_table([url], ca_file=str(ca))})
    for _ in range(3):
        reply = await stub.Invoke(invoke("svc"), timeout=10)
        assert reply.status_code == 200 and reply.body == b"ok"
    assert versions == ["2", "2", "2"]


async def test_http1_when_http2_is_off(tls_upstream, gateway) -> None:
    """With http2 = false the same upstream is spoken to in HTTP/1.1."""
    url, ca, versions = tls_upstream
    stub = await gateway({"svc": upstream_table([url], ca_file=str(ca), http2=False)})
    assert (await stub.Invoke(invoke("svc"), timeout=10)).status_code == 200
    assert versions == ["1.1"]


async def test_untrusted_certificate_is_a_connection_failure(tls_upstream, gateway) -> None:
    """Without the CA the TLS handshake fails: UNAVAILABLE, nothing reaches the app."""
    url, _, versions = tls_upstream
    stub = await gateway({"svc": upstream_table([url])})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc"), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert versions == []


@pytest.mark.parametrize(
    "fields",
    [
        {"headers": {"X-Note": "a\x00b"}},
        {"headers": {"X-Note": "café"}},
        {"method": "PUT", "idempotency_key": "k\r\n1"},
        {"method": "PUT", "idempotency_key": "k\x00"},
    ],
    ids=["header-nul", "header-non-ascii", "key-crlf", "key-nul"],
)
async def test_bad_caller_header_never_opens_the_http2_breaker(
    tls_upstream, gateway, fields: dict[str, Any]
) -> None:
    """On httpx's h2 pool a bad header would be a LocalProtocolError (a transport failure, retried
    and counted): it is INVALID_ARGUMENT before any attempt, and the shared breaker stays closed."""
    pytest.importorskip("h2", reason="HTTP/2 needs httpx[http2] (the h2 package)")
    url, ca, versions = tls_upstream
    stub = await gateway({"svc": upstream_table([url], ca_file=str(ca), breaker={"failure_threshold": 2})})
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Invoke(invoke("svc", **fields), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert versions == []
    health = (await stub.GetServiceHealth(gateway_pb2.GetServiceHealthRequest(service_id="svc"))).health
    assert health.breaker_state == gateway_pb2.BREAKER_STATE_CLOSED and health.request_count == 0
    assert (await stub.Invoke(invoke("svc"), timeout=10)).status_code == 200  # others still get through
    assert versions == ["2"]


BIG = 40 * 1024 * 1024  # past the 16 MiB receive window httpcore gives a connection (and a stream)


async def test_oversized_http2_answer_leaves_the_shared_connection_usable(tmp_path: Path, gateway) -> None:
    """An answer past max_response_bytes on a multiplexed HTTP/2 connection: its stream is reset,
    so the upstream stops sending and the connection's receive window is given back. Without
    that, the 40 MiB the upstream goes on sending fill the connection's window, never
    acknowledged, and every later answer on the connection stalls until its read timeout. An
    exchange already in flight on the same connection completes; later calls are answered at once."""
    pytest.importorskip("h2", reason="HTTP/2 needs httpx[http2] (the h2 package)")
    release = asyncio.Event()
    seen: list[tuple[str, str, Any]] = []  # (path, http version, client address: one per connection)
    big_done = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append((scope["path"], scope["http_version"], tuple(scope["client"])))
        if scope["path"] == "/big":
            await _send_big(send, big_done, [])
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/slow":
            await release.wait()
        await send({"type": "http.response.body", "body": b"ok"})

    async with serve_tls(tmp_path, app) as (url, ca):
        table = upstream_table(
            [url],
            ca_file=str(ca),
            timeout_s=3.0,
            max_response_bytes=256 * 1024,
            retry={"attempts": 1},
            breaker={"failure_threshold": 100},
        )
        stub = await gateway({"svc": table})
        slow = asyncio.ensure_future(stub.Invoke(invoke("svc", "/slow"), timeout=20))
        await wait_for(lambda: any(path == "/slow" for path, _, _ in seen), what="the slow exchange to start")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Invoke(invoke("svc", "/big"), timeout=20)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
        # Until the upstream gives up the big answer — at once when reset; never otherwise (it
        # fills the 16 MiB window, then waits) — and three times more, calls are answered quickly.
        await _answered_quickly_until(stub, big_done, seen, at_least=5)
        release.set()
        reply = await slow
        assert reply.status_code == 200 and reply.body == b"ok"
    assert {version for _, version, _ in seen} == {"2"}
    assert len({client for _, _, client in seen}) == 1  # all on one connection, never replaced


async def _send_big(send: Any, done: asyncio.Event, headers: list[tuple[bytes, bytes]]) -> None:
    """An answer of :data:`BIG` bytes (garbage), until the client resets the stream."""
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    chunk = b"x" * 65536
    try:
        for _ in range(BIG // len(chunk)):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except Exception:  # the client reset the stream
        pass
    finally:
        done.set()


async def _answered_quickly_until(stub: Any, done: asyncio.Event, seen: list[Any], at_least: int) -> None:
    """Calls to /fast are answered at once (not after the 3 s read timeout of a connection
    whose window is spent) until the upstream gave up its big answer and ``at_least``
    requests were seen."""
    give_up = time.monotonic() + 10
    for _ in range(100):
        started = time.monotonic()
        reply = await stub.Invoke(invoke("svc", "/fast"), timeout=20)
        assert reply.status_code == 200 and reply.body == b"ok"
        assert time.monotonic() - started < 2.0  # not the 3 s read timeout of a stalled connection
        if done.is_set() and len(seen) >= at_least:
            return
        assert time.monotonic() < give_up, "the upstream never stopped sending the big answer"


async def test_undecodable_http2_answer_leaves_the_shared_connection_usable(tmp_path: Path, gateway) -> None:
    """An answer that says gzip and is not stops the read at its first bytes (UNAVAILABLE, the
    upstream's fault); the rest — far past the 16 MiB window — is abandoned with a stream reset,
    so later calls on the same HTTP/2 connection are answered at once."""
    pytest.importorskip("h2", reason="HTTP/2 needs httpx[http2] (the h2 package)")
    seen: list[tuple[str, str, Any]] = []
    bad_done = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append((scope["path"], scope["http_version"], tuple(scope["client"])))
        if scope["path"] == "/bad":
            await _send_big(send, bad_done, [(b"content-encoding", b"gzip")])
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async with serve_tls(tmp_path, app) as (url, ca):
        table = upstream_table(
            [url], ca_file=str(ca), timeout_s=3.0, retry={"attempts": 1}, breaker={"failure_threshold": 100}
        )
        stub = await gateway({"svc": table})
        assert (await stub.Invoke(invoke("svc", "/fast"), timeout=20)).status_code == 200  # the connection
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Invoke(invoke("svc", "/bad"), timeout=20)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
        assert "does not decode" in (err.value.details() or "")
        await _answered_quickly_until(stub, bad_done, seen, 5)
    assert {version for _, version, _ in seen} == {"2"}
    assert len({client for _, _, client in seen}) == 1  # all on one connection, never replaced


async def test_oversized_token_answer_leaves_the_shared_http2_connection_usable(
    tmp_path: Path, gateway, monkeypatch
) -> None:
    """The OAuth2 token client shares the upstream's pool, and by default its token URL is on the
    same base URL: the same HTTP/2 connection. A token answer past the 64 KiB read is a token
    endpoint failure (UNAVAILABLE) and its stream is reset, so the next token request and the
    calls after it, on that connection, are answered at once."""
    pytest.importorskip("h2", reason="HTTP/2 needs httpx[http2] (the h2 package)")
    from services.gateway import oauth2

    monkeypatch.setattr(oauth2, "FAILURE_TTL_S", 0.0)  # the next call asks the endpoint again
    monkeypatch.setenv("TEST_CLIENT_ID", "cid")
    monkeypatch.setenv("TEST_CLIENT_SECRET", "csecret")
    seen: list[tuple[str, str, Any]] = []
    big_done = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append((scope["path"], scope["http_version"], tuple(scope["client"])))
        if scope["path"] == "/oauth/token":
            while (await receive()).get("more_body"):
                pass
            if not big_done.is_set() and sum(path == "/oauth/token" for path, _, _ in seen) == 1:
                await _send_big(send, big_done, [(b"content-type", b"application/json")])
                return
            token = b'{"access_token": "tok", "token_type": "bearer", "expires_in": 3600}'
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": token})
            return
        headers = dict(scope["headers"])
        ok = headers.get(b"authorization") == b"Bearer tok"
        await send({"type": "http.response.start", "status": 200 if ok else 401, "headers": []})
        await send({"type": "http.response.body", "body": b"ok" if ok else b"no token"})

    async with serve_tls(tmp_path, app) as (url, ca):
        table = upstream_table(
            [url],
            ca_file=str(ca),
            timeout_s=3.0,
            retry={"attempts": 1},
            breaker={"failure_threshold": 100},
            auth={
                "type": "oauth2_client_credentials",
                "client_id_env": "TEST_CLIENT_ID",
                "client_secret_env": "TEST_CLIENT_SECRET",
            },
        )
        stub = await gateway({"svc": table})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Invoke(invoke("svc", "/fast"), timeout=20)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
        assert "OAuth2 token endpoint" in (err.value.details() or "")
        await _answered_quickly_until(stub, big_done, seen, 5)
    assert [path for path, _, _ in seen[:2]] == ["/oauth/token", "/oauth/token"]
    assert {version for _, version, _ in seen} == {"2"}
    assert len({client for _, _, client in seen}) == 1  # token and calls on one connection, never replaced
