"""Test helpers that ship with the queue, so users test with the same tools we do."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

from services.core.queue._envelope import Delivery

Predicate = Callable[[], bool | Awaitable[bool]]


async def eventually(
    predicate: Predicate, *, within: float = 5.0, interval: float = 0.02, what: str = ""
) -> None:
    """Poll ``predicate`` until it holds; fail with ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        verdict = predicate()
        if inspect.isawaitable(verdict):
            verdict = await verdict
        if verdict:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s: {what or predicate}")
        await asyncio.sleep(interval)


class RecordingHandler:
    """A handler that records every delivery, then runs ``behaviour`` (if any).

    ``behaviour`` may raise to make the delivery fail, or sleep to make it slow.
    """

    def __init__(self, behaviour: Callable[[Delivery], Awaitable[None]] | None = None) -> None:
        self.behaviour = behaviour
        self.deliveries: list[Delivery] = []
        self.active = 0
        self.max_active = 0

    async def __call__(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.behaviour is not None:
                await self.behaviour(delivery)
        finally:
            self.active -= 1

    @property
    def message_ids(self) -> list[str]:
        return [d.message_id for d in self.deliveries]

    async def wait_for(self, count: int, within: float = 5.0) -> None:
        """Wait until at least ``count`` deliveries were recorded."""
        await eventually(
            lambda: len(self.deliveries) >= count,
            within=within,
            what=f"{count} deliveries (have {len(self.deliveries)})",
        )
