"""Fixtures for the registry/router tests: fast timings, clients, in-process sinks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.core.config import MeshConfig, with_overrides
from services.registry.sdk import Handler, MeshInstance
from wedsync.registry.v1 import registry_pb2, registry_pb2_grpc, router_pb2_grpc, sink_pb2_grpc

SVC = "notification-service"

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


@contextlib.asynccontextmanager
async def raw_sink(
    registry_port: int, servicer: sink_pb2_grpc.MessageSinkServiceServicer, instance_id: str
) -> AsyncIterator[int]:
    """A bare MessageSink server (no SDK), SERVING on health and registered as SVC; yields its port."""
    server = grpc.aio.server()
    sink_pb2_grpc.add_MessageSinkServiceServicer_to_server(servicer, server)
    checker = health.aio.HealthServicer()
    await checker.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{registry_port}") as channel:
            await registry_pb2_grpc.RegistryServiceStub(channel).Register(
                registry_pb2.RegisterRequest(
                    instance=registry_pb2.ServiceInstance(
                        service_name=SVC, instance_id=instance_id, address=f"127.0.0.1:{port}"
                    )
                )
            )
        yield port
    finally:
        await server.stop(0)
