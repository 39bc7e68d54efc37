"""The worker: normalisation, history, retries into dead letters, replay, and the CLI."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.core.config import MeshConfig
from services.core.local_redis import free_port
from services.core.server import ServiceHost
from services.webhooks import paging
from tests.mesh_process import run_wedmesh
from tests.waiting import wait_for
from tests.webhooks.conftest import STRIPE_SECRET, SUPPLIER_SECRET, webhooks_config
from tests.webhooks.payloads import stripe_body, stripe_headers, supplier_body, supplier_headers
from wedsync.events.v1 import events_pb2
from wedsync.registry.v1 import router_pb2, router_pb2_grpc
from wedsync.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

Start = Callable[..., Awaitable[ServiceHost]]
Stub = webhooks_pb2_grpc.WebhookIntakeServiceStub
PROCESSED = webhooks_pb2.WEBHOOK_EVENT_STATUS_PROCESSED


class RecordingRouter(router_pb2_grpc.RouterServiceServicer):
    """A real gRPC RouterService that records what it was asked to publish."""

    def __init__(self) -> None:
        self.published: list[router_pb2.PublishRequest] = []

    async def Publish(self, request: router_pb2.PublishRequest, context: Any) -> router_pb2.PublishResponse:
        self.published.append(request)
        return router_pb2.PublishResponse(message_ids=["m1"])


async def start_router(port: int) -> tuple[grpc.aio.Server, RecordingRouter]:
    server = grpc.aio.server()
    router = RecordingRouter()
    router_pb2_grpc.add_RouterServiceServicer_to_server(router, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, router


@pytest.fixture
async def stub(start_service: Start, wh_config: MeshConfig) -> AsyncIterator[Stub]:
    host = await start_service("webhooks", wh_config)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        yield Stub(channel)


async def ingest(
    stub: Stub, provider: str, body: bytes, headers: dict[str, str]
) -> webhooks_pb2.IngestResponse:
    request = webhooks_pb2.IngestRequest(provider_id=provider, body=body, headers=headers)
    reply: webhooks_pb2.IngestResponse = await stub.Ingest(request)
    return reply


async def processed(stub: Stub, event_id: str) -> webhooks_pb2.WebhookEvent | None:
    got = await stub.GetEvent(webhooks_pb2.GetEventRequest(event_id=event_id))
    return got.event if got.event.status == PROCESSED else None


async def test_stripe_payment_is_normalised_to_payment_succeeded(stub: Stub) -> None:
    """payment_intent.succeeded with wedding metadata becomes a PaymentSucceeded WeddingEvent."""
    evt, body = stripe_body(wedding_id="wed_42", supplier_id="sup_7", payment_type="deposit")
    reply = await ingest(stub, "stripe", body, stripe_headers(body, STRIPE_SECRET))
    event = await wait_for(lambda: processed(stub, reply.event_id), what="processed")
    wedding = event.normalized
    assert wedding.id == reply.event_id and wedding.source_event_id == evt
    assert wedding.WhichOneof("payload") == "payment_succeeded"
    assert (wedding.wedding_id, wedding.supplier_id) == ("wed_42", "sup_7")
    assert wedding.payment_succeeded.amount == events_pb2.Money(amount_minor=50000, currency="GBP")
    assert wedding.attributes["payment_type"] == "deposit"
    assert event.wedding_id == "wed_42" and event.cursor


async def test_list_events_filters_by_type_wedding_and_time_and_pages(stub: Stub) -> None:
    """ListEvents filters by provider, type, wedding and time range, newest first, page by page."""
    started = Timestamp()
    started.GetCurrentTime()
    ids = []
    for wedding in ("wed_a", "wed_b", "wed_a"):
        _, body = supplier_body("booking.confirmed", wedding_id=wedding)
        ids.append(
            (await ingest(stub, "supplier_platform", body, supplier_headers(body, SUPPLIER_SECRET))).event_id
        )
    _, body = stripe_body()
    await ingest(stub, "stripe", body, stripe_headers(body, STRIPE_SECRET))
    for event_id in ids:
        await wait_for(lambda e=event_id: processed(stub, e), what="processed")
    by_wedding = await stub.ListEvents(webhooks_pb2.ListEventsRequest(wedding_id="wed_a"))
    assert sorted(e.event_id for e in by_wedding.events) == sorted([ids[2], ids[0]])
    everything = await stub.ListEvents(webhooks_pb2.ListEventsRequest(start_time=started))
    assert len(everything.events) == 4
    page1 = await stub.ListEvents(
        webhooks_pb2.ListEventsRequest(provider_id="supplier_platform", page_size=2)
    )
    page2 = await stub.ListEvents(
        webhooks_pb2.ListEventsRequest(
            provider_id="supplier_platform", page_size=2, page_token=page1.next_page_token
        )
    )
    paged = [e.event_id for e in page1.events] + [e.event_id for e in page2.events]
    assert len(page1.events) == 2 and sorted(paged) == sorted(ids)  # every event once, across pages
    future = Timestamp(seconds=int(time.time()) + 3600)
    assert not (await stub.ListEvents(webhooks_pb2.ListEventsRequest(start_time=future))).events
    typed = await stub.ListEvents(webhooks_pb2.ListEventsRequest(event_type="payment_intent.succeeded"))
    assert [e.provider_id for e in typed.events] == ["stripe"]
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.ListEvents(webhooks_pb2.ListEventsRequest(page_token="%%%"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_get_event_hides_raw_unless_asked_and_redacts_signatures(stub: Stub) -> None:
    """GetEvent returns raw body/headers only with include_raw, and never the signature."""
    _, body = stripe_body()
    reply = await ingest(stub, "stripe", body, stripe_headers(body, STRIPE_SECRET))
    await wait_for(lambda: processed(stub, reply.event_id), what="processed")
    plain = await stub.GetEvent(webhooks_pb2.GetEventRequest(event_id=reply.event_id))
    raw = await stub.GetEvent(webhooks_pb2.GetEventRequest(event_id=reply.event_id, include_raw=True))
    assert plain.event.raw_body == b"" and raw.event.raw_body == body
    assert raw.event.headers["stripe-signature"] == "[redacted]"
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetEvent(webhooks_pb2.GetEventRequest(event_id="whe_nope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def cli(config_path: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``wedmesh dlq webhooks ...`` as a real process (without blocking this loop)."""
    env = {**os.environ, "WEDMESH_CONFIG": config_path}
    return await run_wedmesh("dlq", "webhooks", *args, env=env)


