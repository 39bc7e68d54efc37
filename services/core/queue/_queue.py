"""DurableQueue: the producer and consumer operations of one queue on Redis Streams.

Every state change is one Lua script over keys in the queue's slot (see ``lua/``), so a
crash between two commands cannot lose or duplicate a message. Delivery is at-least-once.

Backpressure: ``submit(..., max_depth=N)`` refuses a new message with :class:`QueueFull`
when the queue's *backlog* is already ``N`` or more, inside the enqueue script itself (no
extra round trip, exact under any concurrency). The backlog is what was accepted but not
yet handed to a consumer: ready entries, delayed messages and parked retries, and messages
waiting behind their ordering key (:attr:`QueueStats.backlog`). In-flight entries do not
count (each consumer caps its own, and they are being worked on), nor do dead letters (kept
for inspection, not moving). Only new messages are limited: a repeated idempotency key
still answers "duplicate", and retries and replays of accepted messages always go through.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis.exceptions
from redis.typing import EncodableT

from services.core.errors import translate_redis_errors
from services.core.ids import unique_id
from services.core.keys import QueueKeys
from services.core.queue._dead import DeadLetters
from services.core.queue._envelope import (
    Delivery,
    Priority,
    delivery_from,
    pairs,
    to_fields,
)
from services.core.queue._errors import QueueFull
from services.core.queue._policy import Decision, RetryPolicy, decide
from services.core.queue._scripts import Scripts
from services.core.queue._stats import QueueStats, queue_stats
from services.core.redis_client import AnyRedis

DEFAULT_GROUP = "workers"
DEFAULT_WEIGHTS = (70, 20, 10)
DEFAULT_MAX_DELIVERIES = 10
DEFAULT_IDEMPOTENCY_TTL_S = 24 * 3600.0
DEFAULT_DEAD_RETENTION_S = 7 * 24 * 3600.0
PROMOTE_LIMIT = 1000


@dataclass(frozen=True)
class ClaimResult:
    """What one claim handed out, and when the next delayed retry falls due."""

    deliveries: list[Delivery]
    next_due: float | None
    """Seconds until the earliest delayed entry is due; ``None`` when there is none."""


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Enqueued(NamedTuple):
    """The outcome of :meth:`DurableQueue.submit`."""

    message_id: str  # the first message's id when ``duplicate``
    duplicate: bool  # the idempotency key was seen: nothing was added


class DurableQueue:
    """One named queue: three priority streams, a delayed set and a dead-letter stream.

    The client must return bytes (``decode_responses=False``): payloads are opaque bytes.
    Dead-letter operations and stats live in :class:`DeadLetters` and :func:`queue_stats`
    and are reachable as ``queue.dead_letters`` and ``await queue.stats()``.
    """

    def __init__(
        self,
        client: AnyRedis,
        name: str,
        *,
        group: str = DEFAULT_GROUP,
        policy: RetryPolicy | None = None,
        weights: tuple[int, int, int] = DEFAULT_WEIGHTS,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL_S,
        dead_retention: float = DEFAULT_DEAD_RETENTION_S,
    ) -> None:
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be >= 1")
        self.client = client
        self.name = name
        self.keys = QueueKeys(name)
        self._idem_prefix = self.keys.extra("idem", "x")[:-1]  # built (and checked) once, not per call
        self.group = group
        self.policy = policy or RetryPolicy()
        self.weights = weights
        self.max_deliveries = max_deliveries
        self.idempotency_ttl = idempotency_ttl
        self.dead_retention = dead_retention
        self._scripts = Scripts(client)
        self._rng = random.Random()
        self._slot_keys = [
            *self.keys.streams,
            self.keys.delayed,
            self.keys.extra("parked"),
            self.keys.dead,
            self.keys.extra("ord", "holders"),
            self.keys.extra("ord", "seq"),
            self.keys.extra("ord", "waiting"),
            self.keys.extra("reclaim"),
        ]
        self.dead_letters = DeadLetters(self)

    def __repr__(self) -> str:
        return f"DurableQueue(name={self.name!r}, group={self.group!r})"

    @property
    def scripts(self) -> Scripts:
        """The queue's Lua operations (for the modules beside this one)."""
        return self._scripts

    @property
    def slot_keys(self) -> list[str]:
        """The fixed keys every script receives (all in the queue's hash-tag slot)."""
        return list(self._slot_keys)

    def idempotency_key(self, key: str) -> str:
        """Redis key remembering an idempotency key (hashed: any text is allowed)."""
        return self._idem_prefix + hashlib.sha256(key.encode()).hexdigest()[:40]

    async def enqueue(
        self,
        payload: bytes,
        priority: Priority | str = Priority.NORMAL,
        *,
        message_id: str | None = None,
        max_attempts: int | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float | None = None,
        idempotency_key: str | None = None,
        ordering_key: str | None = None,
        max_depth: int = 0,
    ) -> str:
        """Add a message; returns its id (the first one's, for a repeated idempotency key)."""
        added = await self.submit(
            payload,
            priority,
            message_id=message_id,
            max_attempts=max_attempts,
            headers=headers,
            delay=delay,
            idempotency_key=idempotency_key,
            ordering_key=ordering_key,
            max_depth=max_depth,
        )
        return added.message_id

    async def submit(
        self,
        payload: bytes,
        priority: Priority | str = Priority.NORMAL,
        *,
        message_id: str | None = None,
        max_attempts: int | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float | None = None,
        idempotency_key: str | None = None,
        ordering_key: str | None = None,
        max_depth: int = 0,
    ) -> Enqueued:
        """Add a message and say whether it was new or a repeat of a seen idempotency key.

        ``ordering_key``: messages sharing it are handed out one at a time, in enqueue order.
        ``delay``: seconds before it becomes claimable (counted from Redis' clock).
        ``max_depth``: refuse a new message with :class:`QueueFull` when the backlog is at
        least this (0 = no limit); checked after the idempotency key, so a repeat of a held
        message is still a duplicate, and a refused message's key is not remembered.
        """
        attempts = max_attempts if max_attempts is not None else self.policy.max_attempts
        if attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if max_depth < 0:
            raise ValueError("max_depth must be >= 0 (0 = no limit)")
        message_id = message_id or unique_id()
        fields = to_fields(message_id, payload, Priority(priority), attempts, headers, ordering_key)
        keys = self.slot_keys
        if idempotency_key is not None:
            keys.append(self.idempotency_key(idempotency_key))
        token = unique_id()
        args: list[EncodableT] = [
            self.group,
            _ms(self.idempotency_ttl),
            _ms(delay or 0.0),
            max_depth,
            *fields,
            "token",
            token,
        ]
        with translate_redis_errors("enqueue"):
            created, first = await self._scripts.enqueue(keys=keys, args=args)
        if int(created) < 0:
            raise QueueFull(self.name, int(first), max_depth)
        return Enqueued(_str(first), duplicate=not int(created))

    async def claim(self, consumer: str, count: int, lease: float) -> ClaimResult:
        """Hand up to ``count`` entries to ``consumer`` for ``lease`` seconds (one script).

        Due retries are promoted first, then entries idle for longer than ``lease`` (their
        holder stopped renewing) are reclaimed, then new entries are read high → normal →
        low by weight. Reclaim compares idle time with the *claimer's* lease, so every
        consumer of one queue must use the same lease.
        """
        if count < 1:
            return ClaimResult([], None)
        args: list[EncodableT] = [
            self.group,
            consumer,
            count,
            _ms(lease),
            *self.weights,
            self.max_deliveries,
            self._rng.random(),
            PROMOTE_LIMIT,
            _ms(self.dead_retention),
        ]
        with translate_redis_errors("claim"):
            _now, next_due, rows = await self._scripts.claim(keys=self._slot_keys, args=args)
        deliveries = [
            delivery_from(pairs(fields), _str(entry_id), int(attempt), consumer)
            for _index, entry_id, fields, attempt in rows
        ]
        return ClaimResult(deliveries, None if next_due < 0 else next_due / 1000)

    async def wait(self, consumer: str, count: int, block: float) -> list[Delivery]:
        """Block up to ``block`` s for new entries (no busy loop when the queue is idle).

        A blocking read cannot run inside a script; this plain XREADGROUP only ever gets
        never-delivered entries (delivery 1), so nothing that claim checks is skipped. Keep
        ``block`` below the client's socket timeout.
        """
        if count < 1:
            return []
        streams: dict[Any, Any] = {key: ">" for key in self.keys.streams}

        async def read() -> Any:
            return await self.client.xreadgroup(
                self.group, consumer, streams, count=count, block=max(1, _ms(block))
            )

        with translate_redis_errors("wait"):
            try:
                reply: Any = await read()
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # Producers do not create the group (each claim does): one deleted since the
                # last claim is recreated from the stream's start, so nothing is skipped.
                await self._ensure_groups()
                reply = await read()
        deliveries: list[Delivery] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                fields = {k if isinstance(k, bytes) else k.encode(): v for k, v in fields.items()}
                attempts = int(fields.get(b"attempts", b"0"))
                deliveries.append(delivery_from(fields, _str(entry_id), attempts + 1, consumer))
        deliveries.sort(key=lambda d: d.stream_index)
        return deliveries

    async def _ensure_groups(self) -> None:
        for key in self.keys.streams:
            try:
                await self.client.xgroup_create(key, self.group, id="0", mkstream=True)
            except redis.exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def renew(self, deliveries: Sequence[Delivery]) -> set[str]:
        """Extend the leases of held deliveries; returns entry ids this holder lost."""
        by_consumer: dict[str, list[Delivery]] = {}
        for d in deliveries:
            by_consumer.setdefault(d.consumer, []).append(d)
        lost: set[str] = set()
        for consumer, held in by_consumer.items():
            args: list[EncodableT] = [self.group, consumer]
            for d in held:
                args += [d.stream_index, d.entry_id]
            with translate_redis_errors("renew"):
                reply = await self._scripts.renew(keys=self._slot_keys, args=args)
            for position in reply:  # by position: two streams can share an entry id
                gone = held[int(position) - 1]
                gone.lease_lost = True
                lost.add(gone.entry_id)
        return lost

    async def ack(self, delivery: Delivery) -> bool:
        """Done: remove the entry (XACK + XDEL). False when the lease had been lost."""
        args: list[EncodableT] = [
            self.group,
            delivery.consumer,
            delivery.stream_index,
            delivery.entry_id,
            delivery.message_id,
            delivery.ordering_key or "",
        ]
        with translate_redis_errors("ack"):
            return bool(await self._scripts.ack(keys=self._slot_keys, args=args))

    async def ack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Ack many deliveries in one script per consumer; per delivery, as :meth:`ack`."""
        by_consumer: dict[str, list[int]] = {}
        for index, d in enumerate(deliveries):
            by_consumer.setdefault(d.consumer, []).append(index)
        done = [False] * len(deliveries)
        for consumer, indexes in by_consumer.items():
            args: list[EncodableT] = [self.group, consumer]
            for index in indexes:
                d = deliveries[index]
                args += [d.stream_index, d.entry_id, d.message_id, d.ordering_key or ""]
            with translate_redis_errors("ack"):
                reply = await self._scripts.ack_many(keys=self._slot_keys, args=args)
            for index, acked in zip(indexes, reply, strict=True):
                done[index] = bool(acked)
        return done

    async def retry(self, delivery: Delivery, delay: float, error: str = "") -> bool:
        """Park the message for ``delay`` s, then hand it out again as the next attempt."""
        args: list[EncodableT] = [
            self.group,
            delivery.consumer,
            delivery.stream_index,
            delivery.entry_id,
            _ms(delay),
            delivery.attempt,
            error,
            unique_id(),
            delivery.message_id,
            delivery.ordering_key or "",
        ]
        with translate_redis_errors("retry"):
            return bool(await self._scripts.retry(keys=self._slot_keys, args=args))

    async def dead(self, delivery: Delivery, error: str) -> bool:
        """Move the message to dead letters with its attempts and last error."""
        args: list[EncodableT] = [
            self.group,
            delivery.consumer,
            delivery.stream_index,
            delivery.entry_id,
            delivery.attempt,
            error,
            _ms(self.dead_retention),
            delivery.message_id,
            delivery.ordering_key or "",
        ]
        with translate_redis_errors("dead"):
            return bool(await self._scripts.dead(keys=self._slot_keys, args=args))

    async def settle(self, delivery: Delivery, error: BaseException | None) -> Decision | None:
        """Apply a handler's outcome: ack on success, else :func:`decide` retry or dead."""
        if error is None:
            await self.ack(delivery)
            return None
        decision = decide(error, delivery.attempt, delivery.max_attempts, self.policy)
        if decision.action == "retry":
            await self.retry(delivery, decision.delay, decision.error)
        else:
            await self.dead(delivery, decision.error)
        return decision

    async def forget_consumer(self, consumer: str) -> bool:
        """Drop a stopped consumer from the group unless it still holds entries."""
        with translate_redis_errors("forget consumer"):
            kept = await self._scripts.forget(keys=self._slot_keys, args=[self.group, consumer])
        return int(kept) == 0

    async def stats(self) -> QueueStats:
        """Depths, in-flight, oldest age, delayed and dead counts in one round trip."""
        return await queue_stats(self)
