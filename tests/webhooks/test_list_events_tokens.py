"""Page tokens are bound to the filters they were issued for (ListEvents, ListDeadLetters).

A token carries each provider's position under one set of filters; continuing it under
others would skip or repeat events without a word, so the server refuses it with a message
that says what to do. The same filters keep paging as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.core.config import MeshConfig
from services.core.server import ServiceHost
from services.webhooks import paging
from tests.waiting import wait_for
from tests.webhooks.conftest import STRIPE_SECRET, SUPPLIER_SECRET
from tests.webhooks.payloads import stripe_headers, supplier_body, supplier_headers
from wedsync.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

Start = Callable[..., Awaitable[ServiceHost]]
Stub = webhooks_pb2_grpc.WebhookIntakeServiceStub
Events = webhooks_pb2.ListEventsRequest
Letters = webhooks_pb2.ListDeadLettersRequest
SUPPLIER = "supplier_platform"
DIFFERENT = "page_token was issued for different filters; start again without it"


@pytest.fixture
async def stub(start_service: Start, wh_config: MeshConfig) -> AsyncIterator[Stub]:
    host = await start_service("webhooks", wh_config)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        yield Stub(channel)


async def refusal(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return refused.value


async def supplier_events(stub: Stub, weddings: list[str]) -> list[str]:
    """Ingest one supplier event per wedding id; wait until history lists them all."""
    ids = []
    for wedding in weddings:
        _, body = supplier_body("booking.confirmed", wedding_id=wedding)
        request = webhooks_pb2.IngestRequest(
            provider_id=SUPPLIER, body=body, headers=supplier_headers(body, SUPPLIER_SECRET)
        )
        ids.append((await stub.Ingest(request)).event_id)

    async def listed() -> bool:
        page = await stub.ListEvents(Events(provider_id=SUPPLIER, page_size=100))
        return {e.event_id for e in page.events} >= set(ids)

    await wait_for(listed, what="events in history")
    return ids


def now_ts() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


async def test_list_events_token_is_refused_when_any_filter_changes(stub: Stub) -> None:
    """A ListEvents token used with another provider, type, wedding, status or time range is
    INVALID_ARGUMENT naming the fix, not silently continued under the new filters."""
    started = Timestamp(seconds=now_ts().seconds - 60)
    await supplier_events(stub, ["wed_a", "wed_b", "wed_a"])
    first = await stub.ListEvents(Events(provider_id=SUPPLIER, start_time=started, page_size=1))
    token = first.next_page_token
    assert token
    changed = [
        Events(start_time=started),  # every provider
        Events(provider_id="stripe", start_time=started),
        Events(provider_id=SUPPLIER, start_time=started, event_type="booking.confirmed"),
        Events(provider_id=SUPPLIER, start_time=started, wedding_id="wed_a"),
        Events(provider_id=SUPPLIER, start_time=started, status=webhooks_pb2.WEBHOOK_EVENT_STATUS_RECEIVED),
        Events(provider_id=SUPPLIER),  # open start
        Events(provider_id=SUPPLIER, start_time=Timestamp(seconds=started.seconds + 1)),
        Events(provider_id=SUPPLIER, start_time=started, end_time=now_ts()),
    ]
    for request in changed:
        request.page_token = token
        refused = await refusal(stub.ListEvents(request))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert refused.details() == DIFFERENT, request


async def test_list_events_token_pages_on_with_the_same_filters(stub: Stub) -> None:
    """With the same filters (page_size and include_raw may change) a token pages through every
    matching event exactly once, as before."""
    started = Timestamp(seconds=now_ts().seconds - 60)
    ids = await supplier_events(stub, ["wed_a", "wed_b", "wed_c"])
    request = Events(provider_id=SUPPLIER, start_time=started, event_type="booking.confirmed", page_size=1)
    seen: list[str] = []
    for page_size in (1, 2, 5):
        request.page_size = page_size
        request.include_raw = page_size == 2
        page = await stub.ListEvents(request)
        seen += [e.event_id for e in page.events]
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    assert sorted(seen) == sorted(ids) and len(seen) == 3


async def test_list_events_unbound_token_of_an_older_replica_is_honoured(stub: Stub) -> None:
    """A token without a filter digest (issued before tokens were bound: a rolling upgrade)
    still continues the listing."""
    ids = await supplier_events(stub, ["wed_a", "wed_b"])
    first = await stub.ListEvents(Events(provider_id=SUPPLIER, page_size=1))
    state = paging.decode(first.next_page_token)
    assert paging.FILTERS_KEY in state
    del state[paging.FILTERS_KEY]
    unbound = paging.encode(state)
    second = await stub.ListEvents(Events(provider_id=SUPPLIER, page_size=1, page_token=unbound))
    assert sorted([first.events[0].event_id, second.events[0].event_id]) == sorted(ids)


async def test_list_events_token_with_a_forged_digest_type_is_malformed(stub: Stub) -> None:
    """A token whose filter digest is not a string is a malformed token, not a server error."""
    forged = paging.encode({"p": {SUPPLIER: ""}, paging.FILTERS_KEY: 7})
    refused = await refusal(stub.ListEvents(Events(provider_id=SUPPLIER, page_token=forged)))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.details() == "malformed page_token"


async def test_dead_letter_token_is_bound_to_its_provider_scope(stub: Stub) -> None:
    """A ListDeadLetters token is refused with another provider_id (one provider's token under
    "all providers" would silently skip the others) and pages on under its own."""
    for n in range(3):  # a payment without the fields the normaliser needs: dead-lettered at once
        body = f'{{"id": "evt_bad{n}", "type": "payment_intent.succeeded", "data": {{}}}}'.encode()
        request = webhooks_pb2.IngestRequest(
            provider_id="stripe", body=body, headers=stripe_headers(body, STRIPE_SECRET)
        )
        await stub.Ingest(request)

    async def three() -> bool:
        return len((await stub.ListDeadLetters(Letters(page_size=10))).dead_letters) == 3

    await wait_for(three, what="three dead letters")
    scoped = await stub.ListDeadLetters(Letters(provider_id="stripe", page_size=1))
    everywhere = await stub.ListDeadLetters(Letters(page_size=1))
    for request in (
        Letters(page_token=scoped.next_page_token),
        Letters(provider_id="stripe", page_token=everywhere.next_page_token),
    ):
        refused = await refusal(stub.ListDeadLetters(request))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.details() == DIFFERENT
    ids = [d.id for d in scoped.dead_letters]
    request = Letters(provider_id="stripe", page_size=1, page_token=scoped.next_page_token)
    while request.page_token:
        page = await stub.ListDeadLetters(request)
        ids += [d.id for d in page.dead_letters]
        request.page_token = page.next_page_token
    assert len(ids) == len(set(ids)) == 3


async def test_ingest_refuses_an_unprintable_or_overlong_remote_addr(stub: Stub) -> None:
    """remote_addr must be at most 256 printable ASCII characters (it goes into log lines); a
    refused delivery is not stored, so the same delivery with a sound address is accepted."""
    _, body = supplier_body("booking.confirmed")
    headers = supplier_headers(body, SUPPLIER_SECRET)

    def ingest(remote_addr: str) -> Any:
        return stub.Ingest(
            webhooks_pb2.IngestRequest(
                provider_id=SUPPLIER, body=body, headers=headers, remote_addr=remote_addr
            )
        )

    for bad in ("203.0.113.7:443\n", "203.0.113.7:443\x1b[2J", "1" * 257, "hôte:443"):
        refused = await refusal(ingest(bad))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert "remote_addr" in (refused.details() or ""), bad
    accepted = await ingest("[2001:db8::1]:443")
    assert accepted.outcome == webhooks_pb2.INGEST_OUTCOME_ACCEPTED
    for fine in ("", "203.0.113.7:443", "1" * 256):
        assert (await ingest(fine)).outcome == webhooks_pb2.INGEST_OUTCOME_DUPLICATE, fine
