"""Streamed delivery (MessageSinkService.DeliverStream) and RouterService.SendBatch.

SDK sinks answer DeliverStream, so every SDK-sink test in this directory (including the
multi-process failover tests in test_failover.py, whose sinks are SDK processes) runs over
the stream; here the unary path is made to fail loudly to prove it. The unary fallback for
sinks without DeliverStream is test_router.py::test_metadata_has_message_id_and_attempt.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from services.registry.sdk import Message, Reject, Retry, SinkServicer
from services.registry.testing import RecordingSink
from tests.registry.conftest import SVC, raw_sink
from tests.waiting import wait_for
from wedsync.registry.v1 import message_pb2 as mpb
from wedsync.registry.v1 import router_pb2 as rpb
from wedsync.registry.v1 import sink_pb2, sink_pb2_grpc


@pytest.fixture
def unary_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every unary Deliver an SDK sink serves (the stream path must make none)."""
    calls: list[str] = []
    original = SinkServicer.Deliver

    async def recording(self: SinkServicer, request: Any, context: Any) -> Any:
        calls.append(request.message.message_id)
        return await original(self, request, context)

    monkeypatch.setattr(SinkServicer, "Deliver", recording)
    return calls


async def send(router: Any, payload: bytes = b"x", **fields: Any) -> rpb.SendResponse:
    fields.setdefault("to_service", SVC)
    return await router.Send(rpb.SendRequest(message=mpb.Message(payload=payload, **fields)))


async def dead_letters(router: Any) -> list[Any]:
    page = await router.ListDeadLetters(rpb.ListDeadLettersRequest(service_name=SVC))
    return list(page.dead_letters)


async def drained(router: Any) -> bool:
    reply = await router.GetQueueStats(rpb.GetQueueStatsRequest(service_name=SVC))
    return all(s.depth == 0 and s.in_flight == 0 and s.delayed == 0 for s in reply.stats)


async def test_ordering_retries_and_dead_letters_over_the_stream(
    router: Any, start_sink: Any, unary_calls: list[str]
) -> None:
    """Over DeliverStream: ordering keys keep Send order; RETRY retries; REJECT, spent retries dead-letter."""

    async def behave(message: Message) -> None:
        if message.payload == b"retry":
            raise Retry("busy")
        if message.payload == b"reject":
            raise Reject("bad")
        await asyncio.sleep(0.002)

    sink = RecordingSink(behave)
    await start_sink(SVC, sink, "n1")
    await start_sink(SVC, sink, "n2")
    ordered = [(await send(router, b"o%d" % i, ordering_key="k")).message_id for i in range(30)]
    plain = [(await send(router, b"p%d" % i)).message_id for i in range(30)]
    retried = (await send(router, b"retry", max_retries=1)).message_id
    rejected = (await send(router, b"reject", max_retries=5)).message_id
    await wait_for(lambda: len(_ids(sink)) >= 62, what="every message delivered", timeout=30)
    await wait_for(lambda: _dead_ids(router, {retried, rejected}), what="two dead letters", timeout=15)
    assert [m.message_id for m in sink.messages if m.ordering_key == "k"] == ordered
    assert set(plain) <= _ids(sink)
    assert [m.attempt for m in sink.messages if m.message_id == retried] == [1, 2]
    assert [m.attempt for m in sink.messages if m.message_id == rejected] == [1]
    letters = {d.message.message_id: d for d in await dead_letters(router)}
    assert "busy" in letters[retried].last_error and "bad" in letters[rejected].last_error
    assert letters[rejected].last_instance_id in ("n1", "n2")
    await wait_for(lambda: drained(router), what="queue drained")
    assert unary_calls == []


def _ids(sink: RecordingSink) -> set[str]:
    return sink.unique_ids


async def _dead_ids(router: Any, wanted: set[str]) -> bool:
    return wanted <= {d.message.message_id for d in await dead_letters(router)}


async def test_no_ack_within_the_deadline_is_a_failed_attempt(
    router: Any, start_sink: Any, unary_calls: list[str]
) -> None:
    """A streamed delivery unanswered for deliver_timeout_s (2 s here) is retried as the next attempt."""

    async def stall_first(message: Message) -> None:
        if message.attempt == 1:
            await asyncio.sleep(3)

    sink = RecordingSink(stall_first)
    await start_sink(SVC, sink, "n1")
    reply = await send(router, b"slow", max_retries=2)
    await wait_for(lambda: [m.attempt for m in sink.messages] == [1, 2], what="attempt 2", timeout=10)
    assert sink.messages[1].message_id == reply.message_id
    await wait_for(lambda: drained(router), what="queue drained", timeout=10)
    assert not await dead_letters(router) and unary_calls == []


