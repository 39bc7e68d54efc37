"""The live shim under hostile input: fuzzed requests, slow clients, and HTTPS with mutual TLS."""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from services.core.config import MeshConfig, ShimConfig
from services.core.local_redis import free_port
from services.core.server import ServiceHost
from services.core.settings_base import ServerTls
from services.core.tls import uvicorn_ssl
from services.webhooks.shim import GrpcBackend, uvicorn_server
from tests.tls_certs import make_pki
from tests.waiting import wait_for
from tests.webhooks.conftest import Shim

Start = Callable[..., Awaitable[ServiceHost]]
RunShim = Callable[..., Awaitable[Shim]]
FUZZ_CASES = 400
# Header bytes a client can send (visible ASCII and obs-text): what h11 lets on the wire.
LEGAL_BYTES = [*range(33, 127), *range(128, 256)]


def fuzz_request(rng: random.Random) -> tuple[str, str, list[tuple[bytes, bytes]], bytes]:
    method = rng.choice(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
    path = rng.choice(
        [
            "/webhooks/stripe",
            "/webhooks/supplier_platform",
            "/webhooks/email_provider",
            "/webhooks/" + "x" * rng.randint(0, 300),
            "/webhooks/%00%ff",
            "/webhooks/../../etc/passwd",
            "/webhooks/",
            "/" + "".join(rng.choice("abc/%.") for _ in range(rng.randint(0, 40))),
            "/metrics",
            "/readyz",
        ]
    )
    content_types = [
        b"application/json",
        b"text/plain",
        b"application/x-www-form-urlencoded",
        b"",
        b"application/json; charset=\xff",
    ]
    headers = [(b"content-type", rng.choice(content_types))]
    names = [
        b"stripe-signature",
        b"x-supplier-signature",
        b"webhook-id",
        b"webhook-timestamp",
        b"webhook-signature",
        b"x-request-id",
    ]
    for _ in range(rng.randint(0, 6)):
        name = rng.choice([*names, b"x-" + str(rng.random()).encode()])
        headers.append((name, bytes(rng.choice(LEGAL_BYTES) for _ in range(rng.randint(0, 200)))))
    body = rng.choice(
        [
            b"",
            b"{}",
            b'{"id": "evt_1", "type": "payment_intent.succeeded"}',
            bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096))),
            b"\xff\xfe\x00invalid utf-8",
            b"[" * 10000,
            b'{"a": ' * 2000,
        ]
    )
    return method, path, headers, body


async def test_fuzzed_requests_never_get_a_500_and_the_shim_stays_healthy(
    start_service: Start, run_shim: RunShim, wh_config: MeshConfig
) -> None:
    """A bounded fuzz run (fixed seed) of methods, paths, headers and bodies: never a 5xx but 503."""
    host = await start_service("webhooks", wh_config)
    shim = await run_shim(host)
    rng = random.Random(20261127)
    statuses: dict[int, int] = {}
    for _ in range(FUZZ_CASES):
        method, path, headers, body = fuzz_request(rng)
        reply = await shim.client.request(method, shim.url + path, headers=headers, content=body)
        statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
        assert reply.status_code < 500 or reply.status_code == 503, (
            method,
            path,
            reply.status_code,
            reply.text[:200],
        )
        assert "Traceback" not in reply.text
    assert (await shim.client.get(shim.url + "/healthz")).status_code == 200
    assert sum(statuses.values()) == FUZZ_CASES
    assert statuses.get(200, 0) + statuses.get(401, 0) + statuses.get(400, 0) > 0


async def test_slow_body_is_cut_off_with_408(start_service: Start, wh_config: MeshConfig) -> None:
    """A client that sends its body a byte at a time past body_timeout_s gets 408, not a held slot."""
    host = await start_service("webhooks", wh_config)
    port = free_port()
    config = ShimConfig(port=port, intake_address=f"127.0.0.1:{host.port}", body_timeout_s=0.5)
    server = uvicorn_server(config, host="127.0.0.1", port=port)
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started, what="shim started")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /webhooks/stripe HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 100\r\n\r\n{"
        )
        await writer.drain()
        for _ in range(3):  # the slow client: one byte per 0.3 s
            await asyncio.sleep(0.3)
            if writer.is_closing():
                break
            writer.write(b" ")
            await writer.drain()
        head = await asyncio.wait_for(reader.read(200), 10)
        writer.close()
        assert head.startswith(b"HTTP/1.1 408"), head
    finally:
        server.should_exit = True
        await task


async def test_https_with_mutual_tls(start_service: Start, wh_config: MeshConfig, tmp_path: Path) -> None:
    """[shim.tls] with a client CA: a client certificate is required; with one, /healthz answers."""
    pki = make_pki(tmp_path / "pki")
    host = await start_service("webhooks", wh_config)
    port = free_port()
    tls = ServerTls(cert_file=str(pki.server_cert), key_file=str(pki.server_key), client_ca_file=str(pki.ca))
    config = ShimConfig(port=port, intake_address=f"127.0.0.1:{host.port}", tls=tls)
    server = uvicorn_server(config, GrpcBackend(config), host="127.0.0.1", port=port, ssl=uvicorn_ssl(tls))
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started, what="https shim started")
        trusted = ssl.create_default_context(cafile=str(pki.ca))
        async with httpx.AsyncClient(verify=trusted, timeout=5) as anonymous:
            with pytest.raises(httpx.HTTPError):
                await anonymous.get(f"https://127.0.0.1:{port}/healthz")
        with_cert = ssl.create_default_context(cafile=str(pki.ca))
        with_cert.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        async with httpx.AsyncClient(verify=with_cert, timeout=5) as client:
            reply = await client.get(f"https://127.0.0.1:{port}/healthz")
        assert reply.status_code == 200
    finally:
        server.should_exit = True
        await task
