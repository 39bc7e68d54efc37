"""The shim's request-head deadline over real sockets: slowloris and silent clients are cut off.

Each test runs the real shim (``uvicorn_server``) with a short ``header_timeout_s``. A client
that would need far longer than the generous bound to finish its head must see the connection
closed before that bound. Sleeps only pace the slow clients (that is the behaviour under
test); outcomes are awaited, never timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import ValidationError

from services.core.config import MeshConfig, ShimConfig
from services.core.local_redis import free_port
from services.core.server import ServiceHost
from services.core.settings_base import ServerTls
from services.core.tls import uvicorn_ssl
from services.webhooks.head_timeout import head_timeout_protocol
from services.webhooks.shim import create_app, uvicorn_server
from tests.tls_certs import make_pki
from tests.waiting import wait_for
from tests.webhooks.conftest import SUPPLIER_SECRET
from tests.webhooks.payloads import supplier_body, supplier_headers
from tests.webhooks.shim_serving import serving

Start = Callable[..., Awaitable[ServiceHost]]
HEAD_TIMEOUT_S = 1.5
CLOSED_WITHIN_S = 15.0  # generous: a dripped head below takes over 40 s to finish
DRIP_INTERVAL_S = 1.0  # a byte a second
SLOW_HEAD = b"POST /webhooks/supplier_platform HTTP/1.1\r\nhost: shim\r\ncontent-type: application/json\r\n"
NO_INTAKE = "127.0.0.1:1"  # these routes never reach intake


def shim_server(config: ShimConfig, http: str = "httptools", **ssl_options: Any) -> uvicorn.Server:
    """The shim as served in production; with ``http="h11"`` the same app on uvicorn's h11."""
    if http == "httptools":
        server: uvicorn.Server = uvicorn_server(config, host="127.0.0.1", port=config.port, ssl=ssl_options)
        return server
    protocol = head_timeout_protocol(config.header_timeout_s, "h11")
    app = create_app(config)
    return uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=config.port, http=protocol, log_config=None)
    )


async def drip(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Send ``data`` a byte per DRIP_INTERVAL_S until done or the server hangs up."""
    with contextlib.suppress(ConnectionError):
        for index in range(len(data)):
            writer.write(data[index : index + 1])
            await writer.drain()
            await asyncio.sleep(DRIP_INTERVAL_S)


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends before it closes; fails if it is still open after the bound."""
    try:
        return await asyncio.wait_for(reader.read(), CLOSED_WITHIN_S)
    except ConnectionResetError:  # closed while a dripped byte was unread: still closed
        return b""
    except TimeoutError:
        raise AssertionError(f"the shim still holds the connection after {CLOSED_WITHIN_S} s") from None


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CLOSED_WITHIN_S)
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    return int(lines[0].split()[1]), await reader.readexactly(length)


def signed_request(body: bytes) -> tuple[bytes, bytes]:
    """A signed supplier webhook on a kept-alive connection, as its head and its body."""
    headers = {
        "host": "shim",
        "content-type": "application/json",
        "content-length": str(len(body)),
        **supplier_headers(body, SUPPLIER_SECRET),
    }
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"POST /webhooks/supplier_platform HTTP/1.1\r\n{lines}\r\n".encode(), body


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_head_sent_a_byte_a_second_is_cut_off_with_408(http: str) -> None:
    """A slowloris client (a header byte a second) gets 408 and a closed connection, on both parsers."""
    config = ShimConfig(port=free_port(), intake_address=NO_INTAKE, header_timeout_s=HEAD_TIMEOUT_S)
    async with serving(shim_server(config, http)):
        reader, writer = await asyncio.open_connection("127.0.0.1", config.port)
        dripping = asyncio.create_task(drip(writer, SLOW_HEAD))
        try:
            reply = await read_until_closed(reader)
        finally:
            dripping.cancel()
            writer.close()
        assert reply.startswith(b"HTTP/1.1 408 "), reply
        assert b"connection: close" in reply.lower()
        assert b"request head not received within 1.5 s" in reply


