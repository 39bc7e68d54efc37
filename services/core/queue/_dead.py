"""Dead letters of one queue: list (paged), replay, purge, trim by age.

Replay moves letters back through the enqueue path (ordering gate included) with the same
message id, a ``replayed_from`` field and the attempt counter reset; a letter replays at
most once because the script deletes it in the same step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from services.core.errors import translate_redis_errors
from services.core.queue._envelope import DeadLetter, dead_letter_from, pairs

if TYPE_CHECKING:
    from services.core.queue._queue import DurableQueue

REPLAY_BATCH = 200


@dataclass(frozen=True)
class DeadLetterPage:
    """One page of dead letters, oldest first; pass ``next_after`` to get the next page."""

    letters: list[DeadLetter]
    next_after: str | None


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fields(raw: object) -> dict[bytes, bytes]:
    if isinstance(raw, dict):
        return {k if isinstance(k, bytes) else k.encode(): v for k, v in raw.items()}
    return pairs(raw)  # type: ignore[arg-type]


class DeadLetters:
    """Operator actions on the dead-letter stream of ``queue``."""

    def __init__(self, queue: DurableQueue) -> None:
        self._queue = queue
        self._key = queue.keys.dead

    async def list(self, *, after: str | None = None, count: int = 100) -> DeadLetterPage:
        """Up to ``count`` letters after the dead id ``after`` (exclusive), oldest first."""
        start = f"({after}" if after else "-"
        with translate_redis_errors("list dead letters"):
            rows: Any = await self._queue.client.xrange(self._key, start, "+", count=count)
        letters = [dead_letter_from(_str(i), _fields(f)) for i, f in rows]
        full = len(letters) == count
        return DeadLetterPage(letters, letters[-1].dead_id if full and letters else None)

    async def count(self) -> int:
        with translate_redis_errors("count dead letters"):
            return int(await self._queue.client.xlen(self._key))

    async def replay(self, dead_ids: Sequence[str] | None = None) -> int:
        """Replay the given letters, or every letter present when this call started."""
        q = self._queue
        if dead_ids is not None:
            if not dead_ids:
                return 0
            with translate_redis_errors("replay dead letters"):
                n, _ = await q._scripts.replay(keys=q.slot_keys, args=[q.group, "ids", *dead_ids])
            return int(n)
        with translate_redis_errors("replay dead letters"):
            newest: Any = await q.client.xrevrange(self._key, "+", "-", count=1)
        if not newest:
            return 0
        end = _str(newest[0][0])
        total = 0
        while True:
            with translate_redis_errors("replay dead letters"):
                n, _ = await q._scripts.replay(
                    keys=q.slot_keys, args=[q.group, "range", "-", end, REPLAY_BATCH]
                )
            total += int(n)
            if int(n) < REPLAY_BATCH:
                return total

    async def purge(self, dead_ids: Sequence[str] | None = None) -> int:
        """Delete the given letters, or all of them; returns how many were deleted."""
        with translate_redis_errors("purge dead letters"):
            if dead_ids is None:
                n = await self._queue.client.xlen(self._key)
                await self._queue.client.delete(self._key)
                return int(n)
            if not dead_ids:
                return 0
            return int(await self._queue.client.xdel(self._key, *dead_ids))

    async def trim(self, older_than: float) -> int:
        """Drop letters that died more than ``older_than`` seconds ago (XTRIM MINID)."""
        with translate_redis_errors("trim dead letters"):
            seconds, micros = await self._queue.client.time()
            cutoff = int(seconds) * 1000 + int(micros) // 1000 - round(older_than * 1000)
            return int(await self._queue.client.xtrim(self._key, minid=max(0, cutoff)))
