"""Where webhook state lives in Redis, and how the Lua scripts are loaded.

Per provider, the durable queue ``wm:q:{webhooks:<provider>}:*`` (services/core/queue).
History and the normalised-events stream share one hash tag, ``{_mesh}``, so that the
worker's last step (append + record) is one atomic script::

    wm:wh:{_mesh}:ev:<event_id>     hash: one event's history (TTL = history retention)
    wm:wh:{_mesh}:log:<provider>    stream: the provider's events in arrival order (MINID trim)
    wm:wh:{_mesh}:normalized        stream: processed events, tailed by Subscribe (MINID trim)
    wm:wh:{_mesh}:pub:<event_id>    string: the event's cursor once appended (dedup of appends)

One slot for all history is fine at webhook rates (thousands/s); shard by provider before
Redis Cluster needs more. Provider ids cannot start with ``_``, so ``_mesh`` never clashes.
"""

from __future__ import annotations

from services.core.keys import key_part, webhook_key
from services.core.lua import lua_source

MESH_GROUP = "_mesh"
_EVENT_PREFIX = webhook_key(MESH_GROUP, "ev") + ":"  # built once: these run per webhook
_LOG_PREFIX = webhook_key(MESH_GROUP, "log") + ":"
_MARKER_PREFIX = webhook_key(MESH_GROUP, "pub") + ":"


def event_key(event_id: str) -> str:
    return _EVENT_PREFIX + key_part(event_id)


def log_key(provider_id: str) -> str:
    return _LOG_PREFIX + key_part(provider_id)


def stream_key() -> str:
    return webhook_key(MESH_GROUP, "normalized")


def marker_key(event_id: str) -> str:
    return _MARKER_PREFIX + key_part(event_id)


def load_lua(name: str) -> str:
    """``lua/<name>.lua`` prefixed with ``lua/_common.lua`` (one atomic script per operation)."""
    return lua_source("services.webhooks", name)
