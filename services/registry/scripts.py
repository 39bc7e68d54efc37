"""The registry's Lua operations, loaded once from ``lua/*.lua`` and called by SHA.

Each ``<op>.lua`` is prefixed with ``_common.lua``; ``register_script`` runs EVALSHA and
loads the script again when the server lost it (e.g. after a restart).
"""

from __future__ import annotations

from typing import Any

from redis.commands.core import AsyncScript

from services.core.lua import lua_source

OPERATIONS = (
    "register",
    "heartbeat",
    "deregister",
    "discover",
    "reap",
    "set_health",
    "leader",
    "queue_split",
    "purge_dead",
    "admit_target",
)


def source(operation: str) -> str:
    """The full text of one operation (common helpers + the operation)."""
    return lua_source("services.registry", operation)


class Scripts:
    """The registered scripts of one client; attributes are named after the operations."""

    register: AsyncScript
    heartbeat: AsyncScript
    deregister: AsyncScript
    discover: AsyncScript
    reap: AsyncScript
    set_health: AsyncScript
    leader: AsyncScript
    queue_split: AsyncScript
    purge_dead: AsyncScript
    admit_target: AsyncScript

    def __init__(self, client: Any) -> None:
        for operation in OPERATIONS:
            setattr(self, operation, client.register_script(source(operation)))
