"""The mesh's one rate limiter: exact sliding-window limits shared through Redis.

Every decision is one Lua script (``lua/ratelimit.lua``) run by SHA: it drops calls older
than the window, checks every limit that applies (e.g. per upstream *and* per client), and
records the call in all of them only when all have room. Because the script is atomic and
uses the Redis server's clock, any number of replicas together admit at most ``limit``
calls in any window of ``window_s`` — exact, not approximate (a sliding-window *log*,
one sorted-set entry per admitted call; fine for the per-minute limits of third-party APIs).

Denied calls get ``retry_after``: the time until the oldest call in the fullest window
leaves it, i.e. the earliest moment a retry can succeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.core.errors import translate_redis_errors
from services.core.ids import unique_id
from services.core.lua import lua_source
from services.core.redis_client import AnyRedis

_SCRIPT = lua_source("services.core", "ratelimit")


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` calls per ``window_s`` on ``key`` (0 = unlimited)."""

    key: str
    limit: int


@dataclass(frozen=True)
class Decision:
    """Whether the call may go ahead, and if not, how long to wait before retrying."""

    allowed: bool
    retry_after: float


class RateLimiter:
    """Checks a set of limits in one atomic step (the keys must share one hash tag)."""

    def __init__(self, redis: AnyRedis, window_s: float) -> None:
        self.window_us = max(1, round(window_s * 1_000_000))
        self._script: Any = redis.register_script(_SCRIPT)

    async def acquire(self, limits: Sequence[Limit]) -> Decision:
        """Admit and record one call against every limit, or deny it with a retry delay."""
        active = [lim for lim in limits if lim.limit > 0]
        if not active:
            return Decision(True, 0.0)
        keys = [lim.key for lim in active]
        # The sorted-set member must be unique across replicas and calls.
        args = [self.window_us, unique_id(), *(lim.limit for lim in active)]
        # A burst past the connection pool waits in the pool (services.core.redis_client).
        with translate_redis_errors("rate limiter"):
            allowed, wait_us = await self._script(keys=keys, args=args)
        return Decision(bool(int(allowed)), int(wait_us) / 1_000_000)
