"""Subscribe: live tail with filters, resume from a cursor, a slow client cut off alone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from services.core.config import MeshConfig, with_overrides
from services.core.server import ServiceHost
from tests.webhooks.conftest import STRIPE_SECRET, SUPPLIER_SECRET
from tests.webhooks.payloads import stripe_body, stripe_headers, supplier_body, supplier_headers
from wedsync.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

Start = Callable[..., Awaitable[ServiceHost]]
# No BDP probing: the client's receive window stays at 64 KiB, so a client that stops
# reading really does stop the server's writes to it.
SMALL_WINDOW = [("grpc.http2.bdp_probe", 0)]


@pytest.fixture
async def host(start_service: Start, wh_config: MeshConfig) -> ServiceHost:
    return await start_service("webhooks", with_overrides(wh_config, {"webhooks.subscriber_buffer": 4}))


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
