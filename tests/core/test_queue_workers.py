"""The Worker loop against a real Redis: leases, crashes, concurrency, ordering, idling."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.core.queue import (
    Delivery,
    DurableQueue,
    RetryableError,
    RetryPolicy,
    Worker,
)
from services.core.queue.testing import RecordingHandler
from tests import redis_mode
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(max_attempts=5, initial_backoff=0.01, max_backoff=0.05)


@pytest.fixture
def queue(redis_client: aioredis.Redis) -> DurableQueue:
    return DurableQueue(redis_client, "work", policy=FAST)


async def test_worker_handles_and_drains(queue: DurableQueue) -> None:
    """A worker handles every entry once and leaves nothing pending or queued."""
    handler = RecordingHandler()
    ids = [await queue.enqueue(b"%d" % i) for i in range(50)]
    async with Worker(queue, handler, lease=5, idle_wait=0.1):
        await handler.wait_for(50)
        await wait_for(lambda: _drained(queue), what="stream drained")
    assert sorted(handler.message_ids) == sorted(ids)


async def _drained(queue: DurableQueue) -> bool:
    stats = await queue.stats()
    return stats.depth == 0 and stats.in_flight == 0


async def test_crashed_holder_is_reclaimed_after_about_one_lease(queue: DurableQueue) -> None:
    """An entry claimed by a consumer that never renews goes to another after ~one lease."""
    await queue.enqueue(b"x", message_id="lost")
    [held] = (await queue.claim("crashed", 1, lease=0.5)).deliveries
    started = time.monotonic()
    handler = RecordingHandler()
    async with Worker(queue, handler, lease=0.5, idle_wait=0.1):
        await handler.wait_for(1, within=5)
    elapsed = time.monotonic() - started
    assert elapsed >= 0.5  # never before the lease ran out; within=5 bounds the other side
    [again] = handler.deliveries
    assert (again.message_id, again.attempt, again.entry_id) == ("lost", 2, held.entry_id)


CRASHING_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from services.core.config import RedisConfig
    from services.core.queue import DurableQueue, Worker
    from services.core.redis_client import connect

    async def main():
        client = connect(RedisConfig(url=sys.argv[1], cluster=sys.argv[2] == "cluster"))
        queue = DurableQueue(client, "work")
        async def handler(delivery):
            print("started", delivery.message_id, flush=True)
            await asyncio.Event().wait()
        await Worker(queue, handler, lease=0.6, idle_wait=0.1).run()

    asyncio.run(main())
    """
)


async def test_sigkilled_worker_delivery_is_redelivered_once(queue: DurableQueue, redis_url: str) -> None:
    """SIGKILL mid-delivery: the entry is redelivered once, to another worker, after ~a lease."""
    await queue.enqueue(b"x", message_id="k-1")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHING_WORKER,
        redis_url,
        redis_mode.MODE,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), timeout=10)
        assert line.split() == [b"started", b"k-1"]
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    handler = RecordingHandler()
    async with Worker(queue, handler, lease=0.6, idle_wait=0.1):
        await handler.wait_for(1, within=5)
        await wait_for(lambda: _drained(queue), what="acked")
    assert [(d.message_id, d.attempt) for d in handler.deliveries] == [("k-1", 2)]


async def test_slow_handler_keeps_its_lease_while_renewing(queue: DurableQueue) -> None:
    """A handler running 4x the lease is never handed to the second worker."""
    await queue.enqueue(b"x", message_id="slow")

    async def slow(_: Delivery) -> None:
        await asyncio.sleep(3.2)  # the behaviour under test: a delivery 4x the lease

    first, second = RecordingHandler(slow), RecordingHandler(slow)
    async with (
        Worker(queue, first, lease=0.8, idle_wait=0.05),
        Worker(queue, second, lease=0.8, idle_wait=0.05),
    ):
        await wait_for(lambda: _drained(queue), timeout=15, what="slow one acked")
    deliveries = first.deliveries + second.deliveries
    assert [(d.message_id, d.attempt) for d in deliveries] == [("slow", 1)]
    assert (await queue.stats()).dead == 0


