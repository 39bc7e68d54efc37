"""What Send, SendBatch and Publish refuse: INVALID_ARGUMENT before anything is queued, never INTERNAL."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from services.core.queue import DurableQueue
from services.core.redis_client import AnyRedis
from services.registry.admin import services_key
from services.registry.codec import queue_name
from services.registry.testing import RecordingSink
from tests.registry.conftest import SVC
from tests.waiting import wait_for
from wedsync.events.v1 import events_pb2
from wedsync.registry.v1 import message_pb2 as mpb
from wedsync.registry.v1 import router_pb2 as rpb

MAX_TIMESTAMP_S = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a Timestamp may hold


def message(**fields: Any) -> mpb.Message:
    fields.setdefault("to_service", SVC)
    fields.setdefault("payload", b"x")
    return mpb.Message(**fields)


def with_time(field: str, seconds: int, nanos: int = 0, **fields: Any) -> mpb.Message:
    out = message(**fields)
    getattr(out, field).seconds = seconds
    getattr(out, field).nanos = nanos
    return out


# Each would have raised ValueError (or InvalidKeyPart) inside the router: INTERNAL.
BAD_MESSAGES = {
    "deliver_after past year 9999": (with_time("deliver_after", MAX_TIMESTAMP_S + 1), "deliver_after"),
    "deliver_after before year 1": (with_time("deliver_after", -(2**40)), "deliver_after"),
    "deliver_after negative nanos": (with_time("deliver_after", 1_700_000_000, -1), "deliver_after"),
    "created_at past year 9999": (with_time("created_at", 2**62), "created_at"),
    "created_at nanos too big": (with_time("created_at", 1_700_000_000, 10**9), "created_at"),
    "ttl with mixed signs": (with_time("ttl", 5, -1), "ttl"),
    "to_service with a trailing newline": (message(to_service="x\n"), "to_service"),
    "to_service with a space": (message(to_service="a b"), "to_service"),
}


async def _total_depth(router: Any) -> int:
    reply = await router.GetQueueStats(rpb.GetQueueStatsRequest())
    return sum(s.depth + s.delayed for s in reply.stats)


@pytest.mark.parametrize("case", list(BAD_MESSAGES))
async def test_send_refuses_bad_times_and_names(router: Any, case: str) -> None:
    """A time outside protobuf's range or a to_service no key can hold: INVALID_ARGUMENT naming it."""
    bad, field = BAD_MESSAGES[case]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await router.Send(rpb.SendRequest(message=bad))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"message.{field}" in (err.value.details() or "")
    assert await _total_depth(router) == 0


async def test_send_accepts_the_extremes_of_the_timestamp_range(router: Any) -> None:
    """The last valid second of year 9999 is a (far) delayed message, not an error."""
    reply = await router.Send(
        rpb.SendRequest(message=with_time("deliver_after", MAX_TIMESTAMP_S, 999_999_999))
    )
    assert reply.message_id
    stats = await router.GetQueueStats(rpb.GetQueueStatsRequest(service_name=SVC))
    assert sum(s.delayed for s in stats.stats) == 1


async def test_send_batch_refuses_bad_messages_one_by_one_and_queues_the_rest(router: Any) -> None:
    """Bad messages get INVALID_ARGUMENT in their own result; the good ones around them are queued."""
    bad = [m for m, _ in BAD_MESSAGES.values()]
    batch = [message(payload=b"first"), *bad, message(payload=b"last")]
    reply = await router.SendBatch(rpb.SendBatchRequest(messages=batch))
    codes = [r.error_code for r in reply.results]
    assert codes == [0] + [grpc.StatusCode.INVALID_ARGUMENT.value[0]] * len(bad) + [0]
    assert all(r.message_id for r in (reply.results[0], reply.results[-1]))
    assert not any(r.message_id for r in reply.results[1:-1])
    assert all("message." in r.error_message for r in reply.results[1:-1])
    assert await _total_depth(router) == 2


async def test_publish_refuses_an_event_with_a_bad_time_and_queues_nothing(router: Any) -> None:
    """An event time outside protobuf's range would fail in every sink that decodes it: refused up front."""
    event = events_pb2.WeddingEvent(id="evt-1", type="wedding.created", wedding_id="w1")
    event.occurred_at.seconds = MAX_TIMESTAMP_S + 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await router.Publish(rpb.PublishRequest(event=event))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "event.occurred_at" in (err.value.details() or "")
    assert await _total_depth(router) == 0
    event.occurred_at.seconds = 1_700_000_000
    reply = await router.Publish(rpb.PublishRequest(event=event))
    assert len(reply.targets) == 2  # the same event with a valid time fans out


async def test_a_queued_message_with_a_bad_created_at_is_delivered_once(
    router: Any, start_sink: Any, redis_client: AnyRedis
) -> None:
    """A message queued before Send checked created_at is acked after ACCEPTED, not redelivered.

    Its created_at used to raise after the sink accepted: redelivered max_retries+1 times,
    then dead-lettered.
    """
    bad = with_time("created_at", 2**62, message_id="old-1", max_retries=2)
    bad.ttl.seconds = 60  # the ttl check reads created_at too
    queue = DurableQueue(redis_client, queue_name(SVC))
    await queue.enqueue(bad.SerializeToString(), message_id="old-1", max_attempts=3)
    await redis_client.sadd(services_key(), SVC)
    sink = RecordingSink()
    await start_sink(SVC, sink, "n1")
    await sink.wait_for(1)

    async def settled() -> bool:
        stats = (await router.GetQueueStats(rpb.GetQueueStatsRequest(service_name=SVC))).stats
        return all(s.depth == s.in_flight == s.delayed == 0 for s in stats)

    await wait_for(settled, what="the message acked")
    stats = (await router.GetQueueStats(rpb.GetQueueStatsRequest(service_name=SVC))).stats
    assert sum(s.dead_letters for s in stats) == 0
    assert sink.message_ids == ["old-1"]
