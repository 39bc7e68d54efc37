"""State survives a Redis restart from its AOF: backlog, pending, delayed retries, dead."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from services.core.local_redis import RedisServer
from services.core.queue import DurableQueue, Priority, Worker
from services.core.queue.testing import RecordingHandler
from tests.waiting import wait_for

pytestmark = pytest.mark.single_redis  # restarts the session's one Redis from its AOF


async def test_restart_from_aof_keeps_every_kind_of_state(redis_server: RedisServer, redis_url: str) -> None:
    """After a clean stop and restart, backlog, pending, delayed and dead entries remain."""
    client = aioredis.Redis.from_url(redis_url)
    queue = DurableQueue(client, "durable")
    for i in range(4):
        await queue.enqueue(b"%d" % i, "high", message_id=f"m{i}")
    _pending, retried, dead = (await queue.claim("gone", 3, lease=0.3)).deliveries
    await queue.retry(retried, 0.8, "later")
    await queue.dead(dead, "broken")
    before = await queue.stats()
    await client.aclose()

    redis_server.restart()  # SIGTERM flushes the AOF; the same port and folder come back

    client = aioredis.Redis.from_url(redis_url)
    queue = DurableQueue(client, "durable")
    try:
        after = await queue.stats()
        for priority in Priority:  # only the ages move on
            b, a = before.priorities[priority], after.priorities[priority]
            assert (a.depth, a.in_flight) == (b.depth, b.in_flight)
        assert (after.delayed, after.dead) == (before.delayed, before.dead)
        assert after.priorities[Priority.HIGH].depth == 2
        assert (after.in_flight, after.delayed, after.dead) == (1, 1, 1)
        [letter] = (await queue.dead_letters.list()).letters
        assert (letter.message_id, letter.last_error) == ("m2", "broken")
        got = {}

        async def claim_all() -> bool:
            for d in (await queue.claim("new", 5, lease=0.3)).deliveries:
                got[d.message_id] = d.attempt
                await queue.ack(d)
            return len(got) == 3

        await wait_for(claim_all, timeout=5, what="backlog, reclaim and retry delivered")
        assert got == {"m3": 1, "m0": 2, "m1": 2}
    finally:
        await client.aclose()
    assert redis_server.process.poll() is None


async def test_worker_rides_out_a_redis_restart(redis_server: RedisServer, redis_url: str) -> None:
    """A running worker keeps going after Redis restarts under it, losing nothing acked."""
    client = aioredis.Redis.from_url(redis_url)
    queue = DurableQueue(client, "restart")
    handler = RecordingHandler()
    try:
        async with Worker(queue, handler, lease=1, idle_wait=0.2):
            await queue.enqueue(b"before", message_id="before")
            await handler.wait_for(1)
            redis_server.restart()
            await wait_for(lambda: _enqueued(queue), what="enqueue after restart")
            await handler.wait_for(2, within=10)
        assert set(handler.message_ids) >= {"before", "after"}
    finally:
        await client.aclose()


async def _enqueued(queue: DurableQueue) -> bool:
    await queue.enqueue(b"after", message_id="after", idempotency_key="after-restart")
    return True
