"""The Lua operations, loaded once from ``lua/*.lua`` and called by SHA (EVALSHA).

Each ``<op>.lua`` is prefixed with ``_common.lua`` (shared helpers), so every operation
stays one file and one atomic script. ``register_script`` calls EVALSHA and falls back to
loading the script when the server does not know it (e.g. after a restart).
"""

from __future__ import annotations

from typing import Any

from redis.commands.core import AsyncScript

from services.core.lua import lua_source

OPERATIONS = ("enqueue", "claim", "ack", "ack_many", "retry", "dead", "renew", "replay", "forget", "stats")


def source(operation: str) -> str:
    """The full text of one operation script (common helpers + the operation)."""
    return lua_source(__package__ or "services.core.queue", operation)


class Scripts:
    """The registered scripts of one client; attributes are named after the operations."""

    enqueue: AsyncScript
    claim: AsyncScript
    ack: AsyncScript
    ack_many: AsyncScript
    retry: AsyncScript
    dead: AsyncScript
    renew: AsyncScript
    replay: AsyncScript
    forget: AsyncScript
    stats: AsyncScript

    def __init__(self, client: Any) -> None:
        for operation in OPERATIONS:
            setattr(self, operation, client.register_script(source(operation)))
