"""Shared fixtures: a real ``redis-server`` per test session, flushed between tests.

No fakeredis and no shared server: the session's Redis runs on a free loopback port
with its data in a temporary folder, started by the same code that ``wedmesh up`` uses.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio as aioredis

from services.core.local_redis import RedisServer, start_redis_server


@pytest.fixture(scope="session", autouse=True)
def _isolated_environment() -> Iterator[None]:
    """Keep a developer's REDIS_URL / WEDMESH_* out of the tests (never touch :6379)."""
    saved = {k: v for k, v in os.environ.items() if k == "REDIS_URL" or k.startswith("WEDMESH_")}
    for key in saved:
        del os.environ[key]
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One private Redis for the whole session (AOF on, as in production)."""
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session Redis, emptied before each test."""
    if redis_server.process.poll() is not None:  # a fault test may have killed it
        redis_server.restart()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client on the emptied session Redis."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()
