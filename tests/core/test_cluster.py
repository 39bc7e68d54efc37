"""The durable queue on a real three-master Redis Cluster: every script stays in one slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio.cluster import RedisCluster

from services.core.config import RedisConfig
from services.core.keys import QueueKeys
from services.core.local_redis import RedisCluster as LocalCluster
from services.core.local_redis import start_redis_cluster
from services.core.queue import DurableQueue
from services.core.redis_client import connect
from tests.redis_mode import SERVER_BINARY


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = start_redis_cluster(tmp_path_factory.mktemp("cluster"), binary=SERVER_BINARY)
    yield local
    local.stop()


@pytest.fixture
async def client(cluster: LocalCluster) -> AsyncIterator[RedisCluster]:
    client = connect(RedisConfig(url=cluster.url, cluster=True))  # the services' own cluster client
    assert isinstance(client, RedisCluster)
    cluster.flushall()
    await client.initialize()  # the slot map, for the test's own keyslot lookups
    yield client
    await client.aclose()


async def test_queues_spread_over_masters_and_every_operation_runs_without_crossslot(
    client: RedisCluster,
) -> None:
    """Enqueue, claim, retry, dead, replay, ack, stats and idempotency across several queues:
    each queue's keys hash to one slot, different queues land on different masters."""
    names = [f"router:service-{i}" for i in range(6)]
    slots = {client.keyslot(DurableQueue(client, n).keys.dead) for n in names}
    nodes = {client.nodes_manager.get_node_from_slot(s).name for s in slots}
    assert len(nodes) >= 2, "the test queues should live on more than one master"
    for name in names:
        queue = DurableQueue(client, name)
        first = await queue.enqueue(b"a", "high", idempotency_key="k1", ordering_key="o")
        assert await queue.enqueue(b"a", "high", idempotency_key="k1") == first
        await queue.enqueue(b"b", "low", ordering_key="o")
        claimed = (await queue.claim("c1", 10, lease=30)).deliveries
        assert [d.message_id for d in claimed] == [first]  # ordering key holds back "b"
        assert await queue.dead(claimed[0], "poison")
        assert await queue.dead_letters.replay() == 1
        again = (await queue.claim("c1", 10, lease=30)).deliveries
        assert {d.payload for d in again} == {b"b"}
        assert await queue.retry(again[0], 0.0, "later")
        stats = await queue.stats()
        assert stats is not None
        drained = 0
        for _ in range(10):
            batch = (await queue.claim("c1", 10, lease=30)).deliveries
            for delivery in batch:
                assert await queue.ack(delivery)
                drained += 1
            if drained == 2:
                break
        assert drained == 2


async def test_a_fresh_cluster_client_waits_for_a_connection_instead_of_failing(
    cluster: LocalCluster,
) -> None:
    """300 blocking reads at once on one node, from a client that has not loaded its slot map:
    past the connection limit they wait for a free one, as the single-node pool does (redis-py's
    own cluster client fails them with MaxConnectionsError and broken connections)."""
    client = connect(RedisConfig(url=cluster.url, cluster=True))
    key = QueueKeys("burst").extra("idle")
    try:
        replies = await asyncio.gather(*(client.xread({key: "$"}, block=300) for _ in range(300)))
    finally:
        await client.aclose()
    assert replies == [[]] * 300