async def test_two_workers_never_hold_the_same_entry(queue: DurableQueue) -> None:
    """Two concurrent workers share 300 entries; each is handled exactly once."""
    holders: dict[str, int] = defaultdict(int)
    overlaps: list[str] = []

    async def hold(d: Delivery) -> None:
        holders[d.message_id] += 1
        if holders[d.message_id] > 1:
            overlaps.append(d.message_id)
        await asyncio.sleep(random.uniform(0, 0.005))  # simulated work
        holders[d.message_id] -= 1

    ids = {await queue.enqueue(b"x") for _ in range(300)}
    a, b = RecordingHandler(hold), RecordingHandler(hold)
    async with (
        Worker(queue, a, lease=5, max_in_flight=8, idle_wait=0.05),
        Worker(queue, b, lease=5, max_in_flight=8, idle_wait=0.05),
    ):
        await wait_for(lambda: len(a.deliveries) + len(b.deliveries) >= 300, timeout=20)
        await wait_for(lambda: _drained(queue), what="drained")
    handled = a.message_ids + b.message_ids
    assert overlaps == []
    assert sorted(handled) == sorted(ids)
    assert a.deliveries and b.deliveries


async def test_ordering_key_hands_out_one_at_a_time_in_order(queue: DurableQueue) -> None:
    """Same-key messages run one at a time in enqueue order, across workers and retries."""
    active: dict[str, int] = defaultdict(int)
    violations: list[str] = []
    done: dict[str, list[int]] = defaultdict(list)
    failed_once: set[str] = set()

    async def handle(d: Delivery) -> None:
        key, seq = d.ordering_key or "", int(d.payload)
        active[key] += 1
        if active[key] > 1:
            violations.append(d.message_id)
        try:
            await asyncio.sleep(random.uniform(0, 0.004))  # simulated work
            if seq % 4 == 1 and d.message_id not in failed_once:
                failed_once.add(d.message_id)
                raise RetryableError("flaky", retry_after=0.02)
            done[key].append(seq)
        finally:
            active[key] -= 1

    keys = [f"wedding-{n}" for n in range(4)]
    for seq in range(12):
        for key in keys:
            await queue.enqueue(b"%d" % seq, random.choice(["high", "low"]), ordering_key=key)
    a, b = RecordingHandler(handle), RecordingHandler(handle)
    async with (
        Worker(queue, a, lease=5, max_in_flight=6, idle_wait=0.05),
        Worker(queue, b, lease=5, max_in_flight=6, idle_wait=0.05),
    ):
        await wait_for(lambda: sum(map(len, done.values())) == 48, timeout=20)
    assert violations == []
    assert all(done[key] == list(range(12)) for key in keys)
    stats = await queue.stats()
    assert (stats.depth, stats.delayed, stats.ordered_waiting) == (0, 0, 0)
    assert await queue.client.exists(*queue.slot_keys[6:]) == 0


async def test_idle_worker_issues_few_commands(redis_url: str) -> None:
    """An idle worker blocks instead of polling: a handful of commands per second."""
    client = redis_mode.async_client(redis_url)
    sent: list[Any] = []
    original = client.execute_command

    async def counting(*args: Any, **options: Any) -> Any:
        sent.append(args[0])
        return await original(*args, **options)

    client.execute_command = counting  # type: ignore[method-assign]
    queue = DurableQueue(client, "idle")
    async with Worker(queue, RecordingHandler(), lease=5, idle_wait=1.0):
        await wait_for(lambda: len(sent) >= 2, what="worker started")
        before, started = len(sent), time.monotonic()
        await asyncio.sleep(2.0)  # the measurement window
        rate = (len(sent) - before) / (time.monotonic() - started)
    await client.aclose()
    assert rate <= 4, f"{rate:.1f} commands/s while idle"


async def test_wakes_promptly_when_work_arrives_while_idle(queue: DurableQueue) -> None:
    """A worker blocked in its idle wait picks new work up without waiting out the block."""
    handler = RecordingHandler()
    async with Worker(queue, handler, lease=120, idle_wait=60.0):
        await wait_for(lambda: _blocked_reader(queue), what="worker blocked")
        await queue.enqueue(b"x")
        await handler.wait_for(1, within=15)  # far less than the 60 s block it sits in


async def _blocked_reader(queue: DurableQueue) -> bool:
    clients = await redis_mode.connected_clients(queue.client)
    return any(c.get("cmd") == "xreadgroup" and "b" in c.get("flags", "") for c in clients)


