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
from services.core.stream_ids import read_after, stream_id
from services.webhooks import paging, records
from services.webhooks.feed import parse_cursor
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
    """Oldest failure first across the providers in scope (dead ids are failure times).

    Each provider's dead-letter stream is read from its own position; the token carries
    every unfinished provider's position, as ListEvents' does, and is bound to the
    ``provider_id`` filter it was issued for.
    """
    in_scope = [p.id for p in scope(providers, request.provider_id)]
    size = paging.page_size(request.page_size)
    bound: paging.Filters = {"provider_id": request.provider_id}
    state = paging.decode(request.page_token, bound)
    positions: Any = state.get("p") if state else dict.fromkeys(in_scope, "")
    if not isinstance(positions, dict) or any(
        provider_id not in in_scope or (after != "" and read_after(after) is None)
        for provider_id, after in positions.items()
    ):
        raise InvalidArgument("malformed page_token, or one issued for another provider_id")
    candidates: list[tuple[tuple[int, int], str, DeadLetter]] = []
    more: dict[str, bool] = {}
    for provider_id in in_scope:
        if provider_id not in positions:
            continue  # finished on an earlier page
        page = await providers[provider_id].queue.dead_letters.list(
            after=positions[provider_id] or None, count=size
        )
        more[provider_id] = page.next_after is not None
        candidates += [(parse_cursor(letter.dead_id), provider_id, letter) for letter in page.letters]
    candidates.sort(key=lambda c: (c[0], c[1]))
    taken, left = candidates[:size], candidates[size:]
    out = webhooks_pb2.ListDeadLettersResponse(dead_letters=[to_proto(c[2]) for c in taken])
    following: dict[str, str] = {}
    for provider_id, has_more in more.items():
        mine = [c[2].dead_id for c in taken if c[1] == provider_id]
        if has_more or any(c[1] == provider_id for c in left):
            following[provider_id] = mine[-1] if mine else positions[provider_id]
    if following:
        out.next_page_token = paging.encode({"p": following}, bound)
    return out


async def _existing(queue: DurableQueue, ids: Sequence[str]) -> list[str]:
    candidates = [i for i in ids if stream_id(i) is not None]  # anything else is simply not found
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