@pytest.mark.slow
async def test_retries_exhausted_then_dead_letter_then_replay_processes_once(
    start_service: Start, mesh_config: MeshConfig, secrets_env: dict[str, str], tmp_path: Any
) -> None:
    """Router down: 3 attempts, then a dead letter with attempts and error; replay (CLI) → processed once."""
    router_port = free_port()
    config = webhooks_config(
        mesh_config,
        **{"webhooks.router_address": f"127.0.0.1:{router_port}", "webhooks.router_timeout_s": 0.3},
    )
    host = await start_service("webhooks", config)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        stub = Stub(channel)
        _, body = supplier_body("booking.cancelled")
        reply = await ingest(stub, "supplier_platform", body, supplier_headers(body, SUPPLIER_SECRET))

        async def dead() -> Any:
            page = await stub.ListDeadLetters(
                webhooks_pb2.ListDeadLettersRequest(provider_id="supplier_platform")
            )
            return page.dead_letters

        letters = await wait_for(dead, timeout=30, what="dead letter")
        assert letters[0].attempts == 3 and letters[0].event.event_id == reply.event_id
        assert "router Publish failed" in letters[0].last_error
        got = await stub.GetEvent(webhooks_pb2.GetEventRequest(event_id=reply.event_id))
        assert got.event.status == webhooks_pb2.WEBHOOK_EVENT_STATUS_DEAD_LETTERED

        server, router = await start_router(router_port)
        try:
            config_file = tmp_path / "mesh.toml"
            config_file.write_text(f"[webhooks]\nport = {host.port}\n")
            listed = await cli(str(config_file), "list", "--provider", "supplier_platform")
            assert listed.returncode == 0, listed.stderr
            assert reply.event_id in listed.stdout
            refused = await cli(str(config_file), "purge", "--provider", "supplier_platform")
            assert refused.returncode == 1
            replayed = await cli(
                str(config_file),
                "replay",
                "--provider",
                "supplier_platform",
                "--id",
                letters[0].id,
                "--id",
                "1-1",
            )
            assert replayed.returncode == 0, replayed.stderr
            assert '"not_found_ids": ["1-1"]' in replayed.stdout and '"replayed_count": 1' in replayed.stdout
            event = await wait_for(
                lambda: processed(stub, reply.event_id), timeout=30, what="processed after replay"
            )
            assert event.normalized.WhichOneof("payload") == "booking_cancelled"
            assert [p.idempotency_key for p in router.published] == [reply.event_id]
            assert not await dead()
        finally:
            await server.stop(None)


