"""``max_in_flight`` holds even when one read returns more (XREADGROUP's COUNT is per stream)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from services.core.queue import ClaimResult, Delivery, DurableQueue, Priority, RetryPolicy, Worker
from services.core.queue.testing import RecordingHandler

FAST = RetryPolicy(max_attempts=5, initial_backoff=0.01, max_backoff=0.05)


class ArrivesAfterClaim(DurableQueue):
    """The race, made certain: entries land after the claim script ran, before the wait.

    The first claim finds nothing; the entries are added then, so the worker's wait (a real
    XREADGROUP over the three priority streams, COUNT = free slots) finds one per stream.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        super().__init__(client, "cap", policy=FAST)
        self.first = True

    async def claim(self, consumer: str, count: int, lease: float) -> ClaimResult:
        if self.first:
            self.first = False
            for priority in (Priority.HIGH, Priority.NORMAL, Priority.LOW):
                await self.enqueue(priority.name.encode(), priority)
            return ClaimResult([], None)
        return await super().claim(consumer, count, lease)


async def test_extra_entries_from_one_read_wait_for_a_free_slot(redis_client: aioredis.Redis) -> None:
    """Three entries from one read with max_in_flight=1: run one at a time, all run, leases kept."""
    queue = ArrivesAfterClaim(redis_client)
    gate = asyncio.Event()

    async def blocked(_: Delivery) -> None:
        await gate.wait()

    handler = RecordingHandler(blocked)
    async with Worker(queue, handler, lease=2.0, max_in_flight=1, idle_wait=0.05):
        await handler.wait_for(1)
        # Two leases pass while two entries are held: renewal keeps them ours, not reclaimed.
        await asyncio.wait_for(_leases_pass(queue, 4.0), 20)
        assert handler.active == 1
        gate.set()
        await handler.wait_for(3)
    assert handler.max_active == 1
    assert sorted(d.attempt for d in handler.deliveries) == [1, 1, 1], [
        (d.payload, d.attempt, d.entry_id) for d in handler.deliveries
    ]
    assert sorted(d.payload for d in handler.deliveries) == [b"HIGH", b"LOW", b"NORMAL"]


async def _leases_pass(queue: DurableQueue, seconds: float) -> None:
    """Wait ``seconds`` of queue time while checking nothing was handed out a second time."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    while loop.time() < until:
        stats = await queue.stats()
        assert stats.in_flight == 3  # one running + two held, all still pending to this worker
        await asyncio.sleep(0.1)
