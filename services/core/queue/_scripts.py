"""The Lua operations, loaded once from ``lua/*.lua`` and called by SHA (EVALSHA).

Each ``<op>.lua`` is prefixed with ``_common.lua`` (shared helpers), so every operation
stays one file and one atomic script. ``register_script`` calls EVALSHA and falls back to
loading the script when the server does not know it (e.g. after a restart).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from redis.commands.core import AsyncScript

OPERATIONS = ("enqueue", "claim", "ack", "ack_many", "retry", "dead", "renew", "replay", "forget", "stats")


@functools.cache
def source(operation: str) -> str:
    """The full text of one operation script (common helpers + the operation)."""
    lua = resources.files(__package__) / "lua"
    common = (lua / "_common.lua").read_text(encoding="utf-8")
    body = (lua / f"{operation}.lua").read_text(encoding="utf-8")
    return f"{common}\n{body}"


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