async def test_a_trickle_is_read_without_a_claim_per_entry(queue: DurableQueue) -> None:
    """Claims (which scan the pending list) run while they bring work or when due, not once
    per entry: a trickle of entries arriving one by one is read by the blocking read."""
    claims = 0
    original = queue.claim

    async def counting_claim(consumer: str, count: int, lease: float) -> Any:
        nonlocal claims
        claims += 1
        return await original(consumer, count, lease)

    queue.claim = counting_claim  # type: ignore[method-assign]
    handler = RecordingHandler()
    async with Worker(queue, handler, lease=120, idle_wait=60.0):
        await wait_for(lambda: _blocked_reader(queue), what="worker blocked")
        for i in range(5):
            await queue.enqueue(b"t%d" % i)
            await handler.wait_for(i + 1, within=15)
    assert claims == 1, claims  # the first, at start; the next is due after lease / 4 = 30 s


async def test_batch_wait_reads_a_trickle_several_at_a_time(queue: DurableQueue) -> None:
    """After a read that brought fewer entries than free slots, the worker pauses
    ``batch_wait`` before reading again: what arrived meanwhile comes in one XREADGROUP."""
    reads: list[int] = []
    original = queue.wait

    async def counting_wait(consumer: str, count: int, block: float) -> list[Delivery]:
        got = await original(consumer, count, block)
        reads.append(len(got))
        return got

    queue.wait = counting_wait  # type: ignore[method-assign]
    handler = RecordingHandler()
    async with Worker(queue, handler, lease=120, idle_wait=60.0, batch_wait=1.0):
        await wait_for(lambda: _blocked_reader(queue), what="worker blocked")
        await queue.enqueue(b"first")
        await handler.wait_for(1, within=15)  # one entry of 32 free slots: the pause starts
        for i in range(4):
            await queue.enqueue(b"next%d" % i)  # all within the 1 s pause
        await handler.wait_for(5, within=15)
    assert [n for n in reads if n] == [1, 4], reads


async def test_max_in_flight_caps_concurrent_deliveries(queue: DurableQueue) -> None:
    """With max_in_flight=2 only two entries are claimed until one finishes."""
    gate = asyncio.Event()

    async def blocked(_: Delivery) -> None:
        await gate.wait()

    handler = RecordingHandler(blocked)
    for _ in range(6):
        await queue.enqueue(b"x")
    async with Worker(queue, handler, lease=5, max_in_flight=2, idle_wait=0.05):
        await wait_for(lambda: handler.active == 2, what="two in flight")
        assert (await queue.stats()).in_flight == 2
        gate.set()
        await handler.wait_for(6)
    assert handler.max_active == 2


async def test_not_ready_stops_claiming(queue: DurableQueue) -> None:
    """While ready() is false nothing is claimed (no attempts burnt); then work resumes."""
    calls = 0
    healthy = False

    async def ready() -> bool:
        nonlocal calls
        calls += 1
        return healthy

    handler = RecordingHandler()
    await queue.enqueue(b"x")
    async with Worker(queue, handler, lease=5, ready=ready, idle_wait=0.05):
        await wait_for(lambda: calls >= 3, what="ready polled")
        assert handler.deliveries == []
        assert (await queue.stats()).in_flight == 0
        healthy = True
        await handler.wait_for(1)
    assert handler.deliveries[0].attempt == 1


async def test_stopped_worker_leaves_the_consumer_group(queue: DurableQueue) -> None:
    """A cleanly stopped worker removes its consumer name; one still holding entries stays."""
    handler = RecordingHandler()
    await queue.enqueue(b"x")
    async with Worker(queue, handler, lease=5, idle_wait=0.05, consumer="tidy"):
        await handler.wait_for(1)
    await queue.enqueue(b"y")
    assert (await queue.claim("holder", 1, lease=5)).deliveries
    assert not await queue.forget_consumer("holder")
    names = set()
    for stream in queue.keys.streams:
        names |= {c["name"] for c in await queue.client.xinfo_consumers(stream, queue.group)}
    assert b"tidy" not in names and "tidy" not in names
    assert b"holder" in names or "holder" in names
