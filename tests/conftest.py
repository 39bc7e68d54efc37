"""Shared fixtures: a real ``redis-server`` per test session, flushed between tests.

No fakeredis and no shared server: the session's Redis runs on a free loopback port
with its data in a temporary folder, started by the same code that ``wedmesh up`` uses.
``MESH_TEST_REDIS=cluster`` makes it a local three-master Redis Cluster and
``MESH_TEST_REDIS_SERVER`` picks the binary (tests/redis_mode.py); tests marked
``single_redis`` (they kill, restart or proxy the one node) are deselected on a cluster.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.core.config import EXAMPLE_CONFIG, MeshConfig, load_config, with_overrides
from services.core.local_redis import RedisCluster, RedisServer, find_redis_server, free_port
from services.core.redis_client import AnyRedis, connect
from services.core.runner import ProcessRuntime
from services.core.server import ServiceHost
from tests import redis_mode
from tests.waiting import wait_for


def pytest_report_header(config: pytest.Config) -> str:
    binary = redis_mode.SERVER_BINARY or find_redis_server()
    return f"redis: {redis_mode.MODE}, {binary} ({redis_mode.server_version(binary)})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a cluster, leave out the tests that need exactly one Redis node (reported as deselected)."""
    if not redis_mode.CLUSTER:
        return
    single = [item for item in items if item.get_closest_marker(redis_mode.SINGLE_REDIS_MARKER)]
    if single:
        config.hook.pytest_deselected(items=single)
        items[:] = [item for item in items if not item.get_closest_marker(redis_mode.SINGLE_REDIS_MARKER)]


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment() -> Iterator[None]:
    """Keep a developer's REDIS_URL / WEDMESH_* out of the tests (never touch :6379)."""
    saved = {k: v for k, v in os.environ.items() if k == "REDIS_URL" or k.startswith("WEDMESH_")}
    for key in saved:
        del os.environ[key]
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def redis_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer | RedisCluster]:
    """One private Redis for the whole session: a server (AOF on, as in production) or a cluster."""
    backend = redis_mode.start_backend(tmp_path_factory.mktemp("redis"))
    yield backend
    backend.stop()


@pytest.fixture(scope="session")
def redis_server(redis_backend: RedisServer | RedisCluster) -> RedisServer:
    """The session Redis as one node, for tests that kill, restart or proxy it."""
    if not isinstance(redis_backend, RedisServer):
        raise RuntimeError("this test needs a single Redis node: mark it @pytest.mark.single_redis")
    return redis_backend


@pytest.fixture
def redis_url(redis_backend: RedisServer | RedisCluster) -> str:
    """URL of the session Redis (a seed node on a cluster), emptied before each test."""
    if isinstance(redis_backend, RedisCluster):
        redis_backend.flushall()
        return redis_backend.url
    if redis_backend.process.poll() is not None:  # a fault test may have killed it
        redis_backend.restart()
    client = redis.Redis.from_url(redis_backend.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_backend.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[AnyRedis]:
    """An asyncio client on the emptied session Redis (a RedisCluster client on a cluster)."""
    client = redis_mode.async_client(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def mesh_config(redis_url: str) -> MeshConfig:
    """The example config on free loopback ports, pointed at the session Redis."""
    base = load_config(EXAMPLE_CONFIG, environ={})
    return with_overrides(
        base,
        {
            "redis.url": redis_url,
            "redis.cluster": redis_mode.CLUSTER,
            "registry.port": free_port(),
            "gateway.port": free_port(),
            "webhooks.port": free_port(),
            "registry.metrics_port": 0,
            "gateway.metrics_port": 0,
            "webhooks.metrics_port": 0,
            "shim.port": free_port(),
            "shutdown.drain_delay_s": 0.2,
            "shutdown.grace_s": 2.0,
        },
    )


@pytest.fixture
async def start_service(
    mesh_config: MeshConfig,
) -> AsyncIterator[Callable[..., Awaitable[ServiceHost]]]:
    """Start a service process (host + background tasks) in this event loop; stopped after."""
    runtimes: list[ProcessRuntime] = []
    clients: list[Any] = []

    async def start(process: str, config: MeshConfig | None = None) -> ServiceHost:
        cfg = config or mesh_config
        redis = connect(cfg.redis)
        clients.append(redis)
        runtime = ProcessRuntime(process, cfg, redis)
        await runtime.start()
        runtimes.append(runtime)
        await wait_for(lambda: host_serving(runtime.host), what=f"{process} SERVING")
        return runtime.host

    yield start
    for runtime in runtimes:
        await runtime.stop()
    for client in clients:
        await client.aclose()


async def host_serving(host: ServiceHost) -> bool:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=1
        )
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
