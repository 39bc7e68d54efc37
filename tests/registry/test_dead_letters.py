"""Router dead letters through the RPCs: strict ids, exact counts, page tokens, oldest-first merge.

Letters are made straight in Redis (enqueue, claim, dead-letter on the service's queue), so
each test controls exactly which letters exist and when they failed.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import grpc
import pytest

from services.core.queue import DurableQueue
from services.core.redis_client import AnyRedis
from services.registry.admin import services_key
from services.registry.codec import queue_name
from tests.waiting import wait_for
from wedsync.registry.v1 import message_pb2 as mpb
from wedsync.registry.v1 import router_pb2 as rpb

A, B = "svc-a", "svc-b"
MAX_ID = "18446744073709551615-18446744073709551615"


async def _redis_ms(client: AnyRedis) -> int:
    seconds, micros = await client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def make_dead(client: AnyRedis, service: str, payload: bytes = b"x") -> str:
    """Dead-letter one new message of ``service``; its public dead id.

    Waits until Redis' clock is past the newest dead id first, so letters made one after
    another (of any service) have increasing ids: their failure order is unambiguous.
    """
    queue = DurableQueue(client, queue_name(service))
    newest = await client.xrevrange(queue.keys.dead, "+", "-", count=1)
    if newest:
        last_ms = int(newest[0][0].decode().split("-")[0])
        await wait_for(lambda: _after(client, last_ms), what="Redis clock past the last dead id")
    message = mpb.Message(to_service=service, payload=payload)
    await queue.enqueue(message.SerializeToString())
    [delivery] = (await queue.claim("test", 1, 5.0)).deliveries
    await queue.dead(delivery, "RetryableError: instance=i1 RETRY: no")
    await client.sadd(services_key(), service)
    page = await queue.dead_letters.list(count=1000)
    return f"{service}/{page.letters[-1].dead_id}"


async def _after(client: AnyRedis, last_ms: int) -> bool:
    return await _redis_ms(client) > last_ms


async def interleaved(client: AnyRedis, services: list[str]) -> list[str]:
    """One letter per entry of ``services``, in that order, with distinct failure times."""
    made: list[str] = []
    for i, service in enumerate(services):
        if made:  # ids of different streams only order by time when their ms differ
            last_ms = int(made[-1].rpartition("/")[2].split("-")[0])
            await wait_for(lambda last_ms=last_ms: _after(client, last_ms), what="next millisecond")
        made.append(await make_dead(client, service, str(i).encode()))
    return made


async def listed(router: Any, service: str = "") -> list[str]:
    page = await router.ListDeadLetters(rpb.ListDeadLettersRequest(service_name=service, page_size=1000))
    return [d.id for d in page.dead_letters]


async def depth(router: Any, service: str) -> int:
    stats = await router.GetQueueStats(rpb.GetQueueStatsRequest(service_name=service))
    return sum(s.depth for s in stats.stats)


def malformed_ids(real: str) -> list[str]:
    """Ids that cannot name a letter; each used to reach Redis (INTERNAL) or match too much."""
    service, _, entry = real.partition("/")
    ms = entry.split("-")[0]
    return [
        f"{service}/abc",
        f"{service}/99999999999999999999-0",  # ms past 2**64-1
        f"{service}/(0-0",  # an exclusive-range prefix
        f"{service}/{MAX_ID}",  # a valid id no letter can have here; must not error
        f"{service}/1-18446744073709551616",
        "a b/1-0",  # not a service name: the key builder refused it
        f"{service}/{ms}",  # no sequence: Redis read it as a whole millisecond
        f"{service}/{ms}-",
        f"{service}/-{entry}",
        f"{service}/{ms}-٣",  # a non-ASCII digit
        f"{service}/{entry}\n",
        f"other/{entry}",
        entry,  # no service
        "",
    ]


async def test_replay_reports_malformed_ids_as_not_found(router: Any, redis_client: AnyRedis) -> None:
    """Ids that cannot name a letter are reported not found; none errors, none replays a letter."""
    real = await make_dead(redis_client, A)
    bad = malformed_ids(real)
    reply = await router.ReplayDeadLetters(rpb.ReplayDeadLettersRequest(ids=bad))
    assert (reply.replayed_count, list(reply.replayed_ids)) == (0, [])
    assert list(reply.not_found_ids) == bad
    assert await listed(router) == [real]  # the incomplete id "<service>/<ms>" did not match it
    assert await depth(router, A) == 0


async def test_purge_reports_malformed_ids_as_not_found(router: Any, redis_client: AnyRedis) -> None:
    """Purge treats the same malformed ids as not found and deletes nothing."""
    real = await make_dead(redis_client, A)
    bad = malformed_ids(real)
    reply = await router.PurgeDeadLetters(rpb.PurgeDeadLettersRequest(ids=bad))
    assert (reply.purged_count, list(reply.purged_ids)) == (0, [])
    assert list(reply.not_found_ids) == bad
    assert await listed(router) == [real]


async def test_an_id_given_twice_replays_once(router: Any, redis_client: AnyRedis) -> None:
    """The same letter named twice (or spelled with a leading zero) is re-queued once, counted once."""
    real = await make_dead(redis_client, A)
    service, _, entry = real.partition("/")
    reply = await router.ReplayDeadLetters(
        rpb.ReplayDeadLettersRequest(ids=[real, real, f"{service}/0{entry}", f"{A}/9-9", f"{A}/9-9"])
    )
    assert (reply.replayed_count, list(reply.replayed_ids)) == (1, [real])
    assert list(reply.not_found_ids) == [f"{A}/9-9"]
    assert await depth(router, A) == 1  # one message queued again, not two
    assert await listed(router) == []


async def test_an_id_given_twice_purges_once_and_counts_are_what_redis_did(
    router: Any, redis_client: AnyRedis
) -> None:
    """Purge counts each deleted letter once; purging all counts the letters the streams held."""
    first = await make_dead(redis_client, A)
    await interleaved(redis_client, [A, B, B])
    reply = await router.PurgeDeadLetters(rpb.PurgeDeadLettersRequest(ids=[first, first]))
    assert (reply.purged_count, list(reply.purged_ids), list(reply.not_found_ids)) == (1, [first], [])
    again = await router.PurgeDeadLetters(rpb.PurgeDeadLettersRequest(ids=[first]))
    assert (again.purged_count, list(again.not_found_ids)) == (0, [first])
    everything = await router.PurgeDeadLetters(rpb.PurgeDeadLettersRequest(all=True))
    assert everything.purged_count == 3
    assert await listed(router) == []


async def test_replay_and_purge_keep_to_the_requested_service(router: Any, redis_client: AnyRedis) -> None:
    """With service_name set, an id of another service is not found, and stays."""
    a, b = await interleaved(redis_client, [A, B])
    reply = await router.ReplayDeadLetters(rpb.ReplayDeadLettersRequest(service_name=A, ids=[b, a]))
    assert (list(reply.replayed_ids), list(reply.not_found_ids)) == ([a], [b])
    assert await listed(router) == [b]


def token(state: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


BAD_TOKENS = {
    "not base64": "%%%",
    "not json": base64.urlsafe_b64encode(b"\xff{").decode(),
    "deeply nested json": base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode(),
    "after is text": token({"s": "", "p": {A: "abc"}}),
    "after is a list": token({"s": "", "p": {A: [1]}}),
    "after past 2**64-1": token({"s": "", "p": {A: "99999999999999999999-0"}}),
    "after is the largest id": token({"s": "", "p": {A: MAX_ID}}),
    "after has no sequence": token({"s": "", "p": {A: "5"}}),
    "unknown service": token({"s": "", "p": {"nobody": ""}}),
    "issued for one service": token({"s": A, "p": {A: ""}}),
    "old format, bad after": token([A, "abc"]),
    "old format, largest id": token([A, MAX_ID]),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_list_dead_letters_refuses_a_page_token_it_did_not_issue(
    router: Any, redis_client: AnyRedis, case: str
) -> None:
    """A malformed or foreign page_token is INVALID_ARGUMENT saying to start again, never INTERNAL."""
    await make_dead(redis_client, A)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await router.ListDeadLetters(rpb.ListDeadLettersRequest(page_token=BAD_TOKENS[case]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in (err.value.details() or "")


async def test_a_position_just_below_the_largest_id_is_a_valid_empty_page(
    router: Any, redis_client: AnyRedis
) -> None:
    """The last position Redis can read after is accepted (and nothing is after it)."""
    await make_dead(redis_client, A)
    state = {"s": "", "p": {A: "18446744073709551615-18446744073709551614"}}
    page = await router.ListDeadLetters(rpb.ListDeadLettersRequest(page_token=token(state)))
    assert (list(page.dead_letters), page.next_page_token) == ([], "")


async def test_dead_letters_of_all_services_are_listed_oldest_first(
    router: Any, redis_client: AnyRedis
) -> None:
    """With no service_name, letters of several services come merged by failure time, on every page size."""
    made = await interleaved(redis_client, [B, A, B, A, A, B, A])
    assert await listed(router) == made
    for size in (1, 2, 3, 4):
        seen: list[str] = []
        page_token = ""
        while True:
            page = await router.ListDeadLetters(
                rpb.ListDeadLettersRequest(page_size=size, page_token=page_token)
            )
            assert len(page.dead_letters) <= size
            seen += [d.id for d in page.dead_letters]
            page_token = page.next_page_token
            if not page_token:
                break
        assert seen == made, f"page_size={size}"
    assert await listed(router, A) == [m for m in made if m.startswith(f"{A}/")]


async def test_paging_continues_with_letters_added_meanwhile(router: Any, redis_client: AnyRedis) -> None:
    """A service still being read when its new letter arrives yields it on a later page."""
    made = await interleaved(redis_client, [A, B, A])
    first = await router.ListDeadLetters(rpb.ListDeadLettersRequest(page_size=2))
    assert [d.id for d in first.dead_letters] == made[:2] and first.next_page_token
    late = await make_dead(redis_client, A)
    rest = await router.ListDeadLetters(
        rpb.ListDeadLettersRequest(page_size=10, page_token=first.next_page_token)
    )
    assert [d.id for d in rest.dead_letters] == [made[2], late]
    assert rest.next_page_token == ""