async def test_silent_connection_is_closed_without_an_answer() -> None:
    """A client that connects and sends nothing is closed, with no unsolicited response."""
    config = ShimConfig(port=free_port(), intake_address=NO_INTAKE, header_timeout_s=HEAD_TIMEOUT_S)
    async with serving(shim_server(config)):
        reader, writer = await asyncio.open_connection("127.0.0.1", config.port)
        try:
            assert await read_until_closed(reader) == b""
        finally:
            writer.close()


async def test_keep_alive_connection_outlives_the_head_timeout(
    start_service: Start, wh_config: MeshConfig
) -> None:
    """Requests whose heads arrive promptly keep one connection alive past header_timeout_s,
    and a body trickled in after its head is governed by body_timeout_s, not the head timer."""
    host = await start_service("webhooks", wh_config)
    config = ShimConfig(port=free_port(), intake_address=f"127.0.0.1:{host.port}", header_timeout_s=1.0)
    async with serving(shim_server(config)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", config.port)
        try:
            for _ in range(3):  # each head prompt, the pauses between requests under the timeout
                head, body = signed_request(supplier_body()[1])
                writer.write(head)
                for start in range(0, len(body), len(body) // 3 + 1):  # the body over ~1.2 s
                    await asyncio.sleep(0.4)
                    writer.write(body[start : start + len(body) // 3 + 1])
                status, reply = await read_response(reader)
                assert status == 200, reply
                await asyncio.sleep(0.3)
        finally:
            writer.close()
        assert server.server_state.total_requests == 3  # all on the one connection


async def test_many_slow_clients_do_not_stop_a_normal_client(
    start_service: Start, wh_config: MeshConfig
) -> None:
    """With 200 slowloris and 50 silent connections open, a signed webhook still gets 200; then
    every slow connection is cut off."""
    host = await start_service("webhooks", wh_config)
    config = ShimConfig(port=free_port(), intake_address=f"127.0.0.1:{host.port}", header_timeout_s=3.0)
    async with serving(shim_server(config)) as server:
        slow = [await asyncio.open_connection("127.0.0.1", config.port) for _ in range(250)]
        dripping = [asyncio.create_task(drip(writer, SLOW_HEAD)) for _, writer in slow[:200]]
        try:
            await wait_for(lambda: len(server.server_state.connections) >= 250, what="slow clients connected")
            _, body = supplier_body()
            async with httpx.AsyncClient(timeout=10) as client:
                reply = await client.post(
                    f"http://127.0.0.1:{config.port}/webhooks/supplier_platform",
                    content=body,
                    headers={"content-type": "application/json", **supplier_headers(body, SUPPLIER_SECRET)},
                )
            assert reply.status_code == 200, reply.text
            assert reply.json()["status"] == "accepted"
            await asyncio.gather(*(read_until_closed(reader) for reader, _ in slow))
            await wait_for(lambda: not server.server_state.connections, what="slow connections dropped")
        finally:
            for task in dripping:
                task.cancel()
            for _, writer in slow:
                writer.close()


async def test_slow_head_over_tls_is_cut_off(tmp_path: Path) -> None:
    """With [shim.tls] the deadline runs after the handshake: a dripped head still gets 408."""
    pki = make_pki(tmp_path / "pki")
    tls = ServerTls(cert_file=str(pki.server_cert), key_file=str(pki.server_key))
    config = ShimConfig(port=free_port(), intake_address=NO_INTAKE, header_timeout_s=HEAD_TIMEOUT_S, tls=tls)
    trusted = ssl.create_default_context(cafile=str(pki.ca))
    async with serving(shim_server(config, **uvicorn_ssl(tls))):
        reader, writer = await asyncio.open_connection("127.0.0.1", config.port, ssl=trusted)
        dripping = asyncio.create_task(drip(writer, SLOW_HEAD))
        try:
            reply = await read_until_closed(reader)
        finally:
            dripping.cancel()
            writer.close()
        assert reply.startswith(b"HTTP/1.1 408 "), reply
        async with httpx.AsyncClient(verify=trusted, timeout=5) as client:
            assert (await client.get(f"https://127.0.0.1:{config.port}/healthz")).status_code == 200


def test_header_timeout_is_configurable_and_must_be_positive() -> None:
    """header_timeout_s defaults to 10 s; zero or negative is rejected at start."""
    assert ShimConfig().header_timeout_s == 10.0
    with pytest.raises(ValidationError, match="header_timeout_s"):
        ShimConfig(header_timeout_s=0)
