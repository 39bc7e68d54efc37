"""The Redis connection every service uses: single node or Redis Cluster, from a URL."""

from __future__ import annotations

from typing import TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from services.core.config import RedisConfig
from services.core.errors import FailedPrecondition

AnyRedis: TypeAlias = aioredis.Redis | RedisCluster
MAX_CONNECTIONS = 256


def connect(config: RedisConfig) -> AnyRedis:
    """Build a client; it connects lazily, so a Redis that is down does not stop start-up."""
    if not config.url:
        raise FailedPrecondition(
            "no Redis configured: set REDIS_URL (or redis.url in the config file), "
            "or start the mesh with `wedmesh up`, which runs a private Redis"
        )
    timeout = config.socket_timeout_s
    if config.cluster:
        return RedisCluster.from_url(
            config.url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=15
        )
    # A blocking pool: a burst past max_connections waits for a free connection (up to the
    # socket timeout) instead of failing with "Too many connections".
    pool = aioredis.BlockingConnectionPool.from_url(
        config.url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=15,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it
