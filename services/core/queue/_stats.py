"""Cheap queue statistics: one pipelined round trip, no scans."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.core.errors import translate_redis_errors
from services.core.queue._envelope import PRIORITY_ORDER, Priority

if TYPE_CHECKING:
    from services.core.queue._queue import DurableQueue


@dataclass(frozen=True)
class PriorityStats:
    """One priority stream. ``depth`` counts every entry in it, in-flight ones included."""

    depth: int
    in_flight: int
    oldest_age: float | None
    """Seconds since the oldest entry entered the stream; ``None`` when it is empty."""


@dataclass(frozen=True)
class QueueStats:
    priorities: dict[Priority, PriorityStats]
    delayed: int
    dead: int
    ordered_waiting: int
    """Messages waiting behind an earlier one with the same ordering key."""

    @property
    def depth(self) -> int:
        return sum(p.depth for p in self.priorities.values())

    @property
    def in_flight(self) -> int:
        return sum(p.in_flight for p in self.priorities.values())

    @property
    def backlog(self) -> int:
        """Accepted but not yet handed out: what ``submit(max_depth=...)`` compares with.

        Ready entries, delayed messages and parked retries, and messages waiting behind
        their ordering key; in-flight entries and dead letters are not counted.
        """
        ready = sum(max(0, p.depth - p.in_flight) for p in self.priorities.values())
        return ready + self.delayed + self.ordered_waiting

    @property
    def empty(self) -> bool:
        """Nothing to deliver or show: nothing ready, in flight, delayed, ordered-waiting or dead."""
        return self.depth == 0 and self.delayed == 0 and self.ordered_waiting == 0 and self.dead == 0


def _entry_ms(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


async def queue_stats(queue: DurableQueue) -> QueueStats:
    """Collect :class:`QueueStats` with one read-only script on the queue's own node."""
    with translate_redis_errors("queue stats"):
        replies = await queue.scripts.stats(keys=queue.slot_keys, args=[queue.group])
    seconds, micros = replies[0], replies[1]
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    per: dict[Priority, PriorityStats] = {}
    for n, priority in enumerate(PRIORITY_ORDER):
        depth, first, pending = replies[2 + 3 * n : 5 + 3 * n]
        oldest = (now_ms - _entry_ms(first)) / 1000 if first else None
        per[priority] = PriorityStats(int(depth), int(pending), oldest)
    delayed, dead, waiting = replies[11:14]
    return QueueStats(per, int(delayed), int(dead), int(waiting))
