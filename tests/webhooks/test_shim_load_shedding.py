"""Past ``shim.max_in_flight`` webhooks wait their turn; past ``admission_wait_s``: 503 + Retry-After.

The shim runs as in production (``uvicorn_server``) over real loopback HTTP; its intake
backend is a gate that holds every webhook until released, so "in flight" is certain.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator

import httpx
import pytest

from services.core.config import ShimConfig
from services.core.local_redis import free_port
from services.webhooks.shim import raise_open_file_limit, uvicorn_server
from tests.waiting import wait_for
from tests.webhooks.shim_serving import InstantIntake, serving
from wedsync.webhooks.v1 import webhooks_pb2


class GatedIntake(InstantIntake):
    """Holds each ingest until ``release`` is set; counts how many are held."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.held = 0

    async def ingest(
        self, provider_id: str, headers: dict[str, str], body: bytes, remote_addr: str
    ) -> webhooks_pb2.IngestResponse:
        self.held += 1
        await self.release.wait()
        return webhooks_pb2.IngestResponse(event_id=f"whe_{self.held}")


@contextlib.asynccontextmanager
async def serving_at(config: ShimConfig, intake: GatedIntake) -> AsyncIterator[str]:
    async with serving(uvicorn_server(config, intake, host="127.0.0.1", port=config.port)):
        yield f"http://127.0.0.1:{config.port}"


def post(client: httpx.AsyncClient) -> asyncio.Task[httpx.Response]:
    headers = {"content-type": "application/json"}
    return asyncio.create_task(client.post("/webhooks/stripe", content=b"{}", headers=headers))


async def test_a_webhook_past_max_in_flight_waits_its_turn() -> None:
    """With every slot taken, the next webhook waits (not refused) and passes once one frees."""
    config = ShimConfig(port=free_port(), max_in_flight=2, admission_wait_s=60)
    intake = GatedIntake()
    async with serving_at(config, intake) as base, httpx.AsyncClient(base_url=base, timeout=90) as client:
        held = [post(client), post(client)]
        await wait_for(lambda: intake.held == 2, what="two webhooks held by intake")
        waiting = post(client)
        with pytest.raises(TimeoutError):  # it is not answered while the slots are taken ...
            await asyncio.wait_for(asyncio.shield(waiting), 0.5)
        assert intake.held == 2  # ... and has not reached intake
        intake.release.set()
        assert [r.status_code for r in await asyncio.gather(*held, waiting)] == [200, 200, 200]
        assert intake.held == 3


async def test_a_webhook_that_waits_too_long_gets_503_with_retry_after() -> None:
    """Past admission_wait_s without a free slot: 503 + Retry-After, intake never called."""
    config = ShimConfig(port=free_port(), max_in_flight=1, admission_wait_s=0.2)
    intake = GatedIntake()
    async with serving_at(config, intake) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        held = post(client)
        await wait_for(lambda: intake.held == 1, what="one webhook held by intake")
        shed = await post(client)
        assert shed.status_code == 503
        assert int(shed.headers["retry-after"]) >= 1
        assert "too many webhooks in flight" in shed.json()["error"]
        assert intake.held == 1
        intake.release.set()
        assert (await held).status_code == 200
        assert (await post(client)).status_code == 200  # the slot was given back


def test_open_file_limit_is_raised_to_fit_the_connections() -> None:
    """max_connections sockets plus headroom fit under the soft limit (as far as the hard one allows)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    wanted = 4096 + 1024 if hard == resource.RLIM_INFINITY else min(4096 + 1024, hard)
    assert raise_open_file_limit(4096) >= wanted
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= wanted
