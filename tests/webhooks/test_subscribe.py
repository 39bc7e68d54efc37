"""Subscribe: live tail with filters, resume from a cursor, a slow client cut off alone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from services.core.config import MeshConfig, with_overrides
from services.core.server import ServiceHost
from services.webhooks.feed import parse_cursor
from services.webhooks.layout import stream_key
from tests.waiting import wait_for
from tests.webhooks.conftest import STRIPE_SECRET, SUPPLIER_SECRET
from tests.webhooks.payloads import stripe_body, stripe_headers, supplier_body, supplier_headers
from wedsync.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

Start = Callable[..., Awaitable[ServiceHost]]
# No BDP probing: the client's receive window stays at 64 KiB, so a client that stops
# reading really does stop the server's writes to it.
SMALL_WINDOW = [("grpc.http2.bdp_probe", 0)]


@pytest.fixture
async def host(start_service: Start, wh_config: MeshConfig) -> ServiceHost:
    # A buffer of 4 makes "too slow" quick to reach; it is smaller than a worker batch, so
    # events are read one at a time here (a batch's burst would fill it at once).
    overrides = {"webhooks.subscriber_buffer": 4, "webhooks.worker_batch_wait_s": 0}
    return await start_service("webhooks", with_overrides(wh_config, overrides))


async def send_supplier(stub: Any, pad: int = 0, wedding: str = "wed_s") -> str:
    _, body = supplier_body(wedding_id=wedding)
    if pad:
        doc = json.loads(body)
        doc["pad"] = "x" * pad
        body = json.dumps(doc).encode()
    reply = await stub.Ingest(
        webhooks_pb2.IngestRequest(
            provider_id="supplier_platform", body=body, headers=supplier_headers(body, SUPPLIER_SECRET)
        )
    )
    return str(reply.event_id)


@pytest.fixture
async def stub(host: ServiceHost) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        yield webhooks_pb2_grpc.WebhookIntakeServiceStub(channel)


async def test_filters_and_resume_from_cursor(stub: Any, host: ServiceHost) -> None:
    """A filtered subscriber sees only its provider's events, and resuming after a cursor skips nothing."""
    call = stub.Subscribe(
        webhooks_pb2.SubscribeRequest(provider_ids=["supplier_platform"], from_beginning=True)
    )
    _, body = stripe_body()
    await stub.Ingest(
        webhooks_pb2.IngestRequest(
            provider_id="stripe", body=body, headers=stripe_headers(body, STRIPE_SECRET)
        )
    )
    ids = [await send_supplier(stub) for _ in range(3)]
    got = []
    async for item in call:
        got.append(item)
        if len(got) == 3:
            break
    call.cancel()
    assert sorted(g.event.event_id for g in got) == sorted(ids)  # stream order = processing order
    assert all(g.event.normalized.WhichOneof("payload") == "booking_confirmed" for g in got)
    resumed = stub.Subscribe(
        webhooks_pb2.SubscribeRequest(
            provider_ids=["supplier_platform"], after_cursor=got[0].cursor, include_raw=True
        )
    )
    rest = [await resumed.read(), await resumed.read()]
    resumed.cancel()
    assert [r.event.event_id for r in rest] == [g.event.event_id for g in got[1:]]
    assert got[0].event.raw_body == b"" and json.loads(rest[0].event.raw_body)["type"] == "booking.confirmed"
    assert rest[0].event.headers["x-supplier-signature"] == "[redacted]"
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.Subscribe(webhooks_pb2.SubscribeRequest(after_cursor="nope")).read()
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_feed_reads_nothing_without_subscribers_and_a_live_one_misses_nothing(
    stub: Any, host: ServiceHost, redis_client: Any
) -> None:
    """With no subscriber the feed issues no XREAD (an intake-only process would read every
    processed event for nobody). A live subscriber (no cursor) then gets everything sent
    after it started, without a gap, and nothing processed before."""
    await redis_client.config_resetstat()
    before = [await send_supplier(stub) for _ in range(3)]
    for event_id in before:
        await wait_for(
            lambda e=event_id: _status(stub, e),
            what=f"{event_id} processed",
        )
    stats = await redis_client.info("commandstats")
    assert "cmdstat_xread" not in stats, stats.get("cmdstat_xread")

    call = stub.Subscribe(webhooks_pb2.SubscribeRequest(provider_ids=["supplier_platform"]))
    after = [await send_supplier(stub) for _ in range(5)]
    got: list[str] = []
    async for item in call:
        got.append(item.event.event_id)
        if got[-1] == after[-1]:
            break
    call.cancel()
    assert not set(got) & set(before)
    assert got == after[len(after) - len(got) :], (got, after)  # a suffix: no gap after joining


