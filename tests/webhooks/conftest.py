"""Fixtures for the webhook tests: the example providers with test secrets, the real shim.

The shim is the real Starlette app served by uvicorn on a free loopback port in this event
loop; intake is the real webhooks process (``start_service``) on the session Redis.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from services.core.config import EXAMPLE_CONFIG, MeshConfig, ShimConfig, with_overrides
from services.core.local_redis import free_port
from services.core.server import ServiceHost
from services.webhooks.shim import uvicorn_server
from tests.waiting import wait_for

STRIPE_SECRET = "whsec_test_stripe_secret_one"
SUPPLIER_SECRET = "supplier-secret-one"
# The Standard Webhooks reference test key.
EMAIL_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRETS = {
    "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
    "SUPPLIER_WEBHOOK_SECRET": SUPPLIER_SECRET,
    "EMAIL_WEBHOOK_SECRET": EMAIL_SECRET,
}
FAST_RETRY = {"max_attempts": 3, "initial_backoff_s": 0.05, "multiplier": 1.0, "max_backoff_s": 0.1}


def example_providers() -> dict[str, Any]:
    providers: dict[str, Any] = tomllib.loads(EXAMPLE_CONFIG.read_text())["webhooks"]["providers"]
    return providers


def webhooks_config(base: MeshConfig, **extra: Any) -> MeshConfig:
    """``base`` with the example providers (fast retries for tests) plus dotted overrides."""
    providers = example_providers()
    for provider in providers.values():
        provider["retry"] = dict(FAST_RETRY)
    overrides: dict[str, Any] = {"webhooks.providers": providers, "webhooks.worker_lease_s": 2.0}
    overrides.update(extra)
    return with_overrides(base, overrides)


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return dict(SECRETS)


@pytest.fixture
def wh_config(mesh_config: MeshConfig, secrets_env: dict[str, str]) -> MeshConfig:
    return webhooks_config(mesh_config)


@dataclass
class Shim:
    url: str
    client: httpx.AsyncClient

    async def post(self, provider: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        merged = {"content-type": "application/json", **headers}
        return await self.client.post(f"{self.url}/webhooks/{provider}", content=body, headers=merged)


@pytest.fixture
async def run_shim() -> AsyncIterator[Callable[[ServiceHost], Awaitable[Shim]]]:
    """Serve the real shim (uvicorn, free port) in front of a started intake host."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None], httpx.AsyncClient]] = []

    async def start(host: ServiceHost, max_body_bytes: int = 1024 * 1024) -> Shim:
        port = free_port()
        config = ShimConfig(port=port, intake_address=f"127.0.0.1:{host.port}", max_body_bytes=max_body_bytes)
        server: uvicorn.Server = uvicorn_server(config, host="127.0.0.1", port=port)  # production settings
        task = asyncio.create_task(server.serve())
        await wait_for(lambda: server.started, what="shim started")
        client = httpx.AsyncClient(timeout=15.0)
        servers.append((server, task, client))
        return Shim(f"http://127.0.0.1:{port}", client)

    yield start
    for server, task, client in servers:
        await client.aclose()
        server.should_exit = True
        await task
