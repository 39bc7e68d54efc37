"""Past ``[shim] max_connections`` a request is answered 503 with Retry-After and a JSON error.

uvicorn's own answer at its ``limit_concurrency`` is a plain-text 503 without Retry-After;
the shim's protocol (services/webhooks/head_timeout.py) answers like every other 503 of the
shim. The shim runs as in production (``uvicorn_server``) on real loopback sockets; idle
connections fill the limit and the test waits until the server holds them all.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from prometheus_client import REGISTRY

from services.core.config import ShimConfig
from services.core.local_redis import free_port
from services.webhooks.shim import DEFAULT_RETRY_AFTER_S, uvicorn_server
from tests.waiting import wait_for
from tests.webhooks.shim_serving import InstantIntake, serving

LIMIT = 16  # the smallest max_connections the config allows
READ_WITHIN_S = 15.0


def refused_count() -> float:
    labels = {"route": "connection_limit", "status": "503"}
    return REGISTRY.get_sample_value("wedmesh_http_requests_total", labels) or 0.0


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_WITHIN_S)
    lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), READ_WITHIN_S)
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_request_past_max_connections_gets_503_with_retry_after(http: str) -> None:
    """With max_connections connections open, a request is answered 503 + Retry-After with a JSON
    error and the connection is closed; once connections are released, requests pass again."""
    config = ShimConfig(port=free_port(), max_connections=LIMIT, header_timeout_s=120)
    idle: list[asyncio.StreamWriter] = []
    async with serving(
        uvicorn_server(config, InstantIntake(), host="127.0.0.1", port=config.port, http=http)
    ) as server:
        try:
            for _ in range(LIMIT - 1):
                idle.append((await asyncio.open_connection("127.0.0.1", config.port))[1])
            await wait_for(
                lambda: len(server.server_state.connections) == LIMIT - 1, what="idle connections held"
            )
            before = refused_count()
            reader, writer = await asyncio.open_connection("127.0.0.1", config.port)
            idle.append(writer)
            body = b"{}"
            writer.write(
                b"POST /webhooks/stripe HTTP/1.1\r\nhost: shim\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            status, headers, answer = await read_answer(reader)
            assert status == 503
            assert headers["retry-after"] == str(DEFAULT_RETRY_AFTER_S)
            assert headers["content-type"] == "application/json"
            assert headers["connection"] == "close"
            assert "retry later" in json.loads(answer)["error"]
            assert await asyncio.wait_for(reader.read(), READ_WITHIN_S) == b""  # closed by the shim
            assert refused_count() == before + 1
        finally:
            for writer in idle:
                writer.close()
        await wait_for(lambda: not server.server_state.connections, what="connections released")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{config.port}") as client:
            reply = await client.post(
                "/webhooks/stripe", content=b"{}", headers={"content-type": "application/json"}
            )
        assert reply.status_code == 200 and reply.json() == {"event_id": "whe_1", "status": "accepted"}
