"""Dead-letter operations over the providers' queues: list (paged), replay, purge.

Dead ids are stream ids of one provider's dead-letter stream. With no provider given, ids
are looked up provider by provider (sorted by id) and the first that holds an id acts on
it. The queue's replay/purge return counts only; to report which ids were acted on and
which did not exist, ids are checked (one pipelined XRANGE each) before acting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.core.errors import InvalidArgument, NotFound, translate_redis_errors
from services.core.queue import DeadLetter, DurableQueue
from services.webhooks import paging, records
from services.webhooks.feed import CURSOR
from services.webhooks.providers import Provider
from wedsync.webhooks.v1 import webhooks_pb2

Status = webhooks_pb2.WebhookEventStatus
SCAN_PAGE = 1000
BATCH = 200


def scope(providers: Mapping[str, Provider], provider_id: str) -> list[Provider]:
    if provider_id:
        if provider_id not in providers:
            raise NotFound(f"unknown provider {provider_id!r}")
        return [providers[provider_id]]
    return [providers[p] for p in sorted(providers)]


def to_proto(letter: DeadLetter) -> webhooks_pb2.DeadLetter:
    event = records.without_raw(webhooks_pb2.WebhookEvent.FromString(letter.payload))
    event.event_id = letter.message_id
    event.status = Status.WEBHOOK_EVENT_STATUS_DEAD_LETTERED
    event.attempts = letter.attempts
    event.last_error = letter.last_error
    return webhooks_pb2.DeadLetter(
        id=letter.dead_id,
        event=event,
        attempts=letter.attempts,
        last_error=letter.last_error,
        failed_at=records.timestamp(letter.failed_at_ms),
    )


async def list_page(
    providers: Mapping[str, Provider], request: webhooks_pb2.ListDeadLettersRequest
) -> webhooks_pb2.ListDeadLettersResponse:
    in_scope = [p.id for p in scope(providers, request.provider_id)]
    size = paging.page_size(request.page_size)
    state = paging.decode(request.page_token)
    idx = in_scope.index(state["p"]) if state.get("p") in in_scope else 0
    after: str | None = state.get("a") or None
    if after is not None and not CURSOR.match(after):
        raise InvalidArgument("malformed page_token")
    out = webhooks_pb2.ListDeadLettersResponse()
    while idx < len(in_scope) and len(out.dead_letters) < size:
        page = await providers[in_scope[idx]].queue.dead_letters.list(
            after=after, count=size - len(out.dead_letters)
        )
        out.dead_letters.extend(to_proto(letter) for letter in page.letters)
        if page.next_after is None:
            idx, after = idx + 1, None
        else:
            after = page.next_after
    if idx < len(in_scope):
        out.next_page_token = paging.encode({"p": in_scope[idx], "a": after or ""})
    return out


async def _existing(queue: DurableQueue, ids: Sequence[str]) -> list[str]:
    candidates = [i for i in ids if CURSOR.match(i)]
    if not candidates:
        return []
    with translate_redis_errors("look up dead letters"):
        async with queue.client.pipeline(transaction=False) as pipe:
            for dead_id in candidates:
                pipe.xrange(queue.keys.dead, dead_id, dead_id, count=1)
            rows: list[Any] = await pipe.execute()
    return [dead_id for dead_id, row in zip(candidates, rows, strict=True) if row]


async def _all_ids(queue: DurableQueue) -> list[str]:
    ids: list[str] = []
    after: str | None = None
    while True:
        page = await queue.dead_letters.list(after=after, count=SCAN_PAGE)
        ids += [letter.dead_id for letter in page.letters]
        if page.next_after is None:
            return ids
        after = page.next_after


async def _select(
    providers: Mapping[str, Provider], provider_id: str, ids: Sequence[str]
) -> tuple[list[tuple[Provider, list[str]]], list[str]]:
    """Which provider holds which of ``ids`` (all of each provider's when ``ids`` is empty)."""
    chosen: list[tuple[Provider, list[str]]] = []
    remaining = list(dict.fromkeys(ids))
    for provider in scope(providers, provider_id):
        if not ids:
            found = await _all_ids(provider.queue)
        else:
            found = await _existing(provider.queue, remaining)
            remaining = [i for i in remaining if i not in set(found)]
        if found:
            chosen.append((provider, found))
    return chosen, remaining


async def replay(
    providers: Mapping[str, Provider], request: webhooks_pb2.ReplayDeadLettersRequest
) -> webhooks_pb2.ReplayDeadLettersResponse:
    chosen, missing = await _select(providers, request.provider_id, request.ids)
    out = webhooks_pb2.ReplayDeadLettersResponse(not_found_ids=missing)
    for provider, ids in chosen:
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            out.replayed_count += await provider.queue.dead_letters.replay(batch)
            out.replayed_ids.extend(batch)
    return out


async def purge(
    providers: Mapping[str, Provider], request: webhooks_pb2.PurgeDeadLettersRequest
) -> webhooks_pb2.PurgeDeadLettersResponse:
    if not request.ids and not request.all:
        raise InvalidArgument("give ids to purge, or all=true to purge every dead letter in scope")
    chosen, missing = await _select(providers, request.provider_id, request.ids)
    out = webhooks_pb2.PurgeDeadLettersResponse(not_found_ids=missing)
    for provider, ids in chosen:
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            out.purged_count += await provider.queue.dead_letters.purge(batch)
            out.purged_ids.extend(batch)
    return out