async def test_purge_all_requires_all_flag_and_deletes(
    start_service: Start, mesh_config: MeshConfig, secrets_env: dict[str, str]
) -> None:
    """A normaliser-proof bad event dead-letters at once; Purge needs ids or all=true, then deletes it."""
    host = await start_service("webhooks", webhooks_config(mesh_config))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        stub = Stub(channel)
        body = b'{"id": "evt_bad", "type": "payment_intent.succeeded", "data": {}}'
        await ingest(stub, "stripe", body, stripe_headers(body, STRIPE_SECRET))

        async def letters() -> Any:
            return (await stub.ListDeadLetters(webhooks_pb2.ListDeadLettersRequest())).dead_letters

        found = await wait_for(letters, what="dead letter")
        assert found[0].attempts == 1 and "PermanentError" in found[0].last_error
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.PurgeDeadLetters(webhooks_pb2.PurgeDeadLettersRequest(provider_id="stripe"))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        purged = await stub.PurgeDeadLetters(webhooks_pb2.PurgeDeadLettersRequest(all=True))
        assert list(purged.purged_ids) == [found[0].id]
        assert not await letters()


async def test_dead_letters_page_and_replay_all(
    start_service: Start, mesh_config: MeshConfig, secrets_env: dict[str, str]
) -> None:
    """Three dead letters page as 2 + 1 with a token; replay with no ids re-queues all of them."""
    host = await start_service("webhooks", webhooks_config(mesh_config))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        stub = Stub(channel)
        for n in range(3):
            body = f'{{"id": "evt_bad{n}", "type": "payment_intent.succeeded", "data": {{}}}}'.encode()
            await ingest(stub, "stripe", body, stripe_headers(body, STRIPE_SECRET))

        async def three() -> bool:
            page = await stub.ListDeadLetters(webhooks_pb2.ListDeadLettersRequest(page_size=10))
            return len(page.dead_letters) == 3

        await wait_for(three, what="three dead letters")
        first = await stub.ListDeadLetters(webhooks_pb2.ListDeadLettersRequest(page_size=2))
        rest = await stub.ListDeadLetters(
            webhooks_pb2.ListDeadLettersRequest(page_size=2, page_token=first.next_page_token)
        )
        ids = [d.id for d in first.dead_letters] + [d.id for d in rest.dead_letters]
        assert len(first.dead_letters) == 2 and first.next_page_token and len(set(ids)) == 3
        replayed = await stub.ReplayDeadLetters(webhooks_pb2.ReplayDeadLettersRequest(provider_id="stripe"))
        assert replayed.replayed_count == 3 and sorted(replayed.replayed_ids) == sorted(ids)


