"""The change feed: registry changes as a Redis stream that every replica tails.

A change (registration, removal, expiry, health flip) is appended once, by the replica
that made it, to ``registry_global_key("changes")`` (trimmed to about
``FEED_MAXLEN`` entries: it is history, not work). Each replica runs one tail task that
reads the stream with a blocking XREAD and fans every event out to its local Watch
streams and listeners (the router's instance views, the health checker), so a client
watching any replica sees changes made through every replica.

The append happens after the state change it describes, in a separate command (the feed
key lives in another Cluster slot): a replica that dies between the two leaves the state
right and one event unsent. Watchers that must not miss anything resynchronise with
``send_initial_state`` when they reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from services.core.errors import MeshError, translate_redis_errors
from services.core.keys import registry_global_key
from services.core.redis_client import AnyRedis
from wedsync.registry.v1 import registry_pb2

log = logging.getLogger("wedmesh.registry.feed")

FEED_MAXLEN = 10_000
SUBSCRIBER_BUFFER = 1_000
BLOCK_MS = 1_000

Listener = Callable[[registry_pb2.WatchEvent], None]


class Overflow(Exception):
    """A watcher fell more than ``SUBSCRIBER_BUFFER`` events behind."""


class Subscription:
    """One local watcher's buffer of events."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[registry_pb2.WatchEvent | None] = asyncio.Queue(SUBSCRIBER_BUFFER)
        self.overflowed = False

    def offer(self, event: registry_pb2.WatchEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    async def next(self) -> registry_pb2.WatchEvent:
        event = await self.queue.get()
        if event is None or self.overflowed:
            raise Overflow
        return event


class ChangeFeed:
    """Append changes to the shared stream; tail it and fan out to local subscribers."""

    def __init__(self, client: AnyRedis) -> None:
        self.client = client
        self.key = registry_global_key("changes")
        self._subscriptions: set[Subscription] = set()
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()

    async def publish(self, event: registry_pb2.WatchEvent) -> None:
        with translate_redis_errors("publish registry change"):
            await self.client.xadd(
                self.key, {"e": event.SerializeToString()}, maxlen=FEED_MAXLEN, approximate=True
            )

    def subscribe(self) -> Subscription:
        sub = Subscription()
        self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` (synchronously, must not block) for every event seen."""
        self._listeners.append(listener)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._tail(), name="registry-feed-tail")
        await self._started.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _tail(self) -> None:
        last = await self._start_id()
        self._started.set()
        while True:
            try:
                with translate_redis_errors("tail registry changes"):
                    reply: Any = await self.client.xread({self.key: last}, block=BLOCK_MS, count=500)
            except MeshError as exc:
                log.warning("registry change feed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    self._fan_out(fields)

    async def _start_id(self) -> Any:
        while True:
            try:
                with translate_redis_errors("tail registry changes"):
                    newest: Any = await self.client.xrevrange(self.key, "+", "-", count=1)
                return newest[0][0] if newest else "0-0"
            except MeshError as exc:
                log.warning("registry change feed: %s", exc)
                await asyncio.sleep(0.5)

    def _fan_out(self, fields: dict[Any, Any]) -> None:
        raw = fields.get(b"e") or fields.get("e")
        if raw is None:
            return
        event = registry_pb2.WatchEvent.FromString(raw)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("registry change listener failed")
        for sub in list(self._subscriptions):
            sub.offer(event)