async def test_a_stopping_sink_finishes_its_stream_and_the_rest_fail_over(
    router: Any, start_sink: Any, unary_calls: list[str]
) -> None:
    """Stopping an SDK sink mid-flow: what it runs is answered, nothing is lost or dead-lettered."""

    async def slow(message: Message) -> None:
        await asyncio.sleep(0.05)

    first, second = RecordingSink(slow), RecordingSink(slow)
    n1 = await start_sink(SVC, first, "n1")
    await start_sink(SVC, second, "n2")
    sent = {(await send(router, b"m%d" % i)).message_id for i in range(60)}
    await wait_for(lambda: first.messages, what="n1 busy")
    await n1.stop(grace=2.0)
    await wait_for(lambda: sent <= first.unique_ids | second.unique_ids, what="all delivered", timeout=20)
    await wait_for(lambda: drained(router), what="queue drained", timeout=10)
    assert not await dead_letters(router) and unary_calls == []


async def test_send_batch_queues_each_message_as_send_would(router: Any, start_sink: Any) -> None:
    """SendBatch: results in order, refusals per message, idempotency keys, every queued one delivered."""
    first = await send(router, b"earlier", idempotency_key="idem-1")
    messages = [
        mpb.Message(to_service=SVC, payload=b"a"),
        mpb.Message(to_service="", payload=b"no target"),
        mpb.Message(to_service=SVC, payload=b"dup", idempotency_key="idem-1"),
        mpb.Message(to_service=SVC, payload=b"b", message_id="mine", priority=mpb.MESSAGE_PRIORITY_HIGH),
        mpb.Message(to_service=SVC, payload=b"neg", max_retries=-1),
    ]
    reply = await router.SendBatch(rpb.SendBatchRequest(messages=messages))
    ok, bad, dup, mine, neg = reply.results
    assert ok.error_code == 0 and ok.message_id and not ok.duplicate
    assert bad.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and not bad.message_id
    assert "to_service" in bad.error_message
    assert (dup.error_code, dup.message_id, dup.duplicate) == (0, first.message_id, True)
    assert (mine.error_code, mine.message_id, mine.duplicate) == (0, "mine", False)
    assert neg.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    sink = RecordingSink()
    await start_sink(SVC, sink, "n1")
    await sink.wait_for(3)
    assert sink.unique_ids == {first.message_id, ok.message_id, "mine"}
    assert (await router.SendBatch(rpb.SendBatchRequest())).results == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await router.SendBatch(rpb.SendBatchRequest(messages=[mpb.Message(to_service=SVC)] * 1001))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_send_batch_throughput_path_delivers_everything(router: Any, start_sink: Any) -> None:
    """Several large batches in flight at once: every message is delivered once per id."""
    sinks = [RecordingSink(), RecordingSink()]
    await start_sink(SVC, sinks[0], "n1")
    await start_sink(SVC, sinks[1], "n2")

    async def batch(i: int) -> list[str]:
        messages = [mpb.Message(to_service=SVC, payload=b"%d-%d" % (i, j)) for j in range(200)]
        reply = await router.SendBatch(rpb.SendBatchRequest(messages=messages))
        return [r.message_id for r in reply.results]

    sent = {mid for ids in await asyncio.gather(*(batch(i) for i in range(5))) for mid in ids}
    assert len(sent) == 1000
    await wait_for(
        lambda: sent <= sinks[0].unique_ids | sinks[1].unique_ids, what="1000 delivered", timeout=30
    )
    await wait_for(lambda: drained(router), what="queue drained")


async def test_a_sink_without_the_stream_gets_unary_deliver(router: Any, registry_host: Any) -> None:
    """A sink answering UNIMPLEMENTED to DeliverStream gets every message by unary Deliver, none lost."""
    got: list[tuple[str, int, str]] = []

    class UnaryOnly(sink_pb2_grpc.MessageSinkServiceServicer):
        async def Deliver(self, request: Any, context: Any) -> Any:
            meta = dict(context.invocation_metadata())
            got.append((request.message.message_id, request.message.attempt, meta["wedsync-message-id"]))
            return sink_pb2.DeliverResponse(ack=sink_pb2.DELIVERY_ACK_ACCEPTED)

    async with raw_sink(registry_host.port, UnaryOnly(), "old"):
        sent = [(await send(router, b"m%d" % i)).message_id for i in range(30)]
        await wait_for(lambda: {g[0] for g in got} >= set(sent), what="30 unary deliveries", timeout=15)
        await wait_for(lambda: drained(router), what="queue drained")
        assert all(attempt == 1 and mid == meta for mid, attempt, meta in got)
        assert not await dead_letters(router)
