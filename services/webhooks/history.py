"""Event history: what GetEvent and ListEvents read (keys: see :mod:`layout`).

Who writes: intake records an event as RECEIVED right after the queue took it — off the
acknowledgement path, through :class:`HistoryWriter`, which pipelines many records per
round trip so that an ingest costs one Redis script, not two — and IGNORED events directly
(they are stored nowhere else). The worker records FAILED / DEAD_LETTERED, and PROCESSED
in the same script that appends to the normalised-events stream. The "keep" fields, the log
entry and the TTL are written only by the record that creates the event, so whichever
record comes first creates it and logs it once (retention counts from then), and a RECEIVED
record lost in a crash is recreated by the worker's. The queue stays
the source of truth for processing; history is the operator's view.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.core.errors import MeshError, translate_redis_errors
from services.core.redis_client import AnyRedis
from services.webhooks import records
from services.webhooks.layout import event_key, load_lua, log_key
from wedsync.webhooks.v1 import webhooks_pb2

Field = bytes | str | int
SCAN_BATCH = 200
WRITER_QUEUE = 20_000
WRITER_BATCH = 256
WRITER_LINGER_S = 0.005
FLUSH_TIMEOUT_S = 5.0
log = logging.getLogger("wedmesh.webhooks.history")


def pairs(set_fields: Mapping[str, Field], keep_fields: Mapping[str, Field]) -> list[Any]:
    """The ``n_set, set pairs, n_keep, keep pairs`` arguments of ``record_event``."""
    args: list[Any] = [len(set_fields)]
    for k, v in set_fields.items():
        args += [k, v]
    args.append(len(keep_fields))
    for k, v in keep_fields.items():
        args += [k, v]
    return args


@dataclass(frozen=True)
class Filters:
    """ListEvents filters; empty strings / 0 / None match anything."""

    event_type: str = ""
    wedding_id: str = ""
    status: int = 0


def _matches(event: webhooks_pb2.WebhookEvent, f: Filters) -> bool:
    return (
        (not f.event_type or event.event_type == f.event_type)
        and (not f.wedding_id or event.wedding_id == f.wedding_id)
        and (not f.status or event.status == f.status)
    )


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class History:
    """Record and read the history of every provider's events."""

    def __init__(self, client: AnyRedis, retention_s: float) -> None:
        self.client = client
        self.retention_ms = round(retention_s * 1000)
        self._record = client.register_script(load_lua("record"))
        self._record_many = client.register_script(load_lua("record_many"))

    def call_args(
        self,
        provider_id: str,
        event_id: str,
        event_type: str,
        set_fields: Mapping[str, bytes | str | int],
        keep_fields: Mapping[str, bytes | str | int],
    ) -> tuple[list[str], list[Any]]:
        """The keys and args of one record-script call."""
        args: list[Any] = [event_id, event_type, self.retention_ms, *pairs(set_fields, keep_fields)]
        return [event_key(event_id), log_key(provider_id)], args

    async def record(
        self,
        provider_id: str,
        event_id: str,
        event_type: str,
        set_fields: Mapping[str, bytes | str | int],
        keep_fields: Mapping[str, bytes | str | int] = {},
    ) -> bool:
        """Upsert the event's hash (``keep_fields`` only when it is created); True when this
        record created it (a first delivery, for events recorded nowhere else)."""
        keys, args = self.call_args(provider_id, event_id, event_type, set_fields, keep_fields)
        with translate_redis_errors("record event"):
            created = await self._record(keys=keys, args=args)
        return bool(int(created))

    async def record_many(self, calls: Sequence[tuple[list[str], list[Any]]]) -> None:
        """Several records (from :meth:`call_args`) in one script call: one slot, one round trip."""
        keys: list[str] = []
        args: list[Any] = [self.retention_ms]
        for call_keys, call_args in calls:
            keys += call_keys
            args += [call_args[0], call_args[1], *call_args[3:]]  # without the per-call retention
        with translate_redis_errors("record events"):
            await self._record_many(keys=keys, args=args)

    async def get(self, event_id: str, include_raw: bool) -> webhooks_pb2.WebhookEvent | None:
        with translate_redis_errors("get event"):
            fields: Any = await self.client.hgetall(event_key(event_id))
        return records.from_history(fields, include_raw) if fields else None

    async def page(
        self,
        provider_id: str,
        *,
        before: str | None,
        start_ms: int | None,
        end_ms: int | None,
        filters: Filters,
        count: int,
        include_raw: bool,
        scan_limit: int = 5000,
    ) -> tuple[list[tuple[str, webhooks_pb2.WebhookEvent]], str | None]:
        """Up to ``count`` matching events, newest first, strictly before log id ``before``.

        Returns the events with their log ids, and the position to continue from (None
        when the log is exhausted). At most ``scan_limit`` entries are looked at per call,
        so a very selective filter returns a short page with a position, not a stall.
        """
        high = f"({before}" if before else (f"{end_ms - 1}" if end_ms else "+")
        low = str(start_ms) if start_ms else "-"
        found: list[tuple[str, webhooks_pb2.WebhookEvent]] = []
        scanned = 0
        while len(found) < count and scanned < scan_limit:
            with translate_redis_errors("list events"):
                rows: Any = await self.client.xrevrange(log_key(provider_id), high, low, count=SCAN_BATCH)
            if not rows:
                return found, None
            with translate_redis_errors("list events"):
                async with self.client.pipeline(transaction=False) as pipe:
                    for _, fields in rows:
                        pipe.hgetall(event_key(_str(fields[b"event_id"])))
                    hashes = await pipe.execute()
            for (log_id, _), fields in zip(rows, hashes, strict=True):
                scanned += 1
                high = f"({_str(log_id)}"
                event = records.from_history(fields, include_raw) if fields else None
                if event is not None and _matches(event, filters):
                    found.append((_str(log_id), event))
                    if len(found) == count:
                        return found, _str(log_id)
            if len(rows) < SCAN_BATCH:
                return found, None
        return found, high[1:]


