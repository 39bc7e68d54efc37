"""The normalised-events stream and the live feed that Subscribe streams from.

``wm:wh:{_mesh}:normalized`` (one stream for all providers, trimmed by MINID age) holds
every processed event; its entry id is the Subscribe cursor. The worker appends through
``finish.lua``, which in the same step writes a per-event marker (so a retried or reclaimed
delivery never appends twice) and records the event in history as processed.

Fan-out: one reader task per process does ``XREAD BLOCK`` on the stream and hands each
entry to every matching subscription's bounded buffer with ``put_nowait`` — it never
waits for a client. A subscription whose buffer is full is cut off (its stream ends with
RESOURCE_EXHAUSTED naming the cursor to resume from), so a slow client costs the others
nothing, and N clients cost one Redis read, not N.

The reader runs only while someone subscribes: an intake-only process would otherwise read
every processed event for nobody. Each subscription joins at the position it has read up to
(Subscribe catches up from the stream itself first), and a reader resuming from idle starts
at the earliest such position, so nothing between the catch-up and the live tail is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.core.errors import MeshError, OutOfRange, translate_redis_errors
from services.core.redis_client import AnyRedis
from services.core.stream_ids import MAX_ID
from services.webhooks.history import Field, pairs
from services.webhooks.layout import event_key, load_lua, log_key, marker_key, stream_key
from wedsync.webhooks.v1 import webhooks_pb2

log = logging.getLogger("wedmesh.webhooks.feed")

READ_BLOCK_MS = 1000
READ_COUNT = 500
ERROR_BACKOFF_S = 0.5

Entry = tuple[str, dict[bytes, bytes]]


def parse_cursor(cursor: str) -> tuple[int, int]:
    ms, _, seq = cursor.partition("-")
    return int(ms), int(seq)


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class NormalizedStream:
    """Append (once per event) and read the normalised-events stream."""

    def __init__(
        self, client: AnyRedis, retention_s: float, marker_ttl_s: float, history_retention_s: float
    ) -> None:
        self.client = client
        self.key = stream_key()
        self.retention_ms = round(retention_s * 1000)
        self.marker_ms = max(1, round(marker_ttl_s * 1000))
        self.history_ms = round(history_retention_s * 1000)
        self._finish = client.register_script(load_lua("finish"))
        self._read_after = client.register_script(load_lua("read_after"))

    async def finish(
        self,
        event: webhooks_pb2.WebhookEvent,
        history_set: Mapping[str, Field],
        history_keep: Mapping[str, Field],
    ) -> str:
        """Append the processed event and record it in history, atomically; returns its cursor.

        A repeat (retry, reclaim, replay) updates history but appends nothing and returns
        the first append's cursor.
        """
        args: list[Any] = [
            self.marker_ms,
            self.retention_ms,
            self.history_ms,
            event.event_id,
            event.event_type,
            *pairs(history_set, history_keep),
            "event_id",
            event.event_id,
            "provider",
            event.provider_id,
            "type",
            event.event_type,
            "wedding",
            event.wedding_id,
            "rec",
            event.SerializeToString(),
        ]
        keys = [marker_key(event.event_id), self.key, event_key(event.event_id), log_key(event.provider_id)]
        with translate_redis_errors("finish event"):
            return _str(await self._finish(keys=keys, args=args))

    async def page_after(self, position: str, count: int, *, check: bool) -> list[Entry]:
        """Up to ``count`` entries strictly after ``position`` ("0-0" = from the oldest retained).

        With ``check`` (a client's cursor, or an id just read), raise :class:`OutOfRange`
        when ``position`` is older than the oldest retained entry: trimming removes the
        oldest entries, so its own event is gone and those right after it may be too (Redis
        keeps no record of which ids a trim removed; the one false alarm, an event whose
        successor is still retained, sends the client to from_beginning, which then returns
        exactly what it has not seen) — or newer than the newest entry (not from this
        stream). The page and the stream's bounds come from one script, so the answer holds
        for exactly this read.
        """
        if parse_cursor(position) == MAX_ID:  # Redis refuses "(" + the last id
            raise OutOfRange(f"cursor {position!r} is ahead of every event; resume with from_beginning")
        with translate_redis_errors("read normalised events"):
            oldest, newest, rows = await self._read_after(keys=[self.key], args=[position, count])
        if check and position != "0-0":
            self._check_position(position, oldest and _str(oldest), newest and _str(newest))
        return [(_str(i), dict(zip(fv[::2], fv[1::2], strict=True))) for i, fv in rows]

    def _check_position(self, position: str, oldest: str | None, newest: str | None) -> None:
        at = parse_cursor(position)
        if newest is not None and at > parse_cursor(newest):
            raise OutOfRange(
                f"cursor {position!r} is ahead of the newest event ({newest}), so it does not come "
                "from this stream; resume with from_beginning, or with no cursor for live events only"
            )
        if oldest is None or at < parse_cursor(oldest):
            days = self.retention_ms / 86_400_000
            raise OutOfRange(
                f"the event at cursor {position!r} is no longer retained (the stream keeps {days:g} "
                f"days; oldest retained cursor: {oldest or 'none, the stream is empty'}), so events "
                "after it may have been trimmed too; resume with from_beginning and look for missed "
                "events with ListEvents"
            )

    async def last_id(self) -> str:
        with translate_redis_errors("read normalised events"):
            rows: Any = await self.client.xrevrange(self.key, "+", "-", count=1)
        return _str(rows[0][0]) if rows else "0-0"


@dataclass(eq=False)
class Subscription:
    """One client's filters and bounded buffer; ``cut`` once it fell too far behind."""

    provider_ids: frozenset[str]
    event_types: frozenset[str]
    wedding_id: str
    buffer: asyncio.Queue[Entry | None]
    cut: bool = field(default=False)

    def matches(self, fields: dict[bytes, bytes]) -> bool:
        if self.provider_ids and _str(fields.get(b"provider", b"")) not in self.provider_ids:
            return False
        if self.event_types and _str(fields.get(b"type", b"")) not in self.event_types:
            return False
        return not self.wedding_id or _str(fields.get(b"wedding", b"")) == self.wedding_id


def new_subscription(
    provider_ids: Sequence[str], event_types: Sequence[str], wedding_id: str, size: int
) -> Subscription:
    return Subscription(frozenset(provider_ids), frozenset(event_types), wedding_id, asyncio.Queue(size))


class Feed:
    """The Background with the one reader task; subscriptions register and unregister."""

    def __init__(self, stream: NormalizedStream) -> None:
        self.stream = stream
        self.subscriptions: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._position: str | None = None  # None: idle (no subscriber), nothing read
        self._resume_from: str | None = None
        self._wake = asyncio.Event()

    async def start(self, host: object = None) -> None:
        self._task = asyncio.create_task(self._read_forever(), name="webhooks-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sub in list(self.subscriptions):
            self._cut(sub)

    def add(self, sub: Subscription, after: str) -> None:
        """Deliver entries after ``after`` (what ``sub`` has already read) to ``sub`` too."""
        self.subscriptions.add(sub)
        if self._position is None:
            if self._resume_from is None or parse_cursor(after) < parse_cursor(self._resume_from):
                self._resume_from = after
            self._wake.set()

    def remove(self, sub: Subscription) -> None:
        self.subscriptions.discard(sub)

    def _cut(self, sub: Subscription) -> None:
        sub.cut = True
        self.subscriptions.discard(sub)
        with contextlib.suppress(asyncio.QueueEmpty):
            sub.buffer.get_nowait()
        sub.buffer.put_nowait(None)  # wakes the stream, which then ends

    def _fan_out(self, entries: list[Entry]) -> None:
        for entry in entries:
            for sub in list(self.subscriptions):
                if sub.matches(entry[1]):
                    try:
                        sub.buffer.put_nowait(entry)
                    except asyncio.QueueFull:
                        self._cut(sub)

    async def _read_forever(self) -> None:
        client = self.stream.client
        while True:
            if not self.subscriptions:
                self._position = None
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._position is None:
                self._position, self._resume_from = self._resume_from or "0-0", None
            try:
                with translate_redis_errors("tail normalised events"):
                    reply: Any = await client.xread(
                        {self.stream.key: self._position}, count=READ_COUNT, block=READ_BLOCK_MS
                    )
            except MeshError as exc:
                log.warning("feed read failed: %s", exc)
                await asyncio.sleep(ERROR_BACKOFF_S)
                continue
            for _key, rows in reply or []:
                entries = [(_str(i), dict(f)) for i, f in rows]
                if entries:
                    self._position = entries[-1][0]
                    self._fan_out(entries)
