"""Test helpers for services that receive routed messages (ship with the SDK).

:class:`RecordingSink` is a handler that records every message it gets and can be told
to fail; pass it to :class:`~services.registry.sdk.MeshInstance` to run a real sink in
the test's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from services.registry.sdk import Message

Behaviour = Callable[[Message], Awaitable[None]]


class RecordingSink:
    """Records each delivered message (in arrival order), then runs ``behaviour`` if any."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        copy = Message()
        copy.CopyFrom(message)
        self.messages.append(copy)
        if self.behaviour is not None:
            await self.behaviour(message)

    @property
    def message_ids(self) -> list[str]:
        return [m.message_id for m in self.messages]

    @property
    def unique_ids(self) -> set[str]:
        return set(self.message_ids)

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` distinct messages arrived; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while len(self.unique_ids) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{count} messages not delivered in {timeout}s (have {len(self.unique_ids)})"
                )
            await asyncio.sleep(0.02)