class HistoryWriter:
    """Background: records RECEIVED events in batches, off the acknowledgement path.

    A batch is written at most ``WRITER_LINGER_S`` after its first record (or when full), so
    GetEvent sees a new event's RECEIVED record a few milliseconds after its 200.

    Bounded: when Redis is slow or down and the buffer is full, records are dropped (the
    worker's record recreates them) rather than growing memory without limit.
    """

    def __init__(self, history: History, size: int = WRITER_QUEUE) -> None:
        self.history = history
        self._pending: asyncio.Queue[tuple[list[str], list[Any]]] = asyncio.Queue(size)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def submit(
        self, provider_id: str, event_id: str, event_type: str, keep_fields: Mapping[str, bytes | str | int]
    ) -> None:
        try:
            self._pending.put_nowait(
                self.history.call_args(provider_id, event_id, event_type, {}, keep_fields)
            )
        except asyncio.QueueFull:
            self.dropped += 1

    async def start(self, host: object = None) -> None:
        self._task = asyncio.create_task(self._run(), name="webhooks-history")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        try:  # bounded: with Redis gone, the worker's records recreate what is dropped here
            await asyncio.wait_for(self.flush(), FLUSH_TIMEOUT_S)
        except TimeoutError:
            log.warning("history records dropped at shutdown", extra={"left": self._pending.qsize()})

    async def flush(self) -> None:
        """Write what is buffered now (used at shutdown and by tests)."""
        while not self._pending.empty():
            await self._write_batch(self._take())

    def _take(self) -> list[tuple[list[str], list[Any]]]:
        batch: list[tuple[list[str], list[Any]]] = []
        while not self._pending.empty() and len(batch) < WRITER_BATCH:
            batch.append(self._pending.get_nowait())
        return batch

    async def _write_batch(self, batch: list[tuple[list[str], list[Any]]]) -> None:
        try:
            await self.history.record_many(batch)
        except MeshError as exc:
            self.dropped += len(batch)
            log.warning("history records dropped: %s", exc)

    async def _run(self) -> None:
        while True:
            first = await self._pending.get()
            if self._pending.qsize() < WRITER_BATCH - 1:
                # Linger: at a steady trickle every record would be its own round trip.
                try:
                    await asyncio.sleep(WRITER_LINGER_S)
                except asyncio.CancelledError:
                    with contextlib.suppress(asyncio.QueueFull):
                        self._pending.put_nowait(first)  # stop() flushes it
                    raise
            await self._write_batch([first, *self._take()])
