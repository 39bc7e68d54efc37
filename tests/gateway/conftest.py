"""Gateway fixtures: stand-in upstreams, a gateway started in this loop, a client stub."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from services.core.config import MeshConfig, with_overrides
from services.core.local_redis import free_port
from services.core.server import ServiceHost
from tests.gateway.upstreams import FakeUpstream, ResettingServer
from wedsync.gateway.v1 import gateway_pb2, gateway_pb2_grpc


@pytest.fixture
async def make_upstream() -> AsyncIterator[Callable[..., Awaitable[FakeUpstream]]]:
    """Start stand-in upstreams (uvicorn on free loopback ports); stopped after the test."""
    started: list[FakeUpstream] = []

    async def make(**attrs: Any) -> FakeUpstream:
        up = await FakeUpstream(**attrs).start()
        started.append(up)
        return up

    yield make
    for up in started:
        await up.stop()


@pytest.fixture
async def resetting_server() -> AsyncIterator[ResettingServer]:
    server = await ResettingServer().start()
    yield server
    await server.stop()


def upstream_table(urls: list[str], **overrides: Any) -> dict[str, Any]:
    """An upstream config table with fast test defaults (no auth, quick retries)."""
    table: dict[str, Any] = {
        "base_urls": urls,
        "timeout_s": 5.0,
        "retry": {"attempts": 3, "backoff_s": 0.01, "max_backoff_s": 0.05},
        "breaker": {"failure_threshold": 3, "reset_timeout_s": 0.5, "half_open_max_calls": 1},
    }
    table.update(overrides)
    return table


@pytest.fixture
def gateway_config(mesh_config: MeshConfig) -> Callable[[dict[str, Any]], MeshConfig]:
    def build(upstreams: dict[str, Any]) -> MeshConfig:
        return with_overrides(
            mesh_config,
            {"gateway.upstreams": upstreams, "gateway.health_interval_s": 0.1, "gateway.port": free_port()},
        )

    return build


@pytest.fixture
async def gateway(
    start_service: Callable[..., Awaitable[ServiceHost]],
    gateway_config: Callable[[dict[str, Any]], MeshConfig],
) -> AsyncIterator[Callable[[dict[str, Any]], Awaitable[gateway_pb2_grpc.IntegrationGatewayServiceStub]]]:
    """Start a gateway with the given upstream tables; returns a stub connected to it."""
    channels: list[grpc.aio.Channel] = []

    async def start(upstreams: dict[str, Any]) -> gateway_pb2_grpc.IntegrationGatewayServiceStub:
        host = await start_service("gateway", gateway_config(upstreams))
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{host.port}")
        channels.append(channel)
        stub = gateway_pb2_grpc.IntegrationGatewayServiceStub(channel)
        stub.host = host  # type: ignore[attr-defined]
        return stub

    yield start
    for channel in channels:
        await channel.close()


def invoke(service_id: str, path: str = "/v1/thing", **fields: Any) -> gateway_pb2.InvokeRequest:
    return gateway_pb2.InvokeRequest(service_id=service_id, path=path, **fields)
