"""Queue statistics and dead-letter operations of the router's per-service queues.

Shared by the RouterService RPCs and ``wedmesh dlq router``. A dead letter's public id is
``<service>/<stream entry id>``, so ids from several services can be replayed or purged in
one call.

Statistics: depth, in-flight and oldest age come from each priority stream; the queue
keeps retries in one delayed set and dead letters in one stream per service, so their
per-priority split is counted by a read-only script (``queue_split.lua``) that scans up to
``SPLIT_SCAN_CAP`` entries of each.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.core.errors import InvalidArgument, translate_redis_errors
from services.core.keys import registry_global_key
from services.core.queue import DeadLetter, DurableQueue, Priority
from services.core.redis_client import AnyRedis
from services.registry import metrics
from services.registry.codec import FROM_QUEUE, last_instance
from services.registry.scripts import Scripts
from services.registry.timeutil import dur, ts
from wedsync.registry.v1 import message_pb2, router_pb2

SPLIT_SCAN_CAP = 100_000
DEFAULT_PAGE = 50
MAX_PAGE = 1000
PRIORITIES = (Priority.HIGH, Priority.NORMAL, Priority.LOW)

QueueFor = Callable[[str], DurableQueue]


def services_key() -> str:
    """Set of every service that has (had) a router queue."""
    return registry_global_key("router-services")


@dataclass
class RouterAdmin:
    client: AnyRedis
    queue_for: QueueFor

    def __post_init__(self) -> None:
        self._scripts = Scripts(self.client)

    async def services(self) -> list[str]:
        with translate_redis_errors("list router services"):
            names = await self.client.smembers(services_key())
        return sorted(n.decode() if isinstance(n, bytes) else n for n in names)

    async def _scope(self, service: str) -> list[str]:
        return [service] if service else await self.services()

    async def stats(self, service: str = "") -> list[router_pb2.QueueStats]:
        out: list[router_pb2.QueueStats] = []
        for name in await self._scope(service):
            queue = self.queue_for(name)
            stats = await queue.stats()
            with translate_redis_errors("queue stats"):
                split = await self._scripts.queue_split(
                    keys=[queue.keys.extra("parked"), queue.keys.dead], args=[SPLIT_SCAN_CAP]
                )
            for n, priority in enumerate(PRIORITIES):
                p = stats.priorities[priority]
                row = router_pb2.QueueStats(
                    service_name=name,
                    priority=FROM_QUEUE[priority],  # type: ignore[arg-type]
                    depth=max(0, p.depth - p.in_flight),
                    in_flight=p.in_flight,
                    delayed=int(split[n]),
                    dead_letters=int(split[3 + n]),
                    oldest_age=dur(p.oldest_age or 0.0),
                )
                out.append(row)
                _export(row, priority.value, p.oldest_age or 0.0)
        return out

    async def list_dead(
        self, service: str, page_size: int, token: str
    ) -> tuple[list[router_pb2.DeadLetter], str]:
        size = DEFAULT_PAGE if page_size <= 0 else min(page_size, MAX_PAGE)
        scope = await self._scope(service)
        start_service, after = _read_token(token) if token else ("", None)
        letters: list[router_pb2.DeadLetter] = []
        next_token = ""
        for name in scope:
            if start_service and name < start_service:
                continue
            cursor = after if name == start_service else None
            page = await self.queue_for(name).dead_letters.list(after=cursor, count=size - len(letters))
            letters += [to_proto(name, letter) for letter in page.letters]
            if len(letters) >= size:
                last = page.letters[-1].dead_id if page.letters else cursor
                next_token = _make_token(name, last)
                break
        return letters, next_token

    async def _existing(self, ids: Sequence[str], service: str) -> tuple[dict[str, list[str]], list[str]]:
        by_service: dict[str, list[str]] = {}
        missing: list[str] = []
        for public_id in ids:
            name, _, entry = public_id.rpartition("/")
            if not name or (service and name != service):
                missing.append(public_id)
                continue
            queue = self.queue_for(name)
            with translate_redis_errors("find dead letter"):
                found = await self.client.xrange(queue.keys.dead, entry, entry, count=1)
            if found:
                by_service.setdefault(name, []).append(entry)
            else:
                missing.append(public_id)
        return by_service, missing

    async def replay(self, service: str, ids: Sequence[str]) -> tuple[list[str], list[str], int]:
        """(replayed ids, not-found ids, count); every letter in scope when ids is empty."""
        if not ids:
            total = 0
            for name in await self._scope(service):
                total += await self.queue_for(name).dead_letters.replay()
            return [], [], total
        by_service, missing = await self._existing(ids, service)
        replayed: list[str] = []
        for name, entries in by_service.items():
            await self.queue_for(name).dead_letters.replay(entries)
            replayed += [f"{name}/{e}" for e in entries]
        return replayed, missing, len(replayed)

    async def purge(
        self, service: str, ids: Sequence[str], everything: bool
    ) -> tuple[list[str], list[str], int]:
        if not ids:
            if not everything:
                raise InvalidArgument("give ids, or all=true to purge every dead letter in scope")
            total = 0
            for name in await self._scope(service):
                total += await self.queue_for(name).dead_letters.purge()
            return [], [], total
        by_service, missing = await self._existing(ids, service)
        purged: list[str] = []
        for name, entries in by_service.items():
            await self.queue_for(name).dead_letters.purge(entries)
            purged += [f"{name}/{e}" for e in entries]
        return purged, missing, len(purged)


def to_proto(service: str, letter: DeadLetter) -> router_pb2.DeadLetter:
    try:
        message = message_pb2.Message.FromString(letter.payload)
    except Exception:  # not ours; show what we can
        message = message_pb2.Message(message_id=letter.message_id, to_service=service)
    message.attempt = letter.attempts
    return router_pb2.DeadLetter(
        id=f"{service}/{letter.dead_id}",
        message=message,
        attempts=letter.attempts,
        last_error=letter.last_error,
        failed_at=ts(letter.failed_at_ms),
        last_instance_id=last_instance(letter.last_error),
    )


def _make_token(service: str, after: str | None) -> str:
    return base64.urlsafe_b64encode(json.dumps([service, after]).encode()).decode()


def _read_token(token: str) -> tuple[str, str | None]:
    try:
        service, after = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(service), (str(after) if after else None)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidArgument("page_token is not one this server issued") from None


def _export(row: router_pb2.QueueStats, priority: str, oldest: float) -> None:
    labels = (row.service_name, priority)
    metrics.QUEUE_DEPTH.labels(*labels).set(row.depth)
    metrics.QUEUE_IN_FLIGHT.labels(*labels).set(row.in_flight)
    metrics.QUEUE_DELAYED.labels(*labels).set(row.delayed)
    metrics.QUEUE_DEAD.labels(*labels).set(row.dead_letters)
    metrics.QUEUE_OLDEST.labels(*labels).set(oldest)
