"""Router backpressure: ``max_queue_depth`` is enforced atomically by the queue's enqueue script."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.core.config import MeshConfig, with_overrides
from services.core.queue import RetryableError
from services.webhooks.worker import RouterPublisher
from tests.registry.conftest import SVC
from wedsync.events.v1 import events_pb2
from wedsync.registry.v1 import message_pb2 as mpb
from wedsync.registry.v1 import router_pb2 as rpb
from wedsync.registry.v1 import router_pb2_grpc

LIMIT = 10


@pytest.fixture
async def limited_router(start_service: Any, fast_config: MeshConfig) -> AsyncIterator[Any]:
    """A router whose target queues take at most LIMIT waiting messages (no sink: nothing drains)."""
    host = await start_service("registry", with_overrides(fast_config, {"registry.max_queue_depth": LIMIT}))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        yield router_pb2_grpc.RouterServiceStub(channel)


async def send(router: Any, **fields: Any) -> rpb.SendResponse:
    reply: rpb.SendResponse = await router.Send(
        rpb.SendRequest(message=mpb.Message(to_service=SVC, payload=b"x", **fields))
    )
    return reply


async def test_fifty_concurrent_sends_at_limit_ten_accept_exactly_ten(limited_router: Any) -> None:
    """50 concurrent Sends against max_queue_depth 10: exactly 10 accepted, 40 RESOURCE_EXHAUSTED."""
    results = await asyncio.gather(*(send(limited_router) for _ in range(50)), return_exceptions=True)
    accepted = [r for r in results if isinstance(r, rpb.SendResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert (len(accepted), len(refused)) == (10, 40)
    assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    reply = await limited_router.GetQueueStats(rpb.GetQueueStatsRequest(service_name=SVC))
    assert sum(s.depth for s in reply.stats) == LIMIT


async def test_refusal_carries_retry_info_and_names_the_knob(limited_router: Any) -> None:
    """A Send past the limit carries google.rpc.RetryInfo and names registry.max_queue_depth."""
    for _ in range(LIMIT):
        await send(limited_router)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await send(limited_router)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "registry.max_queue_depth = 10" in (err.value.details() or "")
    assert SVC in (err.value.details() or "")
    status = rpc_status.from_call(err.value)
    assert status is not None
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay.ToTimedelta().total_seconds() > 0


async def test_repeated_idempotency_key_is_a_duplicate_when_full(limited_router: Any) -> None:
    """At the limit a Send repeating a held message's idempotency key answers duplicate, not an error."""
    first = await send(limited_router, idempotency_key="order-1")
    for _ in range(LIMIT - 1):
        await send(limited_router)
    again = await send(limited_router, idempotency_key="order-1")
    assert (again.message_id, again.duplicate) == (first.message_id, True)
    with pytest.raises(grpc.aio.AioRpcError):
        await send(limited_router, idempotency_key="order-2")


async def test_webhooks_worker_waits_as_long_as_a_full_router_asks(
    start_service: Any, fast_config: MeshConfig
) -> None:
    """The webhooks worker's publisher turns a full router's RetryInfo into the event's retry delay."""
    host = await start_service("registry", with_overrides(fast_config, {"registry.max_queue_depth": LIMIT}))
    publisher = RouterPublisher(f"127.0.0.1:{host.port}", 5.0)
    try:
        for n in range(LIMIT):  # wedding.* fans out to services with no instance: nothing drains
            await publisher.publish(events_pb2.WeddingEvent(id=f"evt-{n}", type="wedding.created"))
        with pytest.raises(RetryableError) as err:
            await publisher.publish(events_pb2.WeddingEvent(id="evt-full", type="wedding.created"))
    finally:
        await publisher.close()
    assert "RESOURCE_EXHAUSTED" in str(err.value)
    assert err.value.retry_after is not None and err.value.retry_after > 0
