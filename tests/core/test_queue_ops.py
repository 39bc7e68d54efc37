"""Queue operations driven directly (claim/ack/retry/dead), without the worker loop."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis

import services.core.queue as queue_pkg
from services.core.queue import (
    DurableQueue,
    PermanentError,
    Priority,
    RetryableError,
    RetryPolicy,
    decide,
)
from tests.waiting import wait_for

FAST = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)


@pytest.fixture
def queue(redis_client: aioredis.Redis) -> DurableQueue:
    return DurableQueue(redis_client, "ops", policy=FAST)


def test_public_surface_does_not_drift() -> None:
    """The package exports exactly the documented names."""
    assert queue_pkg.__all__ == sorted(queue_pkg.__all__)
    assert set(queue_pkg.__all__) == {
        "ClaimResult",
        "DeadLetter",
        "DeadLetterPage",
        "DeadLetters",
        "Decision",
        "Delivery",
        "DurableQueue",
        "Enqueued",
        "Handler",
        "PermanentError",
        "Priority",
        "PriorityStats",
        "QueueFull",
        "QueueStats",
        "Ready",
        "RetryPolicy",
        "RetryableError",
        "Worker",
        "decide",
    }
    for name in queue_pkg.__all__:
        assert hasattr(queue_pkg, name)


def test_decide_carries_retry_semantics_in_the_error() -> None:
    """Permanent errors and exhausted budgets go dead; retry_after overrides the backoff."""
    policy = RetryPolicy(max_attempts=3, initial_backoff=1.0, full_jitter=False)
    assert decide(PermanentError("x"), 1, 3, policy).action == "dead"
    assert decide(ValueError("x"), 3, 3, policy).action == "dead"
    assert decide(RetryableError("x", retry_after=7.5), 1, 3, policy).delay == 7.5
    retry = decide(ValueError("x"), 2, 3, policy)
    assert (retry.action, retry.delay, retry.error) == ("retry", 2.0, "ValueError: x")
    jittered = RetryPolicy(initial_backoff=1.0, multiplier=2.0, max_backoff=3.0)
    assert all(0.0 <= jittered.backoff(5) <= 3.0 for _ in range(100))


async def test_ack_drains_stream_length_to_zero(queue: DurableQueue) -> None:
    """After every entry is acked, XLEN and the pending count are 0 on every priority."""
    for i in range(30):
        await queue.enqueue(b"m%d" % i, list(Priority)[i % 3])
    handled = 0
    while handled < 30:
        claimed = await queue.claim("a", 7, lease=5)
        for d in claimed.deliveries:
            assert await queue.ack(d)
        handled += len(claimed.deliveries)
    stats = await queue.stats()
    assert (stats.depth, stats.in_flight, stats.delayed, stats.dead) == (0, 0, 0, 0)
    for stream in queue.keys.streams:
        assert await queue.client.xlen(stream) == 0


async def test_delivery_carries_message_id_attempt_and_headers(queue: DurableQueue) -> None:
    """A claimed delivery carries the given id, attempt 1, priority, headers and payload."""
    await queue.enqueue(b"\x00\xffbin", "high", message_id="m-1", headers={"k": "v"})
    [d] = (await queue.claim("a", 5, lease=5)).deliveries
    assert (d.message_id, d.attempt, d.priority, d.headers, d.payload) == (
        "m-1",
        1,
        Priority.HIGH,
        {"k": "v"},
        b"\x00\xffbin",
    )


async def test_retry_is_not_delivered_before_its_backoff(queue: DurableQueue) -> None:
    """A retry parked for 1 s is absent from claims and the PEL until due, then returns."""
    await queue.enqueue(b"x", message_id="r-1")
    [d] = (await queue.claim("a", 1, lease=5)).deliveries
    started = time.monotonic()
    assert await queue.retry(d, 1.0, "boom")
    stats = await queue.stats()
    assert (stats.in_flight, stats.delayed, stats.depth) == (0, 1, 0)
    got: list = []

    async def claimed() -> bool:
        result = await queue.claim("b", 1, lease=5)
        got.extend(result.deliveries)
        return bool(result.deliveries)

    await wait_for(claimed, timeout=5, what="retry delivered")
    assert time.monotonic() - started >= 1.0
    assert (got[0].message_id, got[0].attempt, got[0].last_error) == ("r-1", 2, "boom")


async def test_claim_reports_when_the_next_retry_is_due(queue: DurableQueue) -> None:
    """An empty claim says how long until the earliest delayed entry is due."""
    await queue.enqueue(b"x", delay=30)
    result = await queue.claim("a", 5, lease=5)
    assert result.deliveries == []
    assert result.next_due is not None and 25 < result.next_due <= 30


async def test_max_attempts_sends_message_dead_with_last_error(queue: DurableQueue) -> None:
    """Failing every attempt ends in dead letters with the attempts and last error."""
    await queue.enqueue(b"x", "low", message_id="d-1")
    seen = []

    async def fail_once() -> bool:
        for d in (await queue.claim("a", 1, lease=5)).deliveries:
            seen.append(d.attempt)
            await queue.settle(d, ValueError(f"nope {d.attempt}"))
        return await queue.dead_letters.count() == 1

    await wait_for(fail_once, timeout=5, what="dead letter")
    assert seen == [1, 2, 3]
    [letter] = (await queue.dead_letters.list()).letters
    assert (letter.message_id, letter.attempts, letter.last_error, letter.priority) == (
        "d-1",
        3,
        "ValueError: nope 3",
        Priority.LOW,
    )
    assert letter.failed_at_ms > 0
    stats = await queue.stats()
    assert (stats.depth, stats.in_flight, stats.delayed) == (0, 0, 0)


async def test_permanent_error_goes_dead_at_once(queue: DurableQueue) -> None:
    """A PermanentError skips the remaining attempts."""
    await queue.enqueue(b"x")
    [d] = (await queue.claim("a", 1, lease=5)).deliveries
    decision = await queue.settle(d, PermanentError("bad payload"))
    assert decision is not None and decision.action == "dead"
    assert (await queue.dead_letters.list()).letters[0].attempts == 1


async def test_replay_restores_a_dead_letter_exactly_once(queue: DurableQueue) -> None:
    """Replay re-enqueues with the same id, replayed_from and attempt 1; twice is a no-op."""
    await queue.enqueue(b"x", "high", message_id="p-1")
    [d] = (await queue.claim("a", 1, lease=5)).deliveries
    await queue.dead(d, "poison")
    [letter] = (await queue.dead_letters.list()).letters
    assert await queue.dead_letters.replay([letter.dead_id]) == 1
    assert await queue.dead_letters.replay([letter.dead_id]) == 0
    [again] = (await queue.claim("a", 5, lease=5)).deliveries
    assert (again.message_id, again.replayed_from, again.attempt, again.priority) == (
        "p-1",
        letter.dead_id,
        1,
        Priority.HIGH,
    )
    assert (await queue.claim("a", 5, lease=5)).deliveries == []
    assert await queue.dead_letters.count() == 0


async def test_replay_all_and_paged_listing(queue: DurableQueue) -> None:
    """Listing pages through letters in order; replay() with no ids replays them all."""
    for i in range(5):
        await queue.enqueue(b"x", message_id=f"m{i}")
    for d in (await queue.claim("a", 5, lease=5)).deliveries:
        await queue.dead(d, "x")
    first = await queue.dead_letters.list(count=3)
    rest = await queue.dead_letters.list(after=first.next_after, count=3)
    assert [x.message_id for x in first.letters + rest.letters] == [f"m{i}" for i in range(5)]
    assert rest.next_after is None
    assert await queue.dead_letters.replay() == 5
    assert (await queue.stats()).priorities[Priority.NORMAL].depth == 5


async def test_purge_by_ids_and_all(queue: DurableQueue) -> None:
    """Purge deletes the named letters, then everything."""
    for i in range(3):
        await queue.enqueue(b"x", message_id=f"m{i}")
    for d in (await queue.claim("a", 3, lease=5)).deliveries:
        await queue.dead(d, "x")
    letters = (await queue.dead_letters.list()).letters
    assert await queue.dead_letters.purge([letters[0].dead_id]) == 1
    assert await queue.dead_letters.count() == 2
    assert await queue.dead_letters.purge() == 2
    assert await queue.dead_letters.count() == 0


async def test_trim_drops_only_old_dead_letters(queue: DurableQueue) -> None:
    """Trimming by age keeps recent letters."""
    await queue.enqueue(b"x")
    [d] = (await queue.claim("a", 1, lease=5)).deliveries
    await queue.dead(d, "x")
    assert await queue.dead_letters.trim(older_than=3600) == 0
    assert await queue.dead_letters.count() == 1


async def test_high_drains_first_and_low_keeps_its_share(queue: DurableQueue) -> None:
    """Batches split 7/2/1 across high/normal/low; high empties first, low never starves."""
    for p in ("low", "normal", "high"):
        for i in range(40):
            await queue.enqueue(f"{p}{i}".encode(), p)
    batches = []
    while True:
        claimed = (await queue.claim("a", 10, lease=5)).deliveries
        if not claimed:
            break
        batches.append([d.priority for d in claimed])
        for d in claimed:
            await queue.ack(d)
    first = batches[0]
    assert [first.count(p) for p in Priority] == [7, 2, 1]
    order = [p for batch in batches for p in batch]
    last = {p: max(i for i, q in enumerate(order) if q is p) for p in Priority}
    assert last[Priority.HIGH] < last[Priority.NORMAL] < last[Priority.LOW]
    high_phase = order[: last[Priority.HIGH]]
    assert high_phase.count(Priority.LOW) >= 5
    assert len(order) == 120


async def test_single_slot_claims_still_reach_low(queue: DurableQueue) -> None:
    """With count=1 the rounding lot still gives low about its weight."""
    for p in ("high", "low"):
        for _ in range(60):
            await queue.enqueue(b"x", p)
    picked = []
    for _ in range(50):
        [d] = (await queue.claim("a", 1, lease=5)).deliveries
        picked.append(d.priority)
        await queue.ack(d)
    assert 1 <= picked.count(Priority.LOW) < 25


async def test_idempotency_key_dedups_and_expires(redis_client: aioredis.Redis) -> None:
    """A repeated idempotency key returns the first id and adds nothing until its TTL ends."""
    queue = DurableQueue(redis_client, "idem", idempotency_ttl=0.3)
    first = await queue.enqueue(b"a", idempotency_key="order 42/é")
    again = await queue.enqueue(b"b", idempotency_key="order 42/é", message_id="other")
    assert again == first
    assert (await queue.stats()).depth == 1
    key = queue.idempotency_key("order 42/é")
    assert 0 < await redis_client.pttl(key) <= 300
    await wait_for(lambda: _missing(redis_client, key), timeout=5, what="idem key expired")
    assert await queue.enqueue(b"c", idempotency_key="order 42/é") != first


async def test_submit_says_whether_the_key_was_seen(redis_client: aioredis.Redis) -> None:
    """submit reports a repeat as duplicate with the first id, even when ids were not proposed."""
    queue = DurableQueue(redis_client, "idem-flag")
    first = await queue.submit(b"a", idempotency_key="k")
    again = await queue.submit(b"b", idempotency_key="k")
    assert not first.duplicate and again.duplicate
    assert again.message_id == first.message_id
    assert (await queue.stats()).depth == 1


async def _missing(client: aioredis.Redis, key: str) -> bool:
    return not await client.exists(key)


async def test_poison_entry_goes_dead_at_the_delivery_ceiling(
    redis_client: aioredis.Redis,
) -> None:
    """An entry whose holders keep dying is dead-lettered inside claim at the ceiling."""
    queue = DurableQueue(redis_client, "poison", max_deliveries=2)
    await queue.enqueue(b"x", message_id="crash", max_attempts=50)
    deliveries = []

    async def claim_and_crash() -> bool:
        deliveries.extend((await queue.claim("c", 1, lease=0.05)).deliveries)
        return await queue.dead_letters.count() == 1

    await wait_for(claim_and_crash, timeout=5, what="poison dead-lettered")
    assert [d.attempt for d in deliveries] == [1, 2]
    [letter] = (await queue.dead_letters.list()).letters
    assert letter.message_id == "crash" and "delivery ceiling" in letter.last_error
    assert (await queue.stats()).in_flight == 0


async def test_outcome_of_a_lost_lease_is_a_no_op(queue: DurableQueue) -> None:
    """Once another consumer reclaimed an entry, the old holder can neither ack nor renew it."""
    await queue.enqueue(b"x")
    [old] = (await queue.claim("a", 1, lease=0.05)).deliveries

    async def reclaimed() -> bool:
        return bool((await queue.claim("b", 1, lease=0.05)).deliveries)

    await wait_for(reclaimed, timeout=5, what="reclaimed by b")
    assert await queue.renew([old]) == {old.entry_id} and old.lease_lost
    assert not await queue.ack(old)
    assert (await queue.stats()).in_flight == 1


async def test_ack_many_settles_a_batch_in_one_script(queue: DurableQueue) -> None:
    """ack_many acks every held entry (per delivery result), releases ordering keys, skips lost ones."""
    await queue.enqueue(b"lost")
    [lost] = (await queue.claim("b", 1, lease=0.05)).deliveries

    async def reclaimed() -> bool:
        return bool((await queue.claim("c", 1, lease=0.05)).deliveries)

    await wait_for(reclaimed, timeout=5, what="reclaimed by c")
    for i in range(6):
        await queue.enqueue(b"m%d" % i, list(Priority)[i % 3])
    await queue.enqueue(b"k1", ordering_key="k")
    await queue.enqueue(b"k2", ordering_key="k")  # waits behind k1
    claimed = (await queue.claim("a", 20, lease=5)).deliveries
    assert sorted(d.payload for d in claimed) == sorted([b"m%d" % i for i in range(6)] + [b"k1"])
    assert await queue.ack_many([*claimed, lost]) == [True] * len(claimed) + [False]
    [k2] = (await queue.claim("a", 5, lease=5)).deliveries  # k1's ack released k2
    assert k2.payload == b"k2"
    assert await queue.ack_many([k2]) == [True]
    assert await queue.ack_many([]) == []
    stats = await queue.stats()
    assert (stats.depth, stats.in_flight) == (1, 1)  # only the reclaimed one, held by c


async def test_consumers_create_the_group_producers_never_hit_an_error(
    queue: DurableQueue, redis_client: aioredis.Redis
) -> None:
    """Enqueue does not create the consumer group (an error reply per call did, inside the
    script, costing more than the rest of it); claim and wait create it from the stream's
    start, so messages sent before any consumer, or after an operator destroyed the group,
    are all delivered."""
    await redis_client.config_resetstat()
    for i in range(3):
        await queue.enqueue(b"early%d" % i)
    info = await redis_client.info("errorstats")
    assert info == {}, info  # no error reply at all, not even one caught inside the script
    normal = queue.keys.stream("normal")
    assert await redis_client.xinfo_groups(normal) == []
    claimed = await queue.claim("a", 1, lease=5)
    assert [d.payload for d in claimed.deliveries] == [b"early0"]
    assert [g["name"] for g in await redis_client.xinfo_groups(normal)] == [queue.group.encode()]

    await redis_client.xgroup_destroy(normal, queue.group)  # an operator's mistake
    await queue.enqueue(b"late")
    waited = await queue.wait("a", 10, block=0.1)  # recreates the group from the start
    assert [d.payload for d in waited] == [b"early0", b"early1", b"early2", b"late"]
