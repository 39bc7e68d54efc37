"""The registry's Lua operations, loaded once from ``lua/*.lua`` and called by SHA.

Each ``<op>.lua`` is prefixed with ``_common.lua``; ``register_script`` runs EVALSHA and
loads the script again when the server lost it (e.g. after a restart).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from redis.commands.core import AsyncScript

OPERATIONS = ("register", "heartbeat", "deregister", "reap", "set_health", "leader", "queue_split")


@functools.cache
def source(operation: str) -> str:
    """The full text of one operation (common helpers + the operation)."""
    lua = resources.files(__package__) / "lua"
    common = (lua / "_common.lua").read_text(encoding="utf-8")
    return f"{common}\n{(lua / f'{operation}.lua').read_text(encoding='utf-8')}"


class Scripts:
    """The registered scripts of one client; attributes are named after the operations."""

    register: AsyncScript
    heartbeat: AsyncScript
    deregister: AsyncScript
    reap: AsyncScript
    set_health: AsyncScript
    leader: AsyncScript
    queue_split: AsyncScript

    def __init__(self, client: Any) -> None:
        for operation in OPERATIONS:
            setattr(self, operation, client.register_script(source(operation)))
