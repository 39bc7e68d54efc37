"""Registrations and leases in Redis: register, heartbeat, deregister, discover, reap.

Per service (one hash tag, so each script touches one Cluster slot) the registry keeps
five hashes keyed by instance id (record, address, lease, first registration, health) and
a sorted set of lease expiries. Every change is one Lua script using Redis' clock, so
replicas never disagree about time. A lease is live while its expiry is in the future:
Discover filters on it, so an expired instance disappears at once even before a reaper
removes it (and publishes EXPIRED, exactly once, from whichever replica reaps it).

A lease id is opaque to clients but carries the service and instance it belongs to, so a
heartbeat needs no global lookup (Cluster-safe).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.typing import EncodableT

from services.core.errors import AlreadyExists, NotFound, translate_redis_errors
from services.core.keys import registry_global_key, registry_key
from services.core.redis_client import AnyRedis
from services.registry.feed import ChangeFeed
from services.registry.scripts import Scripts
from services.registry.timeutil import dur, ts
from services.registry.validation import is_name, valid_service_names
from wedsync.registry.v1 import registry_pb2 as pb

REAP_LIMIT = 500
Event = pb.WatchEventType


def _keys(service: str) -> list[str]:
    return [registry_key(service, part) for part in ("inst", "addr", "lease", "since", "health", "exp")]


def encode_lease(service: str, instance_id: str, token: str) -> str:
    raw = f"{service}\n{instance_id}\n{token}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_lease(lease_id: str) -> tuple[str, str, str]:
    """(service, instance id, token); NotFound for anything that is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(lease_id + "=" * (-len(lease_id) % 4)).decode()
        service, instance_id, token = raw.split("\n")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise NotFound("unknown lease id; register again") from None
    if not is_name(service) or not is_name(instance_id):
        raise NotFound("unknown lease id; register again")
    return service, instance_id, token


def unknown_health() -> pb.InstanceHealth:
    return pb.InstanceHealth(status=pb.HEALTH_STATUS_UNKNOWN)


@dataclass(frozen=True)
class Granted:
    lease: pb.Lease
    new: bool
    changed: bool