async def test_a_cursor_past_the_retained_stream_is_out_of_range(
    stub: Any, host: ServiceHost, redis_client: Any
) -> None:
    """Resuming after events were trimmed away answers OUT_OF_RANGE instead of silently
    skipping them (the proto's contract); a retained cursor resumes; a cursor from nowhere
    (ahead of the newest event) is refused too."""

    async def resume(cursor: str) -> Any:  # a deadline: a missed refusal fails fast, not at the timeout
        return await stub.Subscribe(webhooks_pb2.SubscribeRequest(after_cursor=cursor), timeout=10).read()

    with pytest.raises(grpc.aio.AioRpcError) as nothing_yet:  # no stream at all yet
        await resume("5-0")
    assert nothing_yet.value.code() == grpc.StatusCode.OUT_OF_RANGE
    call = stub.Subscribe(webhooks_pb2.SubscribeRequest(from_beginning=True))
    sent = [await send_supplier(stub) for _ in range(3)]
    cursors: dict[str, str] = {}
    async for item in call:
        cursors[item.event.event_id] = item.cursor
        if len(cursors) == len(sent):
            break
    call.cancel()
    first, second, third = sorted(cursors.values(), key=parse_cursor)
    await redis_client.xtrim(stream_key(), minid=third, approximate=False)  # the retention passes two

    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await resume(first)
    assert gone.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "is no longer retained" in (gone.value.details() or "")
    assert f"oldest retained cursor: {third}" in (gone.value.details() or "")
    assert "from_beginning" in (gone.value.details() or "")

    with pytest.raises(grpc.aio.AioRpcError) as trimmed:  # its successor is retained, but
        await resume(second)  # Redis keeps no record of which ids a trim removed: a false alarm
    assert trimmed.value.code() == grpc.StatusCode.OUT_OF_RANGE
    after_oldest = stub.Subscribe(webhooks_pb2.SubscribeRequest(from_beginning=True))
    assert (await after_oldest.read()).cursor == third  # what that client then asks for
    after_oldest.cancel()

    with pytest.raises(grpc.aio.AioRpcError) as ahead:
        await resume("99999999999999-0")
    assert ahead.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "ahead of the newest event" in (ahead.value.details() or "")

    live = stub.Subscribe(webhooks_pb2.SubscribeRequest(after_cursor=third))
    later = await send_supplier(stub)
    assert (await live.read()).event.event_id == later
    live.cancel()


async def _status(stub: Any, event_id: str) -> bool:
    reply = await stub.GetEvent(webhooks_pb2.GetEventRequest(event_id=event_id))
    return bool(reply.event.status == webhooks_pb2.WEBHOOK_EVENT_STATUS_PROCESSED)


@pytest.mark.slow
async def test_slow_subscriber_is_cut_off_alone_and_resumes_from_its_cursor(
    host: ServiceHost, stub: Any
) -> None:
    """Of two subscribers the fast one gets every event; the stalled one is cut, then resumes."""
    address = f"127.0.0.1:{host.port}"
    async with (
        grpc.aio.insecure_channel(address) as fast_ch,
        grpc.aio.insecure_channel(address, options=SMALL_WINDOW) as slow_ch,
    ):
        fast = webhooks_pb2_grpc.WebhookIntakeServiceStub(fast_ch).Subscribe(
            webhooks_pb2.SubscribeRequest(from_beginning=True)
        )
        slow = webhooks_pb2_grpc.WebhookIntakeServiceStub(slow_ch).Subscribe(
            webhooks_pb2.SubscribeRequest(include_raw=True, from_beginning=True)
        )
        first = await send_supplier(stub, pad=16_000)
        assert (await fast.read()).event.event_id == first
        first_item = await slow.read()
        assert first_item.event.event_id == first
        first_cursor = first_item.cursor
        sent = [first] + [await send_supplier(stub, pad=16_000) for _ in range(29)]
        fast_got = [first]
        while len(fast_got) < len(sent):
            fast_got.append((await fast.read()).event.event_id)
        assert sorted(fast_got) == sorted(sent)
        slow_got = [first]
        last_cursor = first_cursor
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            while True:
                item = await slow.read()
                if item is grpc.aio.EOF:
                    break
                slow_got.append(item.event.event_id)
                last_cursor = item.cursor
        assert cut.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "resume with after_cursor" in (cut.value.details() or "")
        assert len(slow_got) < len(sent)
        resumed = webhooks_pb2_grpc.WebhookIntakeServiceStub(slow_ch).Subscribe(
            webhooks_pb2.SubscribeRequest(after_cursor=last_cursor)
        )
        while len(slow_got) < len(sent):
            slow_got.append((await resumed.read()).event.event_id)
        resumed.cancel()
        fast.cancel()
        assert slow_got == fast_got  # same stream order: nothing lost, nothing twice
