"""Backpressure in the durable queue: ``submit(max_depth=N)`` refuses inside the enqueue script."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from services.core.errors import ResourceExhausted
from services.core.queue import DurableQueue, Enqueued, Priority, QueueFull, RetryPolicy

FAST = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)


@pytest.fixture
def queue(redis_client: aioredis.Redis) -> DurableQueue:
    return DurableQueue(redis_client, "depth", policy=FAST)


async def test_submit_at_the_limit_raises_queue_full_and_writes_nothing(queue: DurableQueue) -> None:
    """At max_depth a new message is refused with QueueFull (a RESOURCE_EXHAUSTED with a delay)."""
    for n in range(3):
        await queue.submit(f"m{n}".encode(), max_depth=3)
    with pytest.raises(QueueFull) as err:
        await queue.submit(b"over", max_depth=3, idempotency_key="k-over")
    assert isinstance(err.value, ResourceExhausted)
    assert (err.value.queue, err.value.backlog, err.value.max_depth) == ("depth", 3, 3)
    assert err.value.retry_after is not None and err.value.retry_after > 0
    assert (await queue.stats()).depth == 3
    assert not await queue.client.exists(queue.idempotency_key("k-over"))


async def test_zero_means_no_limit_and_negative_is_refused(queue: DurableQueue) -> None:
    """max_depth=0 (the default) never refuses; a negative limit is a programming error."""
    for n in range(5):
        await queue.submit(f"m{n}".encode(), max_depth=0)
    await queue.enqueue(b"more")
    assert (await queue.stats()).backlog == 6
    with pytest.raises(ValueError, match="max_depth"):
        await queue.submit(b"x", max_depth=-1)


async def test_repeated_idempotency_key_is_a_duplicate_even_when_full(queue: DurableQueue) -> None:
    """A repeat of a message the queue holds answers duplicate (not QueueFull) at the limit."""
    first = await queue.submit(b"a", max_depth=2, idempotency_key="evt-1")
    await queue.submit(b"b", max_depth=2, idempotency_key="evt-2")
    again = await queue.submit(b"a", max_depth=2, idempotency_key="evt-1")
    assert again == Enqueued(first.message_id, duplicate=True)
    with pytest.raises(QueueFull):
        await queue.submit(b"c", max_depth=2, idempotency_key="evt-3")


async def test_a_refused_key_is_accepted_as_new_once_there_is_room(queue: DurableQueue) -> None:
    """The refused message's key was not remembered: its retry after a drain is accepted, not a duplicate."""
    await queue.submit(b"a", max_depth=1)
    with pytest.raises(QueueFull):
        await queue.submit(b"b", max_depth=1, idempotency_key="evt-b")
    for delivery in (await queue.claim("c1", 10, lease=30)).deliveries:
        assert await queue.ack(delivery)
    added = await queue.submit(b"b", max_depth=1, idempotency_key="evt-b")
    assert not added.duplicate


async def test_in_flight_and_dead_do_not_count_delayed_and_ordered_waiting_do(queue: DurableQueue) -> None:
    """The backlog is ready + delayed + waiting behind an ordering key; in-flight and dead are free."""
    await queue.enqueue(b"taken", Priority.HIGH)
    await queue.enqueue(b"dead", Priority.HIGH)
    claimed = (await queue.claim("c1", 2, lease=30)).deliveries
    assert len(claimed) == 2
    assert await queue.dead(claimed[1], "poison")
    stats = await queue.stats()
    assert (stats.in_flight, stats.dead, stats.backlog) == (1, 1, 0)
    await queue.enqueue(b"later", delay=60)
    await queue.enqueue(b"first in line", Priority.LOW, ordering_key="o")
    await queue.enqueue(b"second in line", Priority.LOW, ordering_key="o")
    stats = await queue.stats()
    assert (stats.delayed, stats.ordered_waiting, stats.backlog) == (1, 1, 3)
    with pytest.raises(QueueFull) as err:
        await queue.submit(b"x", max_depth=3)
    assert err.value.backlog == stats.backlog == 3
    await queue.submit(b"fits", max_depth=4)


async def test_retries_of_accepted_messages_are_never_refused(queue: DurableQueue) -> None:
    """A retry parks an accepted message even past the limit; only new messages are limited."""
    await queue.submit(b"a", max_depth=1)
    delivery = (await queue.claim("c1", 1, lease=30)).deliveries[0]
    await queue.submit(b"b", max_depth=1)
    assert await queue.retry(delivery, 60.0, "sink down")
    assert (await queue.stats()).backlog == 2
    with pytest.raises(QueueFull):
        await queue.submit(b"c", max_depth=1)


async def test_the_limit_is_exact_under_concurrent_submits(queue: DurableQueue) -> None:
    """50 concurrent submits at max_depth 10: exactly 10 are accepted, 40 refused."""
    results = await asyncio.gather(
        *(queue.submit(f"m{n}".encode(), max_depth=10) for n in range(50)), return_exceptions=True
    )
    accepted = [r for r in results if isinstance(r, Enqueued)]
    refused = [r for r in results if isinstance(r, QueueFull)]
    assert (len(accepted), len(refused)) == (10, 40)
    assert (await queue.stats()).depth == 10


async def test_enqueue_passes_the_limit_through(queue: DurableQueue) -> None:
    """The enqueue() shorthand takes the same max_depth."""
    await queue.enqueue(b"a", max_depth=1)
    with pytest.raises(QueueFull):
        await queue.enqueue(b"b", max_depth=1)
