"""Backpressure over real HTTP: a provider's full queue answers 503 + Retry-After, never loses an event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import REGISTRY

from services.core.config import MeshConfig, with_overrides
from services.core.local_redis import free_port
from services.core.queue import DurableQueue
from services.core.server import ServiceHost
from services.webhooks.intake import QUEUE_FULL_RETRY_AFTER_S
from services.webhooks.providers import queue_name
from services.webhooks.settings import DEFAULT_MAX_QUEUE_DEPTH, ProviderConfig
from tests.waiting import wait_for
from tests.webhooks.conftest import STRIPE_SECRET, Shim, webhooks_config
from tests.webhooks.payloads import stripe_body, stripe_headers
from wedsync.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

Start = Callable[..., Awaitable[ServiceHost]]
RunShim = Callable[..., Awaitable[Shim]]
LIMIT = 3
PROCESSED = webhooks_pb2.WEBHOOK_EVENT_STATUS_PROCESSED
REJECTED = "wedmesh_webhooks_rejected_total"


@pytest.fixture
def limited(mesh_config: MeshConfig, secrets_env: dict[str, str]) -> MeshConfig:
    """Stripe limited to LIMIT waiting events; this process runs intake only (no worker)."""
    return webhooks_config(
        mesh_config,
        **{
            "webhooks.providers.stripe.max_queue_depth": LIMIT,
            "webhooks.worker_enabled": False,
            "webhooks.stats_refresh_s": 0.05,
        },
    )


def gauge(name: str, **labels: str) -> float | None:
    """A metric of this process (the services under test run in it)."""
    return REGISTRY.get_sample_value(name, {"provider": "stripe", **labels})


async def post_new(shim: Shim) -> tuple[bytes, Any]:
    _, body = stripe_body()
    return body, await shim.post("stripe", body, stripe_headers(body, STRIPE_SECRET))


async def all_processed(channel: grpc.aio.Channel, event_ids: list[str]) -> bool:
    stub = webhooks_pb2_grpc.WebhookIntakeServiceStub(channel)
    for event_id in event_ids:
        got = await stub.GetEvent(webhooks_pb2.GetEventRequest(event_id=event_id))
        if got.event.status != PROCESSED:
            return False
    return True


def test_default_limit_is_generous_and_zero_turns_it_off() -> None:
    """Every provider gets a finite default limit; 0 means no limit and negatives fail at load."""
    base = {"scheme": "stripe", "secrets_env": "X"}
    assert ProviderConfig.model_validate(base).max_queue_depth == DEFAULT_MAX_QUEUE_DEPTH > 0
    assert ProviderConfig.model_validate({**base, "max_queue_depth": 0}).max_queue_depth == 0
    with pytest.raises(ValueError, match="max_queue_depth"):
        ProviderConfig.model_validate({**base, "max_queue_depth": -1})


async def test_full_provider_queue_answers_503_then_accepts_after_a_worker_drains(
    start_service: Start, run_shim: RunShim, limited: MeshConfig, redis_client: Any
) -> None:
    """At the limit a new webhook gets 503 + Retry-After, a duplicate 200; after a drain all are taken."""
    intake = await start_service("webhooks", limited)
    shim = await run_shim(intake)
    accepted: list[str] = []
    bodies: list[bytes] = []
    for _ in range(LIMIT):
        body, reply = await post_new(shim)
        assert reply.status_code == 200, reply.text
        assert reply.json()["status"] == "accepted"
        accepted.append(reply.json()["event_id"])
        bodies.append(body)

    full_before = gauge(REJECTED, code="QUEUE_FULL") or 0
    refused_body, refused = await post_new(shim)
    assert refused.status_code == 503, refused.text
    assert gauge(REJECTED, code="QUEUE_FULL") == full_before + 1  # told apart from Redis down
    assert int(refused.headers["retry-after"]) == QUEUE_FULL_RETRY_AFTER_S  # intake's own delay
    assert "webhooks.providers.stripe.max_queue_depth" in refused.json()["error"]  # and its message
    repeat = await shim.post("stripe", bodies[0], stripe_headers(bodies[0], STRIPE_SECRET))
    assert repeat.status_code == 200, repeat.text
    assert repeat.json() == {"event_id": accepted[0], "status": "duplicate"}
    queue = DurableQueue(redis_client, queue_name("stripe"))
    assert (await queue.stats()).backlog == LIMIT
    await wait_for(lambda: gauge("wedmesh_webhooks_backlog") == LIMIT, what="the backlog gauge at the limit")
    assert (gauge("wedmesh_webhooks_oldest_age_seconds") or 0) > 0

    # A second webhooks process on the same Redis, with its worker on, drains the backlog.
    await start_service(
        "webhooks", with_overrides(limited, {"webhooks.worker_enabled": True, "webhooks.port": free_port()})
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{intake.port}") as channel:
        await wait_for(lambda: all_processed(channel, accepted), what="the held events processed")
        assert (await queue.stats()).backlog == 0
        await wait_for(lambda: gauge("wedmesh_webhooks_backlog") == 0, what="the backlog gauge at 0")

        again = await shim.post("stripe", refused_body, stripe_headers(refused_body, STRIPE_SECRET))
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "accepted"  # the refused event was never remembered
        accepted.append(again.json()["event_id"])
        await wait_for(lambda: all_processed(channel, accepted), what="every accepted event processed")
    assert len(set(accepted)) == LIMIT + 1


async def fill(stub: webhooks_pb2_grpc.WebhookIntakeServiceStub, count: int) -> None:
    for _ in range(count):
        _, body = stripe_body()
        request = webhooks_pb2.IngestRequest(
            provider_id="stripe", body=body, headers=stripe_headers(body, STRIPE_SECRET)
        )
        reply = await stub.Ingest(request)
        assert reply.outcome == webhooks_pb2.INGEST_OUTCOME_ACCEPTED


async def test_grpc_ingest_past_the_limit_is_unavailable_naming_provider_and_knob(
    start_service: Start, limited: MeshConfig
) -> None:
    """Over gRPC a full queue is UNAVAILABLE with RetryInfo and a message naming the provider and knob."""
    intake = await start_service("webhooks", limited)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{intake.port}") as channel:
        stub = webhooks_pb2_grpc.WebhookIntakeServiceStub(channel)
        await fill(stub, LIMIT)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await fill(stub, 1)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "'stripe'" in (err.value.details() or "")
    assert "webhooks.providers.stripe.max_queue_depth = 3" in (err.value.details() or "")
    status = rpc_status.from_call(err.value)
    assert status is not None
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert info.retry_delay.ToTimedelta().total_seconds() > 0


async def test_embedded_shim_answers_503_with_the_reason(start_service: Start, limited: MeshConfig) -> None:
    """The shim inside the webhooks process gives the same 503 + Retry-After, with the knob in the body."""
    port = free_port()
    intake = await start_service("webhooks", with_overrides(limited, {"webhooks.http_port": port}))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{intake.port}") as channel:
        await fill(webhooks_pb2_grpc.WebhookIntakeServiceStub(channel), LIMIT)
    async with httpx.AsyncClient(timeout=15.0) as client:
        shim = Shim(f"http://127.0.0.1:{port}", client)
        await wait_for(lambda: healthy(client, shim.url), what="embedded shim up")
        _, reply = await post_new(shim)
    assert reply.status_code == 503, reply.text
    assert int(reply.headers["retry-after"]) > 0
    assert "max_queue_depth" in reply.json()["error"]


async def healthy(client: httpx.AsyncClient, url: str) -> bool:
    return (await client.get(f"{url}/healthz")).status_code == 200
