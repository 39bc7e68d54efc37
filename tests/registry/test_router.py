"""Router behaviour with in-process SDK sinks: delivery, keys, priorities, retries, dead letters."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import grpc
import pytest

from services.core.config import MeshConfig, with_overrides
from services.registry.sdk import MeshInstance, Message, Reject, Retry
from services.registry.testing import RecordingSink
from tests.registry.conftest import SVC, raw_sink
from tests.waiting import wait_for
from wedsync.events.v1 import events_pb2
from wedsync.registry.v1 import message_pb2 as mpb
from wedsync.registry.v1 import router_pb2 as rpb
from wedsync.registry.v1 import router_pb2_grpc, sink_pb2, sink_pb2_grpc


async def send(router: Any, payload: bytes = b"x", **fields: Any) -> rpb.SendResponse:
    fields.setdefault("to_service", SVC)
    return await router.Send(rpb.SendRequest(message=mpb.Message(payload=payload, **fields)))


async def stats_of(router: Any, service: str = SVC) -> dict[int, rpb.QueueStats]:
    reply = await router.GetQueueStats(rpb.GetQueueStatsRequest(service_name=service))
    return {s.priority: s for s in reply.stats}


async def test_delivery_carries_id_attempt_and_metadata(router: Any, start_sink: Any) -> None:
    """Each Deliver carries the message id, attempt 1 and created_at, in the message and gRPC metadata."""
    sink = RecordingSink()
    await start_sink(SVC, sink, "n1")
    reply = await send(router, b"hello", event_type="wedding.created", headers={"tenant": "t1"})
    await sink.wait_for(1)
    got = sink.messages[0]
    assert (got.message_id, got.attempt, got.payload) == (reply.message_id, 1, b"hello")
    assert got.created_at.ToMilliseconds() > 0 and got.headers["tenant"] == "t1"


async def test_metadata_has_message_id_and_attempt(router: Any, registry_host: Any) -> None:
    """A raw MessageSink server sees wedsync-message-id and wedsync-attempt in the call metadata."""
    got: list[dict[str, str]] = []

    class Sink(sink_pb2_grpc.MessageSinkServiceServicer):
        async def Deliver(self, request: Any, context: Any) -> Any:
            got.append(dict(context.invocation_metadata()))
            return sink_pb2.DeliverResponse(ack=sink_pb2.DELIVERY_ACK_ACCEPTED)

    async with raw_sink(registry_host.port, Sink(), "raw"):
        reply = await send(router)
        await wait_for(lambda: got, what="a delivery")
    assert got[0]["wedsync-message-id"] == reply.message_id
    assert got[0]["wedsync-attempt"] == "1"


async def test_idempotency_key_returns_the_first_id_and_queues_nothing(router: Any, start_sink: Any) -> None:
    """A second Send with a seen idempotency key returns the first message id with duplicate=true."""
    first = await send(router, b"1", idempotency_key="pay-42")
    second = await send(router, b"2", idempotency_key="pay-42")
    assert second.duplicate and not first.duplicate
    assert second.message_id == first.message_id
    other = await send(router, b"3", idempotency_key="pay-42", to_service="analytics-service")
    assert not other.duplicate  # keys are per target service
    sink = RecordingSink()
    await start_sink(SVC, sink, "n1")
    await sink.wait_for(1)
    await wait_for(lambda: _drained(router), what="queue drained")
    assert [m.payload for m in sink.messages] == [b"1"]


async def _drained(router: Any, service: str = SVC) -> bool:
    stats = await stats_of(router, service)
    return all(s.depth == 0 and s.in_flight == 0 and s.delayed == 0 for s in stats.values())


async def test_ordering_key_delivers_one_at_a_time_in_send_order(router: Any, start_sink: Any) -> None:
    """Messages sharing an ordering key arrive in Send order, never two of one key at once."""
    active: dict[str, int] = {}
    overlap: list[str] = []

    async def slow(message: Message) -> None:
        key = message.ordering_key
        active[key] = active.get(key, 0) + 1
        if active[key] > 1:
            overlap.append(key)
        await asyncio.sleep(random.uniform(0, 0.01))
        active[key] -= 1

    sink = RecordingSink(slow)
    await start_sink(SVC, sink, "n1")
    await start_sink(SVC, sink, "n2")
    sent: dict[str, list[str]] = {"a": [], "b": []}
    for i in range(20):
        for key in ("a", "b"):
            reply = await send(router, f"{key}{i}".encode(), ordering_key=key)
            sent[key].append(reply.message_id)
    await sink.wait_for(40, timeout=30)
    for key in ("a", "b"):
        assert [m.message_id for m in sink.messages if m.ordering_key == key] == sent[key]
    assert not overlap


async def test_high_drains_first_and_low_is_not_starved(start_service: Any, fast_config: MeshConfig) -> None:
    """With a backlog of both, HIGH is mostly delivered first while LOW still gets a share early on."""
    host = await start_service("registry", with_overrides(fast_config, {"registry.max_in_flight": 10}))
    sink = RecordingSink()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as ch:
        router = router_pb2_grpc.RouterServiceStub(ch)
        for _ in range(60):
            await send(router, b"low", priority=mpb.MESSAGE_PRIORITY_LOW)
        for _ in range(60):
            await send(router, b"high", priority=mpb.MESSAGE_PRIORITY_HIGH)
        async with MeshInstance(SVC, sink, registry=f"127.0.0.1:{host.port}", instance_id="n1", ttl=2.0):
            await sink.wait_for(120, timeout=60)
    order = [m.payload for m in sink.messages]
    high_ranks = [i for i, p in enumerate(order) if p == b"high"]
    low_ranks = [i for i, p in enumerate(order) if p == b"low"]
    assert sum(high_ranks) / 60 < sum(low_ranks) / 60  # HIGH first on the whole
    assert min(low_ranks) < max(high_ranks)  # LOW not held back until HIGH is empty
    assert len([r for r in low_ranks if r < 60]) >= 3  # a real share while HIGH had a backlog


async def test_retries_then_dead_letter_then_replay(router: Any, start_sink: Any) -> None:
    """A message failing every attempt is retried max_retries times, dead-lettered, then replayed."""
    healed = asyncio.Event()

    async def flaky(message: Message) -> None:
        if not healed.is_set():
            raise Retry("database busy")

    sink = RecordingSink(flaky)
    await start_sink(SVC, sink, "n1")
    reply = await send(router, b"p", max_retries=2)
    await wait_for(lambda: _dead_count(router), what="a dead letter")
    assert [m.attempt for m in sink.messages] == [1, 2, 3]
    page = await router.ListDeadLetters(rpb.ListDeadLettersRequest(service_name=SVC))
    [letter] = page.dead_letters
    assert letter.message.message_id == reply.message_id
    assert letter.attempts == 3 and "database busy" in letter.last_error
    assert letter.last_instance_id == "n1"
    assert (await stats_of(router))[mpb.MESSAGE_PRIORITY_NORMAL].dead_letters == 1
    healed.set()
    replay = await router.ReplayDeadLetters(
        rpb.ReplayDeadLettersRequest(service_name=SVC, ids=[letter.id, f"{SVC}/1-1"])
    )
    assert list(replay.replayed_ids) == [letter.id] and list(replay.not_found_ids) == [f"{SVC}/1-1"]
    await wait_for(lambda: len(sink.messages) == 4, what="replayed delivery")
    assert sink.messages[-1].message_id == reply.message_id and sink.messages[-1].attempt == 1
    assert not (await router.ListDeadLetters(rpb.ListDeadLettersRequest(service_name=SVC))).dead_letters


async def _dead_count(router: Any) -> int:
    page = await router.ListDeadLetters(rpb.ListDeadLettersRequest(service_name=SVC))
    return len(page.dead_letters)


async def test_reject_dead_letters_at_once_and_purge_removes_it(router: Any, start_sink: Any) -> None:
    """A REJECT ack dead-letters without retries; purge deletes the letter and reports unknown ids."""

    async def refuse(message: Message) -> None:
        raise Reject("schema mismatch")

    sink = RecordingSink(refuse)
    await start_sink(SVC, sink, "n1")
    await send(router, b"bad", max_retries=5)
    await wait_for(lambda: _dead_count(router), what="a dead letter")
    assert len(sink.messages) == 1
    [letter] = (await router.ListDeadLetters(rpb.ListDeadLettersRequest())).dead_letters
    assert "schema mismatch" in letter.last_error
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await router.PurgeDeadLetters(rpb.PurgeDeadLettersRequest(service_name=SVC))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    purged = await router.PurgeDeadLetters(rpb.PurgeDeadLettersRequest(ids=[letter.id, f"{SVC}/9-9"]))
    assert purged.purged_count == 1 and list(purged.not_found_ids) == [f"{SVC}/9-9"]
    assert await _dead_count(router) == 0


async def test_dead_letters_page_through(router: Any, start_sink: Any) -> None:
    """ListDeadLetters pages with next_page_token until every letter was seen once."""

    async def refuse(message: Message) -> None:
        raise Reject("no")

    await start_sink(SVC, RecordingSink(refuse), "n1")
    for i in range(5):
        await send(router, str(i).encode())
    await wait_for(lambda: _dead_count_is(router, 5), what="5 dead letters")
    seen: list[str] = []
    token = ""
    while True:
        page = await router.ListDeadLetters(rpb.ListDeadLettersRequest(page_size=2, page_token=token))
        seen += [d.id for d in page.dead_letters]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 5


async def _dead_count_is(router: Any, n: int) -> bool:
    return await _dead_count(router) == n


async def test_messages_wait_while_no_instance_and_stats_show_them(router: Any, start_sink: Any) -> None:
    """With no instance registered, messages stay queued (depth per priority), then flow to a new instance."""
    for priority in (mpb.MESSAGE_PRIORITY_HIGH, mpb.MESSAGE_PRIORITY_LOW, mpb.MESSAGE_PRIORITY_LOW):
        await send(router, priority=priority)
    stats = await stats_of(router)
    assert stats[mpb.MESSAGE_PRIORITY_HIGH].depth == 1
    assert stats[mpb.MESSAGE_PRIORITY_LOW].depth == 2
    assert stats[mpb.MESSAGE_PRIORITY_NORMAL].depth == 0
    sink = RecordingSink()
    await start_sink(SVC, sink, "n1")
    await sink.wait_for(3)
    await wait_for(lambda: _drained(router), what="drained")


async def test_send_validation(router: Any) -> None:
    """Empty to_service and negative max_retries answer INVALID_ARGUMENT."""
    for bad in (mpb.Message(), mpb.Message(to_service=SVC, max_retries=-1), mpb.Message(to_service="a b")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await router.Send(rpb.SendRequest(message=bad))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_publish_fans_out_by_the_default_routes(router: Any, start_sink: Any) -> None:
    """A wedding.* event goes to notification (NORMAL) and analytics (LOW), once per event id."""
    notes, stats = RecordingSink(), RecordingSink()
    await start_sink("notification-service", notes, "n1")
    await start_sink("analytics-service", stats, "a1")
    event = events_pb2.WeddingEvent(id="evt-1", type="wedding.created", wedding_id="w1", source="planner")
    reply = await router.Publish(rpb.PublishRequest(event=event))
    assert [t.service_name for t in reply.targets] == ["notification-service", "analytics-service"]
    again = await router.Publish(rpb.PublishRequest(event=event))
    assert all(t.duplicate for t in again.targets) and list(again.message_ids) == list(reply.message_ids)
    await notes.wait_for(1)
    await stats.wait_for(1)
    got = mpb.Message()
    got.CopyFrom(notes.messages[0])
    assert (
        got.priority == mpb.MESSAGE_PRIORITY_NORMAL and stats.messages[0].priority == mpb.MESSAGE_PRIORITY_LOW
    )
    assert events_pb2.WeddingEvent.FromString(got.payload).id == "evt-1"
    assert got.content_type.endswith("wedsync.events.v1.WeddingEvent")
    none = await router.Publish(
        rpb.PublishRequest(event=events_pb2.WeddingEvent(id="e2", type="guest.added"))
    )
    assert not none.targets


async def test_publish_requires_id_type_and_payload(router: Any) -> None:
    """Publish without an id, or a canonical type without its payload, is INVALID_ARGUMENT."""
    for event in (
        events_pb2.WeddingEvent(type="wedding.created"),
        events_pb2.WeddingEvent(id="e", type="payment.succeeded"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await router.Publish(rpb.PublishRequest(event=event))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_expired_ttl_is_dead_lettered_not_delivered(router: Any, start_sink: Any) -> None:
    """A message older than its ttl at delivery goes to dead letters with reason expired."""
    sink = RecordingSink()
    await start_sink(SVC, sink, "n1")
    message = mpb.Message(to_service=SVC, payload=b"old")
    message.created_at.FromSeconds(int(time.time()) - 60)
    message.ttl.FromSeconds(1)
    await router.Send(rpb.SendRequest(message=message))
    fresh = await send(router, b"fresh")
    await sink.wait_for(1)
    await wait_for(lambda: _dead_count(router), what="expired letter")
    [letter] = (await router.ListDeadLetters(rpb.ListDeadLettersRequest())).dead_letters
    assert "expired" in letter.last_error
    assert sink.message_ids == [fresh.message_id]


async def test_deliver_after_waits_in_the_delayed_set(router: Any, start_sink: Any) -> None:
    """A message with deliver_after in the future is reported delayed and arrives after that time."""
    sink = RecordingSink()
    await start_sink(SVC, sink, "n1")
    message = mpb.Message(to_service=SVC, payload=b"later")
    due = time.time() + 1.0
    message.deliver_after.FromMilliseconds(int(due * 1000))
    await router.Send(rpb.SendRequest(message=message))
    assert (await stats_of(router))[mpb.MESSAGE_PRIORITY_NORMAL].delayed == 1
    await sink.wait_for(1)
    assert time.time() >= due - 0.05


async def test_max_queue_depth_answers_resource_exhausted(
    start_service: Any, fast_config: MeshConfig
) -> None:
    """Send beyond max_queue_depth is refused with RESOURCE_EXHAUSTED; nothing more is queued."""
    host = await start_service("registry", with_overrides(fast_config, {"registry.max_queue_depth": 2}))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as ch:
        router = router_pb2_grpc.RouterServiceStub(ch)
        await send(router)
        await send(router)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await send(router)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await stats_of(router))[mpb.MESSAGE_PRIORITY_NORMAL].depth == 2
