"""What a queue entry holds, and the value objects handed to handlers and operators.

An entry is a flat field/value list in a Redis stream (the Lua scripts use the same field
names, see ``lua/_common.lua``). ``attempts`` counts attempts already made *before* the
entry's current delivery; the attempt number a handler sees is ``attempts`` plus the
stream's delivery count, so a crash (lease expiry) counts as an attempt too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Priority(StrEnum):
    """The three priority streams of a queue, drained high → normal → low by weight."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


PRIORITY_ORDER: tuple[Priority, ...] = (Priority.HIGH, Priority.NORMAL, Priority.LOW)


@dataclass(eq=False)
class Delivery:
    """One claimed entry: what the handler gets, plus what the queue needs to settle it.

    ``message_id`` is stable across retries and replays and ``attempt`` starts at 1, so a
    receiver can deduplicate (at-least-once delivery made effectively-once).
    """

    message_id: str
    payload: bytes
    attempt: int
    max_attempts: int
    priority: Priority
    headers: dict[str, str]
    ordering_key: str | None
    enqueued_at_ms: int
    replayed_from: str | None
    last_error: str | None
    entry_id: str
    consumer: str
    lease_lost: bool = field(default=False)
    """Set when a renewal found another consumer holds the entry; settling is then a no-op."""

    @property
    def stream_index(self) -> int:
        return PRIORITY_ORDER.index(self.priority) + 1


@dataclass(frozen=True)
class DeadLetter:
    """An entry in the dead-letter stream; ``dead_id`` is what replay/purge take."""

    dead_id: str
    message_id: str
    payload: bytes
    priority: Priority
    attempts: int
    last_error: str
    failed_at_ms: int
    headers: dict[str, str]
    ordering_key: str | None
    replayed_from: str | None


def _text(fields: Mapping[bytes, bytes], name: str) -> str | None:
    value = fields.get(name.encode())
    return None if value is None else value.decode()


def to_fields(
    message_id: str,
    payload: bytes,
    priority: Priority,
    max_attempts: int,
    headers: Mapping[str, str] | None,
    ordering_key: str | None,
) -> list[str | bytes]:
    """The envelope of a new message as the flat list the enqueue script takes."""
    flat: list[str | bytes] = [
        "id",
        message_id,
        "payload",
        payload,
        "priority",
        priority.value,
        "attempts",
        "0",
        "max_attempts",
        str(max_attempts),
    ]
    if headers:
        flat += ["headers", json.dumps(dict(headers), separators=(",", ":"))]
    if ordering_key:
        flat += ["okey", ordering_key]
    return flat


def pairs(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    """A flat field/value list (as streams return it) as a dict."""
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def delivery_from(fields: Mapping[bytes, bytes], entry_id: str, attempt: int, consumer: str) -> Delivery:
    return Delivery(
        message_id=_text(fields, "id") or "",
        payload=fields.get(b"payload", b""),
        attempt=attempt,
        max_attempts=int(fields.get(b"max_attempts", b"1")),
        priority=Priority(_text(fields, "priority") or "normal"),
        headers=json.loads(fields.get(b"headers", b"{}")),
        ordering_key=_text(fields, "okey"),
        enqueued_at_ms=int(fields.get(b"enqueued_at", b"0")),
        replayed_from=_text(fields, "replayed_from"),
        last_error=_text(fields, "last_error"),
        entry_id=entry_id,
        consumer=consumer,
    )


def dead_letter_from(dead_id: str, fields: Mapping[bytes, bytes]) -> DeadLetter:
    return DeadLetter(
        dead_id=dead_id,
        message_id=_text(fields, "id") or "",
        payload=fields.get(b"payload", b""),
        priority=Priority(_text(fields, "priority") or "normal"),
        attempts=int(fields.get(b"attempts", b"0")),
        last_error=_text(fields, "last_error") or "",
        failed_at_ms=int(fields.get(b"failed_at", b"0")),
        headers=json.loads(fields.get(b"headers", b"{}")),
        ordering_key=_text(fields, "okey"),
        replayed_from=_text(fields, "replayed_from"),
    )
