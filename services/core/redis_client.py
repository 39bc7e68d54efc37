"""The Redis connection every service uses: single node or Redis Cluster, from a URL."""

from __future__ import annotations

import asyncio
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import MaxConnectionsError
from redis.typing import EncodableT

from services.core.config import RedisConfig
from services.core.errors import FailedPrecondition

AnyRedis: TypeAlias = aioredis.Redis | RedisCluster
MAX_CONNECTIONS = 256


class _ClusterClient(RedisCluster):
    """redis-py's cluster client, made to behave like the single-node one under concurrency.

    Two gaps in redis-py 8.1's asyncio cluster client:

    - It picks a command's route before it learns the slot map: commands issued together on a
      fresh client (or right after it dropped its map) go to the default node, get MOVED, and
      its MOVED handling closes connections other tasks are using ("'NoneType' object has no
      attribute 'writelines'"). So the map is loaded first (``initialize`` is a no-op after).
    - It has no blocking pool: past ``max_connections`` to a node a command fails at once with
      MaxConnectionsError. So at most ``MAX_CONNECTIONS`` commands are in flight per client and
      a burst past it waits for a free slot, up to the socket timeout, as the single-node
      BlockingConnectionPool does.
    """

    def __init__(self, *args: Any, wait_timeout_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._wait_timeout_s = wait_timeout_s

    async def execute_command(self, *args: EncodableT, **kwargs: Any) -> Any:
        await self.initialize()
        try:
            async with asyncio.timeout(self._wait_timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            raise MaxConnectionsError(
                f"{MAX_CONNECTIONS} Redis commands already in flight for {self._wait_timeout_s}s"
            ) from None
        try:
            return await super().execute_command(*args, **kwargs)
        finally:
            self._slots.release()


def connect(config: RedisConfig) -> AnyRedis:
    """Build a client; it connects lazily, so a Redis that is down does not stop start-up."""
    if not config.url:
        raise FailedPrecondition(
            "no Redis configured: set REDIS_URL (or redis.url in the config file), "
            "or start the mesh with `wedmesh up`, which runs a private Redis"
        )
    timeout = config.socket_timeout_s
    if config.cluster:
        return _ClusterClient.from_url(
            config.url,
            max_connections=MAX_CONNECTIONS,
            wait_timeout_s=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=15,
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
