"""``wedsync.webhooks.v1.WebhookIntakeService``: the RPCs, thin over intake, history, feed, dlq."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from services.core.errors import InvalidArgument, MeshError, NotFound, ResourceExhausted
from services.core.stream_ids import stream_id
from services.webhooks import dlq, paging
from services.webhooks.feed import Entry, Feed, new_subscription, parse_cursor
from services.webhooks.history import Filters, History
from services.webhooks.intake import Intake
from services.webhooks.metrics import SUBSCRIBERS, SUBSCRIBERS_CUT
from wedsync.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

CATCH_UP_PAGE = 500
MAX_REMOTE_ADDR_CHARS = 256
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


def check_remote_addr(remote_addr: str) -> str:
    """``IngestRequest.remote_addr`` if fit for a log line: bounded, printable ASCII, else
    INVALID_ARGUMENT. It is free-form (the front end's view of the sender: "ip:port", maybe a
    proxy's list), never parsed and never trusted; empty means unknown.
    """
    if len(remote_addr) > MAX_REMOTE_ADDR_CHARS:
        raise InvalidArgument(f"remote_addr must be at most {MAX_REMOTE_ADDR_CHARS} characters")
    if not _PRINTABLE_ASCII.fullmatch(remote_addr):
        raise InvalidArgument("remote_addr must be printable ASCII, e.g. '203.0.113.7:443'")
    return remote_addr


class WebhookIntakeServicer(webhooks_pb2_grpc.WebhookIntakeServiceServicer):
    def __init__(self, intake: Intake, history: History, feed: Feed, subscriber_buffer: int) -> None:
        self.intake = intake
        self.history = history
        self.feed = feed
        self.subscriber_buffer = subscriber_buffer

    async def _response(self, entry: Entry, include_raw: bool) -> webhooks_pb2.SubscribeResponse:
        """A streamed event; the raw body and headers are kept in history only (fetched if asked)."""
        cursor, fields = entry
        response = webhooks_pb2.SubscribeResponse(cursor=cursor)
        event = response.event  # parsed in place: no copy of the event per subscriber message
        event.ParseFromString(fields[b"rec"])
        if include_raw:
            stored = await self.history.get(event.event_id, include_raw=True)
            if stored is not None:
                event.raw_body = stored.raw_body
                event.headers.update(stored.headers)
        event.cursor = cursor
        return response

    async def Ingest(self, request: webhooks_pb2.IngestRequest, context: Any) -> webhooks_pb2.IngestResponse:
        try:
            remote_addr = check_remote_addr(request.remote_addr)
            return await self.intake.ingest(
                request.provider_id, dict(request.headers), request.body, remote_addr
            )
        except MeshError as exc:
            self.intake.count_rejected(request.provider_id, exc)
            raise

    async def GetEvent(
        self, request: webhooks_pb2.GetEventRequest, context: Any
    ) -> webhooks_pb2.GetEventResponse:
        if not request.event_id:
            raise InvalidArgument("event_id is required")
        if request.provider_id:
            self.intake.provider(request.provider_id)
        event = await self.history.get(request.event_id, request.include_raw)
        if event is None or (request.provider_id and event.provider_id != request.provider_id):
            raise NotFound(f"no stored event {request.event_id!r}")
        return webhooks_pb2.GetEventResponse(event=event)

    async def ListEvents(
        self, request: webhooks_pb2.ListEventsRequest, context: Any
    ) -> webhooks_pb2.ListEventsResponse:
        size = paging.page_size(request.page_size)
        if request.provider_id:
            self.intake.provider(request.provider_id)
        providers = [request.provider_id] if request.provider_id else sorted(self.intake.providers)
        start_ms = request.start_time.ToMilliseconds() if request.HasField("start_time") else None
        end_ms = request.end_time.ToMilliseconds() if request.HasField("end_time") else None
        if (start_ms or 0) < 0 or (end_ms or 0) < 0:
            raise InvalidArgument("start_time and end_time must not be before 1970-01-01T00:00:00Z")
        if start_ms is not None and end_ms is not None and start_ms > end_ms:
            raise InvalidArgument("start_time must not be after end_time")
        if request.status not in webhooks_pb2.WebhookEventStatus.values():
            raise InvalidArgument(f"status {request.status} is not a WebhookEventStatus value")
        bound: paging.Filters = {  # what the server filters on, as it does: ms, open start = 0
            "provider_id": request.provider_id,
            "event_type": request.event_type,
            "wedding_id": request.wedding_id,
            "status": int(request.status),
            "start_ms": start_ms or None,
            "end_ms": end_ms,
        }
        token = paging.decode(request.page_token, bound)
        positions: dict[str, Any] = (
            token.get("p", {p: "" for p in providers}) if token else {p: "" for p in providers}
        )
        # The server only ever issues "" or a log id after the first one; "0-0" would be an
        # exclusive upper bound Redis refuses.
        if not isinstance(positions, dict) or any(
            v != "" and (stream_id(v) or (0, 0)) <= (0, 0) for v in positions.values()
        ):
            raise InvalidArgument("malformed page_token")
        if end_ms is not None and end_ms in (0, start_ms):  # start inclusive, end exclusive: none in range
            return webhooks_pb2.ListEventsResponse()
        filters = Filters(request.event_type, request.wedding_id, int(request.status))
        candidates: list[tuple[tuple[int, int], str, str, webhooks_pb2.WebhookEvent]] = []
        ends: dict[str, str | None] = {}
        for provider_id in providers:
            if provider_id not in positions:
                continue  # exhausted on an earlier page
            found, end = await self.history.page(
                provider_id,
                before=positions[provider_id] or None,
                start_ms=start_ms,
                end_ms=end_ms,
                filters=filters,
                count=size,
                include_raw=request.include_raw,
            )
            ends[provider_id] = end
            candidates += [(parse_cursor(log_id), provider_id, log_id, ev) for log_id, ev in found]
        candidates.sort(key=lambda c: c[0], reverse=True)
        taken, left = candidates[:size], candidates[size:]
        out = webhooks_pb2.ListEventsResponse(events=[c[3] for c in taken])
        following: dict[str, str] = {}
        for provider_id in ends:
            mine = [c[2] for c in taken if c[1] == provider_id]
            if any(c[1] == provider_id for c in left):
                following[provider_id] = mine[-1] if mine else positions[provider_id]
            elif ends[provider_id] is not None:
                following[provider_id] = ends[provider_id] or ""
        if following:
            out.next_page_token = paging.encode({"p": following}, bound)
        return out

    async def Subscribe(
        self, request: webhooks_pb2.SubscribeRequest, context: Any
    ) -> AsyncIterator[webhooks_pb2.SubscribeResponse]:
        for provider_id in request.provider_ids:
            self.intake.provider(provider_id)
        if request.after_cursor and stream_id(request.after_cursor) is None:
            raise InvalidArgument("after_cursor must be a cursor from an earlier event (<ms>-<seq>)")
        sub = new_subscription(
            request.provider_ids, request.event_types, request.wedding_id, self.subscriber_buffer
        )
        stream = self.feed.stream
        # Live only: from the stream's end now; then, as for a cursor, catch up from the
        # stream and join the live feed without a gap.
        last = request.after_cursor or ("0-0" if request.from_beginning else await stream.last_id())
        # The client's cursor, and every id read since, must still be retained (else events
        # may be missed: OUT_OF_RANGE); a starting point this server chose needs no check.
        check = bool(request.after_cursor)
        SUBSCRIBERS.inc()
        try:
            while True:
                rows = await stream.page_after(last, CATCH_UP_PAGE, check=check)
                if len(rows) < CATCH_UP_PAGE:
                    joined = rows[-1][0] if rows else last
                    self.feed.add(sub, joined)
                    rows += await stream.page_after(joined, CATCH_UP_PAGE, check=check or bool(rows))
                for entry in rows:
                    last = entry[0]
                    check = True
                    if sub.matches(entry[1]):
                        yield await self._response(entry, request.include_raw)
                if sub in self.feed.subscriptions:
                    break
            floor = parse_cursor(last)
            while True:
                item = await sub.buffer.get()
                if item is None or sub.cut:
                    SUBSCRIBERS_CUT.inc()
                    where = f"after_cursor={last!r}" if last else "from_beginning or a recent cursor"
                    raise ResourceExhausted(f"subscriber fell too far behind; resume with {where}")
                entry = item
                if parse_cursor(entry[0]) <= floor:
                    continue
                last = entry[0]
                yield await self._response(entry, request.include_raw)
        finally:
            self.feed.remove(sub)
            SUBSCRIBERS.dec()

    async def ListDeadLetters(
        self, request: webhooks_pb2.ListDeadLettersRequest, context: Any
    ) -> webhooks_pb2.ListDeadLettersResponse:
        return await dlq.list_page(self.intake.providers, request)

    async def ReplayDeadLetters(
        self, request: webhooks_pb2.ReplayDeadLettersRequest, context: Any
    ) -> webhooks_pb2.ReplayDeadLettersResponse:
        return await dlq.replay(self.intake.providers, request)

    async def PurgeDeadLetters(
        self, request: webhooks_pb2.PurgeDeadLettersRequest, context: Any
    ) -> webhooks_pb2.PurgeDeadLettersResponse:
        return await dlq.purge(self.intake.providers, request)
