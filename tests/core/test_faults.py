"""Services recover by themselves from network faults between them and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.core.config import RedisConfig, ShutdownConfig
from services.core.local_redis import RedisServer, free_port
from services.core.queue import DurableQueue
from services.core.redis_client import connect
from services.core.server import ServiceHost
from services.core.settings_base import GrpcServerConfig
from tests.faultproxy import FaultProxy
from tests.waiting import wait_for

# A fault proxy sits in front of one Redis port; a cluster client would bypass it on redirects.
pytestmark = pytest.mark.single_redis

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def proxy(redis_server: RedisServer, redis_url: str) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(redis_server.host, redis_server.port)
    await proxy.start()
    yield proxy
    await proxy.stop()


def client_via(proxy: FaultProxy) -> aioredis.Redis:
    return connect(RedisConfig(url=f"redis://127.0.0.1:{proxy.port}/0", socket_timeout_s=0.5))  # type: ignore[return-value]


async def status(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    return int(reply.status)


@pytest.mark.parametrize("fault", ["blackhole", "refuse", "latency"])
async def test_readiness_tracks_a_redis_fault_and_recovers_after_heal(proxy: FaultProxy, fault: str) -> None:
    """A partition, a dead Redis or latency past the timeout flips NOT_SERVING; healing restores it."""
    client = client_via(proxy)
    host = ServiceHost(
        [],
        GrpcServerConfig(host="127.0.0.1", port=free_port()),
        ShutdownConfig(drain_delay_s=0),
        redis=client,
    )
    await host.start()
    try:
        await wait_for(lambda: _equals(status(host.port), SERVING), what="SERVING through the proxy")
        if fault == "blackhole":
            proxy.blackhole()
        elif fault == "refuse":  # Redis gone: open connections reset, new ones refused
            proxy.refuse()
            await proxy.reset_all()
        else:  # slower than the client's 0.5 s socket timeout
            proxy.add_latency(1.0)
        await wait_for(
            lambda: _equals(status(host.port), NOT_SERVING), timeout=15, what="NOT_SERVING during the fault"
        )
        proxy.heal()
        await wait_for(lambda: _equals(status(host.port), SERVING), timeout=15, what="SERVING after heal")
    finally:
        await host.stop()
        await client.aclose()


async def test_queue_operations_resume_after_a_partition_heals(
    proxy: FaultProxy, redis_client: aioredis.Redis
) -> None:
    """Enqueue fails cleanly (Unavailable) during a partition and succeeds after heal, no restart."""
    from services.core.errors import Unavailable

    client = client_via(proxy)
    queue = DurableQueue(client, "faults")
    try:
        await queue.enqueue(b"before")
        proxy.blackhole()
        with pytest.raises(Unavailable):
            await queue.enqueue(b"during")
        proxy.heal()
        await proxy.reset_all()  # the timed-out connection is gone; the client must reconnect
        await wait_for(lambda: queue.enqueue(b"after"), timeout=15, what="enqueue after heal")
        stats = await DurableQueue(redis_client, "faults").stats()
        assert stats.depth >= 2  # "before" and "after"; "during" may or may not have landed
    finally:
        await client.aclose()


async def _equals(value: object, expected: int) -> bool:
    return await value == expected  # type: ignore[misc]
