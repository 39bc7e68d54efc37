"""The ordering gate is released even when an operator deleted the holder's stream entry."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from services.core.queue import DurableQueue, RetryPolicy

FAST = RetryPolicy(max_attempts=5, initial_backoff=0.01, max_backoff=0.05)


@pytest.mark.parametrize("outcome", ["retry", "dead"])
async def test_deleted_holder_entry_still_frees_its_ordering_key(
    redis_client: aioredis.Redis, outcome: str
) -> None:
    """Holder's entry XDELed mid-delivery; its retry/dead settles nothing but frees the key."""
    queue = DurableQueue(redis_client, "gate", policy=FAST)
    await queue.enqueue(b"first", ordering_key="wedding-1", message_id="m1")
    await queue.enqueue(b"second", ordering_key="wedding-1", message_id="m2")
    [held] = (await queue.claim("c", 10, lease=30)).deliveries
    assert held.message_id == "m1"
    assert (await queue.claim("c", 10, lease=30)).deliveries == []  # m2 waits behind m1

    stream = queue.keys.streams[held.stream_index - 1]  # Lua indexes from 1
    await redis_client.xdel(stream, held.entry_id)  # an operator removes the entry's data
    if outcome == "retry":
        assert await queue.retry(held, 0.0, "boom") is False
    else:
        assert await queue.dead(held, "boom") is False

    [nxt] = (await queue.claim("c", 10, lease=30)).deliveries
    assert (nxt.message_id, nxt.payload) == ("m2", b"second")
    await queue.ack(nxt)
    stats = await queue.stats()
    assert (stats.depth, stats.ordered_waiting) == (0, 0)
