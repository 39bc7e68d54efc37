"""Every Redis key the mesh uses is built here, and nowhere else.

Rules (DESIGN.md "Redis"): every key starts with ``wm:``; every key carries a
``{hash tag}`` naming its group, so that all the keys one Lua script or transaction
touches live in one Redis Cluster slot. A group is one queue, one webhook provider, one
registered service, one upstream: the unit that a script works on.

Layout (``<x>`` is a validated name part)::

    wm:q:{<queue>}:p:<priority>       durable-queue stream, one per priority
    wm:q:{<queue>}:delayed            retries waiting for their time (sorted set)
    wm:q:{<queue>}:dead               dead-letter stream
    wm:q:{<queue>}:<name>             any further per-queue structure
    wm:wh:{<provider>}:<name>         webhook intake state of one provider
    wm:reg:{<service>}:<name>         registry state of one service
    wm:reg:{global}:<name>            registry-wide state (service index, change feed)
    wm:gw:{<service_id>}:<name>       gateway state of one upstream (rate limits, tokens)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "wm"
GLOBAL = "global"
PRIORITIES = ("high", "normal", "low")

_NAME_PART = re.compile(r"[A-Za-z0-9._\-:@/]{1,200}")


class InvalidKeyPart(ValueError):
    """A name part would make an ambiguous or cross-slot key."""


def _checked(part: str, what: str) -> str:
    if not _NAME_PART.fullmatch(part):
        raise InvalidKeyPart(
            f"{what} {part!r} cannot be used in a Redis key: use 1-200 characters of "
            "letters, digits and . _ - : @ / (no braces or spaces)"
        )
    return part


def key(group: str, tag: str, *parts: str) -> str:
    """``wm:<group>:{<tag>}:<parts...>``: the single constructor behind every key."""
    _checked(group, "key group")
    _checked(tag, "hash tag")
    suffix = ":".join(_checked(p, "key part") for p in parts)
    return f"{PREFIX}:{group}:{{{tag}}}" + (f":{suffix}" if suffix else "")


def key_part(part: str) -> str:
    """``part``, checked as :func:`key` checks it: for hot paths that append one part to a
    prefix built once with :func:`key` (same keys, without re-checking the constant parts)."""
    return _checked(part, "key part")


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one durable queue; all share the queue's hash tag (one slot)."""

    name: str

    def __post_init__(self) -> None:
        _checked(self.name, "queue name")

    def stream(self, priority: str) -> str:
        if priority not in PRIORITIES:
            raise InvalidKeyPart(f"priority {priority!r} is not one of {', '.join(PRIORITIES)}")
        return key("q", self.name, "p", priority)

    @property
    def streams(self) -> list[str]:
        """Streams in the order they are drained: high, normal, low."""
        return [self.stream(p) for p in PRIORITIES]

    @property
    def delayed(self) -> str:
        return key("q", self.name, "delayed")

    @property
    def dead(self) -> str:
        return key("q", self.name, "dead")

    def extra(self, *parts: str) -> str:
        return key("q", self.name, *parts)


def webhook_key(provider_id: str, *parts: str) -> str:
    """A key of one webhook provider's intake state."""
    return key("wh", provider_id, *parts)


def registry_key(service_name: str, *parts: str) -> str:
    """A key of one registered service's state."""
    return key("reg", service_name, *parts)


def registry_global_key(*parts: str) -> str:
    """A registry-wide key (service index, change feed)."""
    return key("reg", GLOBAL, *parts)


def gateway_key(service_id: str, *parts: str) -> str:
    """A key of one gateway upstream's shared state (rate limits, OAuth2 token)."""
    return key("gw", service_id, *parts)