async def test_dead_letters_list_oldest_failure_first_across_providers(
    start_service: Start, mesh_config: MeshConfig, secrets_env: dict[str, str]
) -> None:
    """With no provider filter, letters of different providers interleave by failure time
    (not provider by provider), across pages."""
    host = await start_service("webhooks", webhooks_config(mesh_config))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        stub = Stub(channel)
        order: list[str] = []
        for n in range(4):
            provider = ("supplier_platform", "stripe")[n % 2]  # "stripe" sorts first: order is by time
            if provider == "stripe":
                body = json.dumps({"id": f"evt_bad{n}", "type": "payment_intent.succeeded", "data": {}})
                headers = stripe_headers(body.encode(), STRIPE_SECRET)
            else:
                slots = [{"capacity": "many"}]
                body = json.dumps(
                    {"id": f"evt_bad{n}", "type": "availability.updated", "data": {"slots": slots}}
                )
                headers = supplier_headers(body.encode(), SUPPLIER_SECRET)
            await ingest(stub, provider, body.encode(), headers)

            async def letters(n: int = n) -> bool:
                page = await stub.ListDeadLetters(webhooks_pb2.ListDeadLettersRequest(page_size=10))
                return len(page.dead_letters) == n + 1

            await wait_for(letters, what=f"dead letter {n}")  # failures one after another
            order.append(provider)
        first = await stub.ListDeadLetters(webhooks_pb2.ListDeadLettersRequest(page_size=3))
        rest = await stub.ListDeadLetters(
            webhooks_pb2.ListDeadLettersRequest(page_size=3, page_token=first.next_page_token)
        )
        listed = [*first.dead_letters, *rest.dead_letters]
        assert [d.event.provider_id for d in listed] == order
        assert [d.failed_at.ToMilliseconds() for d in listed] == sorted(
            d.failed_at.ToMilliseconds() for d in listed
        )
        assert not rest.next_page_token


async def test_hostile_cursors_tokens_and_ranges_are_client_errors_never_internal(stub: Stub) -> None:
    """Ids Redis would refuse, forged page tokens and impossible ranges answer INVALID_ARGUMENT
    (or the honest OUT_OF_RANGE / empty answer), never INTERNAL."""

    async def code_of(call: Any) -> grpc.StatusCode:
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    def token(state: Any) -> str:
        return paging.encode(state)

    too_big = "99999999999999999999-0"
    biggest = f"{2**64 - 1}-{2**64 - 1}"
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    sub = webhooks_pb2.SubscribeRequest
    assert await code_of(stub.Subscribe(sub(after_cursor=too_big)).read()) == invalid
    assert await code_of(stub.Subscribe(sub(after_cursor="1-0\n")).read()) == invalid  # `$` allowed it
    assert await code_of(stub.Subscribe(sub(after_cursor=biggest)).read()) == grpc.StatusCode.OUT_OF_RANGE
    events = webhooks_pb2.ListEventsRequest
    for state in ({"p": {"stripe": "0-0"}}, {"p": {"stripe": too_big}}, {"p": "stripe"}):
        assert await code_of(stub.ListEvents(events(page_token=token(state)))) == invalid, state
    nested = base64.urlsafe_b64encode(b"[" * 100_000).decode()
    assert await code_of(stub.ListEvents(events(page_token=nested))) == invalid
    assert await code_of(stub.ListEvents(events(start_time=Timestamp(seconds=-5)))) == invalid
    assert await code_of(stub.ListEvents(events(status=99))) == invalid  # type: ignore[arg-type]
    assert not (await stub.ListEvents(events(end_time=Timestamp(seconds=0)))).events  # before the epoch
    now = Timestamp()
    now.GetCurrentTime()
    assert not (await stub.ListEvents(events(start_time=now, end_time=now))).events  # empty, not invalid
    letters = webhooks_pb2.ListDeadLettersRequest
    for state in ({"p": {"stripe": biggest}}, {"p": {"nobody": ""}}, {"p": "stripe", "a": 5}):
        assert await code_of(stub.ListDeadLetters(letters(page_token=token(state)))) == invalid, state
    replayed = await stub.ReplayDeadLetters(webhooks_pb2.ReplayDeadLettersRequest(ids=[too_big, "x"]))
    assert sorted(replayed.not_found_ids) == sorted([too_big, "x"])