class RegistryStore:
    """The registry's state operations; every change is also published to the feed."""

    def __init__(self, client: AnyRedis, feed: ChangeFeed) -> None:
        self.client = client
        self.feed = feed
        self.scripts = Scripts(client)
        self.index_key = registry_global_key("services")
        self._reported: set[str] = set()

    async def register(self, instance: pb.ServiceInstance, ttl_s: float) -> Granted:
        # Keys first: a name the key builder refuses must fail before anything is written
        # (the service index once kept such a name for good, and broke every checker tick).
        keys = _keys(instance.service_name)
        token = secrets.token_urlsafe(12)
        args: list[EncodableT] = [
            instance.instance_id,
            instance.address,
            instance.SerializeToString(deterministic=True),
            token,
            round(ttl_s * 1000),
            unknown_health().SerializeToString(),
        ]
        with translate_redis_errors("register"):
            await self.client.sadd(self.index_key, instance.service_name)
            reply = await self.scripts.register(keys=keys, args=args)
        if int(reply[0]) == -1:
            holder = reply[1].decode() if isinstance(reply[1], bytes) else reply[1]
            raise AlreadyExists(
                f"instance id {instance.instance_id!r} of {instance.service_name!r} is already "
                f"registered from {holder}; use a unique instance_id per instance, or deregister "
                "the old one (or let its lease expire) first"
            )
        new, expires, _since, changed = (int(x) for x in reply)
        lease = pb.Lease(
            lease_id=encode_lease(instance.service_name, instance.instance_id, token),
            ttl=dur(ttl_s),
            expires_at=ts(expires),
            service_name=instance.service_name,
            instance_id=instance.instance_id,
        )
        if new or changed:
            health = unknown_health() if new else None
            await self._publish(Event.WATCH_EVENT_TYPE_REGISTERED, instance, health)
        return Granted(lease, bool(new), bool(changed))

    async def heartbeat(self, lease_id: str) -> pb.Lease:
        service, instance_id, token = decode_lease(lease_id)
        with translate_redis_errors("heartbeat"):
            reply = await self.scripts.heartbeat(keys=_keys(service), args=[instance_id, token])
        if int(reply[0]) < 0:
            raise NotFound("lease unknown or expired; register again")
        return pb.Lease(
            lease_id=lease_id,
            ttl=dur(int(reply[1]) / 1000),
            expires_at=ts(int(reply[0])),
            service_name=service,
            instance_id=instance_id,
        )

    async def deregister(self, service: str, instance_id: str, token: str = "") -> bool:
        with translate_redis_errors("deregister"):
            reply = await self.scripts.deregister(keys=_keys(service), args=[instance_id, token])
        if int(reply[0]) != 1:
            return False
        instance = pb.ServiceInstance.FromString(reply[1]) if reply[1] else None
        if instance is None:
            instance = pb.ServiceInstance(service_name=service, instance_id=instance_id)
        health = pb.InstanceHealth.FromString(reply[2]) if reply[2] else None
        await self._publish(Event.WATCH_EVENT_TYPE_DEREGISTERED, instance, health)
        return True

    async def services(self) -> list[str]:
        """Every registered service name, sorted; index members that are not valid names are left out."""
        with translate_redis_errors("list services"):
            names = await self.client.smembers(self.index_key)
        return valid_service_names(names, self._reported, f"service index {self.index_key}")

    async def discover(self, service: str) -> list[pb.DiscoveredInstance]:
        """Live instances of ``service``, sorted by instance id (one script: Redis' clock, one slot)."""
        with translate_redis_errors("discover"):
            reply: Any = await self.scripts.discover(keys=_keys(service))
        out = []
        for _id, expiry, record, since, health in reply[1:]:
            found = pb.DiscoveredInstance(
                instance=pb.ServiceInstance.FromString(record),
                health=pb.InstanceHealth.FromString(health) if health else unknown_health(),
                lease_expires_at=ts(float(expiry)),
                registered_at=ts(int(since)),
            )
            out.append(found)
        out.sort(key=lambda d: d.instance.instance_id)
        return out

    async def reap(self, service: str) -> int:
        """Remove expired instances of ``service``; publish EXPIRED for each one removed."""
        with translate_redis_errors("reap expired leases"):
            flat: Any = await self.scripts.reap(keys=_keys(service), args=[REAP_LIMIT])
        for i in range(0, len(flat), 3):
            instance_id = flat[i].decode()
            instance = pb.ServiceInstance.FromString(flat[i + 1]) if flat[i + 1] else None
            if instance is None:
                instance = pb.ServiceInstance(service_name=service, instance_id=instance_id)
            health = pb.InstanceHealth.FromString(flat[i + 2]) if flat[i + 2] else None
            await self._publish(Event.WATCH_EVENT_TYPE_EXPIRED, instance, health)
        return len(flat) // 3

    async def set_health(
        self, instance: pb.ServiceInstance, health: pb.InstanceHealth, *, changed: bool
    ) -> None:
        """Store a check result; publish HEALTH_CHANGED when the status flipped."""
        args: list[EncodableT] = [instance.instance_id, health.SerializeToString()]
        with translate_redis_errors("store health"):
            stored = await self.scripts.set_health(keys=_keys(instance.service_name), args=args)
        if stored and changed:
            await self._publish(Event.WATCH_EVENT_TYPE_HEALTH_CHANGED, instance, health)

    async def _publish(
        self, kind: int, instance: pb.ServiceInstance, health: pb.InstanceHealth | None
    ) -> None:
        event = pb.WatchEvent(
            type=kind,  # type: ignore[arg-type]
            instance=instance,
            health=health,
            occurred_at=ts(time.time() * 1000),
        )
        await self.feed.publish(event)
