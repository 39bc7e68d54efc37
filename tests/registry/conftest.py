"""Fixtures for the registry/router tests: fast timings, clients, in-process sinks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from services.core.config import MeshConfig, with_overrides
from services.registry.sdk import Handler, MeshInstance
from wedsync.registry.v1 import registry_pb2_grpc, router_pb2_grpc

FAST = {
    "registry.health_interval_s": 0.2,
    "registry.health_timeout_s": 0.5,
    "registry.reap_interval_s": 0.1,
    "registry.min_lease_ttl_s": 0.3,
    "registry.retry_initial_backoff_s": 0.05,
    "registry.retry_max_backoff_s": 0.2,
    "registry.queue_lease_s": 2.0,
    "registry.view_refresh_s": 0.2,
    "registry.deliver_timeout_s": 2.0,
}


@pytest.fixture
def fast_config(mesh_config: MeshConfig) -> MeshConfig:
    """The test config with short health intervals, backoffs and leases."""
    return with_overrides(mesh_config, FAST)


@pytest.fixture
async def registry_host(start_service: Callable[..., Awaitable[Any]], fast_config: MeshConfig) -> Any:
    """A running registry/router process (in this event loop)."""
    return await start_service("registry", fast_config)


@pytest.fixture
async def channel(registry_host: Any) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{registry_host.port}") as ch:
        yield ch


@pytest.fixture
def registry(channel: grpc.aio.Channel) -> registry_pb2_grpc.RegistryServiceStub:
    return registry_pb2_grpc.RegistryServiceStub(channel)


@pytest.fixture
def router(channel: grpc.aio.Channel) -> router_pb2_grpc.RouterServiceStub:
    return router_pb2_grpc.RouterServiceStub(channel)


@pytest.fixture
async def start_sink(registry_host: Any) -> AsyncIterator[Callable[..., Awaitable[MeshInstance]]]:
    """Start an in-process sink instance registered with the test registry."""
    started: list[MeshInstance] = []

    async def start(service: str, handler: Handler, instance_id: str, **kwargs: Any) -> MeshInstance:
        kwargs.setdefault("ttl", 2.0)
        sink = MeshInstance(
            service, handler, registry=f"127.0.0.1:{registry_host.port}", instance_id=instance_id, **kwargs
        )
        await sink.start()
        started.append(sink)
        return sink

    yield start
    for sink in started:
        await sink.stop(grace=0.5)
