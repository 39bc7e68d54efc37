"""Queue statistics and dead-letter operations of the router's per-service queues.

Shared by the RouterService RPCs and ``wedmesh dlq router``. A dead letter's public id is
``<service>/<ms>-<seq>`` (the service's dead-letter stream entry id), so ids from several
services can be replayed or purged in one call. Ids, like page tokens, come from clients
and are parsed strictly before Redis sees them: an id that cannot name a letter is simply
not found (never a Redis error surfacing as INTERNAL), and ids naming the same letter act
once.

Statistics: depth, in-flight and oldest age come from each priority stream; the queue
keeps retries in one delayed set and dead letters in one stream per service, so their
per-priority split is counted by a read-only script (``queue_split.lua``) that scans up to
``SPLIT_SCAN_CAP`` entries of each (not run when the queue holds neither: the split is then
zeros). Reading statistics exports nothing: the gauges are the dispatcher's (for the
services with a router queue only, so a GetQueueStats for any name cannot add series).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.core.errors import InvalidArgument, translate_redis_errors
from services.core.keys import registry_global_key
from services.core.queue import DeadLetter, DurableQueue, Priority, QueueStats
from services.core.redis_client import AnyRedis
from services.core.stream_ids import MAX_ID, read_after, stream_id
from services.registry.codec import FROM_QUEUE, last_instance
from services.registry.scripts import Scripts
from services.registry.timeutil import dur, ts
from services.registry.validation import check_name, is_name, valid_service_names
from wedsync.registry.v1 import message_pb2, router_pb2

SPLIT_SCAN_CAP = 100_000
DEFAULT_PAGE = 50
MAX_PAGE = 1000
PRIORITIES = (Priority.HIGH, Priority.NORMAL, Priority.LOW)
PURGE_BATCH = 100

QueueFor = Callable[[str], DurableQueue]
Split = tuple[int, ...]
NO_SPLIT: Split = (0, 0, 0, 0, 0, 0)


def services_key() -> str:
    """Set of every service that has (had) a router queue."""
    return registry_global_key("router-services")


@dataclass
class RouterAdmin:
    client: AnyRedis
    queue_for: QueueFor

    def __post_init__(self) -> None:
        self._scripts = Scripts(self.client)
        self._reported: set[str] = set()

    async def services(self) -> list[str]:
        """Every service with a router queue, sorted; members that are not valid names are left out."""
        with translate_redis_errors("list router services"):
            names = await self.client.smembers(services_key())
        return valid_service_names(names, self._reported, "router service set")

    async def _scope(self, service: str) -> list[str]:
        """``[service]`` (checked: the CLI passes it straight from the command line), or every one."""
        return [check_name(service, "service_name")] if service else await self.services()

    async def stats(self, service: str = "") -> list[router_pb2.QueueStats]:
        out: list[router_pb2.QueueStats] = []
        for name in await self._scope(service):
            queue = self.queue_for(name)
            stats = await queue.stats()
            out.extend(rows(name, stats, await self.split(queue, stats)))
        return out

    async def split(self, queue: DurableQueue, stats: QueueStats) -> Split:
        """Delayed and dead counts per priority (high, normal, low, then the same for dead).

        Zeros without a script call when ``stats`` (read just before) counts neither: the
        script reads the whole parked hash and up to ``SPLIT_SCAN_CAP`` dead letters.
        """
        if stats.delayed == 0 and stats.dead == 0:
            return NO_SPLIT
        with translate_redis_errors("queue stats"):
            split = await self._scripts.queue_split(
                keys=[queue.keys.extra("parked"), queue.keys.dead], args=[SPLIT_SCAN_CAP]
            )
        return tuple(int(n) for n in split)

    async def list_dead(
        self, service: str, page_size: int, token: str
    ) -> tuple[list[router_pb2.DeadLetter], str]:
        """One page of dead letters, oldest failure first across the services in scope.

        A dead id is the failure time (the stream id Redis gave the letter), so the page is a
        merge of each service's stream by id (ties by service name). Each service is read
        from its own position; the token carries every unfinished service's position and
        the scope it was issued for.
        """
        size = DEFAULT_PAGE if page_size <= 0 else min(page_size, MAX_PAGE)
        scope = await self._scope(service)
        positions = _read_token(token, service, scope) if token else dict.fromkeys(scope, "")
        candidates: list[tuple[tuple[int, int], str, DeadLetter]] = []
        more: dict[str, bool] = {}
        for name in scope:
            if name not in positions:
                continue  # finished on an earlier page
            page = await self.queue_for(name).dead_letters.list(after=positions[name] or None, count=size)
            more[name] = page.next_after is not None
            for letter in page.letters:
                at = stream_id(letter.dead_id) or MAX_ID  # Redis' own ids always parse
                candidates.append((at, name, letter))
        candidates.sort(key=lambda c: (c[0], c[1]))
        taken, left = candidates[:size], candidates[size:]
        following: dict[str, str] = {}
        for name, has_more in more.items():
            mine = [c[2].dead_id for c in taken if c[1] == name]
            if has_more or any(c[1] == name for c in left):
                following[name] = mine[-1] if mine else positions[name]
        next_token = _make_token(service, following) if following else ""
        return [to_proto(name, letter) for _, name, letter in taken], next_token

    def _requested(self, ids: Sequence[str], service: str) -> list[Requested]:
        """The distinct requested ids in request order, each parsed (or None when it cannot exist).

        A dead id is ``<service>/<ms>-<seq>``, both parts at most 2**64-1: anything else
        (no sequence, which Redis would read as a whole millisecond's range; a '(' prefix;
        out of range; a service that is not a name) cannot name a letter, so it is reported
        not found rather than handed to Redis. Ids that name the same letter ("s/1-0",
        "s/01-0") count once: a letter must never be replayed twice by one request.
        """
        seen: set[object] = set()
        out: list[Requested] = []
        for public_id in ids:
            target = parse_dead_id(public_id)
            if target is not None and service and target[0] != service:
                target = None  # outside the requested scope
            identity: object = target if target is not None else public_id
            if identity not in seen:
                seen.add(identity)
                out.append(Requested(public_id, target))
        return out

    async def replay(self, service: str, ids: Sequence[str]) -> tuple[list[str], list[str], int]:
        """(replayed ids, not-found ids, count); every letter in scope when ids is empty.

        Given ids are replayed one script call each, in request order (the order an ordering
        key's messages queue again): the script finds, deletes and re-queues one letter
        atomically and says whether it did, so the ids and the count are what Redis did,
        even when another caller replays or purges the same letters at the same time.
        """
        if not ids:
            total = 0
            for name in await self._scope(service):
                total += await self.queue_for(name).dead_letters.replay()
            return [], [], total
        if service:
            check_name(service, "service_name")
        replayed: list[str] = []
        missing: list[str] = []
        for item in self._requested(ids, service):
            done = 0
            if item.target is not None:
                name, entry = item.target
                done = await self.queue_for(name).dead_letters.replay([entry])
            (replayed if done else missing).append(item.public_id)
        return replayed, missing, len(replayed)

    async def purge(
        self, service: str, ids: Sequence[str], everything: bool
    ) -> tuple[list[str], list[str], int]:
        """(purged ids, not-found ids, count); with ``everything`` and no ids, every letter in scope.

        Each id is one XDEL, whose reply says whether that letter was there; a whole stream is
        counted and deleted in one script. So the count is what Redis deleted.
        """
        if not ids and not everything:
            raise InvalidArgument("give ids, or all=true to purge every dead letter in scope")
        if not ids:
            total = 0
            for name in await self._scope(service):
                with translate_redis_errors("purge dead letters"):
                    total += int(await self._scripts.purge_dead(keys=[self.queue_for(name).keys.dead]))
            return [], [], total
        if service:
            check_name(service, "service_name")
        requested = self._requested(ids, service)

        async def delete(item: Requested) -> int:
            if item.target is None:
                return 0
            name, entry = item.target
            return await self.queue_for(name).dead_letters.purge([entry])

        purged: list[str] = []
        missing: list[str] = []
        for start in range(0, len(requested), PURGE_BATCH):
            batch = requested[start : start + PURGE_BATCH]
            for item, done in zip(batch, await asyncio.gather(*(delete(i) for i in batch)), strict=True):
                (purged if done else missing).append(item.public_id)
        return purged, missing, len(purged)


def rows(name: str, stats: QueueStats, split: Split) -> list[router_pb2.QueueStats]:
    """A service's GetQueueStats rows, one per priority, from its totals and its split."""
    out = []
    for n, priority in enumerate(PRIORITIES):
        p = stats.priorities[priority]
        out.append(
            router_pb2.QueueStats(
                service_name=name,
                priority=FROM_QUEUE[priority],  # type: ignore[arg-type]
                depth=max(0, p.depth - p.in_flight),
                in_flight=p.in_flight,
                delayed=split[n],
                dead_letters=split[3 + n],
                oldest_age=dur(p.oldest_age or 0.0),
            )
        )
    return out


@dataclass(frozen=True)
class Requested:
    """A requested dead-letter id and the (service, stream id) it names, or None if none."""

    public_id: str
    target: tuple[str, str] | None


def parse_dead_id(public_id: str) -> tuple[str, str] | None:
    """``<service>/<ms>-<seq>`` as (service, canonical stream id), or None when it cannot exist."""
    name, sep, entry = public_id.rpartition("/")
    parsed = stream_id(entry)
    if not sep or not is_name(name) or parsed is None:
        return None
    return name, f"{parsed[0]}-{parsed[1]}"


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


def _make_token(service: str, positions: dict[str, str]) -> str:
    state = {"s": service, "p": positions}
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def _read_token(token: str, service: str, scope: Sequence[str]) -> dict[str, str]:
    """The positions a page token carries: service -> dead id to read after ("" = from the start).

    Anything but a token this code made for the same ``service_name`` is INVALID_ARGUMENT:
    a position goes into XRANGE as ``"(" + position``, which Redis refuses unless it is a
    stream id below the largest one, and deeply nested JSON makes ``json.loads`` raise
    RecursionError.
    """
    refused = InvalidArgument(
        "page_token is not one this server issued for this service_name; start again without it"
    )
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError, binascii.Error, RecursionError):
        raise refused from None
    if not isinstance(state, dict) or state.get("s") != service or not isinstance(state.get("p"), dict):
        raise refused
    known = set(scope)
    positions: dict[str, str] = {}
    for name, after in state["p"].items():
        if name not in known or not isinstance(after, str):
            raise refused
        at = read_after(after) if after else (0, 0)
        if at is None:
            raise refused
        positions[name] = f"{at[0]}-{at[1]}" if after else ""
    return positions
