"""The router's view of which instances of a target can take deliveries right now.

Built from the registry (Discover: live leases with their checked health), refreshed on
every change-feed event about the service and at least every ``view_refresh_s``. Only
HEALTHY instances take deliveries. On top of that the router keeps a local, short
suspicion: an instance whose connection just failed is skipped for ``suspend_s`` (until
the checker catches up), so a dead instance costs one failed call, not one per message.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

from services.registry.store import RegistryStore
from services.registry.timeutil import wait_event
from wedsync.registry.v1 import registry_pb2 as pb


def _skey(instance: pb.ServiceInstance) -> str:
    return f"{instance.service_name}/{instance.instance_id}"


@dataclass
class ServiceView:
    instances: list[pb.ServiceInstance] = field(default_factory=list)
    loaded_at: float = 0.0
    version: int = 0
    """Bumped by every change event; a load is current when it started at this version."""
    loaded_version: int = -1
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    turn: itertools.count[int] = field(default_factory=itertools.count)


class InstanceViews:
    """Healthy instances per service, with round-robin choice and local suspicion."""

    def __init__(self, store: RegistryStore, refresh_s: float, suspend_s: float) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.suspend_s = suspend_s
        self._views: dict[str, ServiceView] = {}
        self._suspended: dict[str, float] = {}
        self._loading: dict[str, asyncio.Lock] = {}

    def _view(self, service: str) -> ServiceView:
        view = self._views.get(service)
        if view is None:
            view = self._views[service] = ServiceView()
            self._loading[service] = asyncio.Lock()
        return view

    def forget(self, service: str) -> None:
        """Drop a retired service's view (one is built again on its next use)."""
        self._views.pop(service, None)
        self._loading.pop(service, None)

    def on_change(self, event: pb.WatchEvent) -> None:
        """Feed listener: the service's instances or health changed."""
        view = self._views.get(event.instance.service_name)
        if view is not None:
            view.version += 1
            if (
                event.type == pb.WATCH_EVENT_TYPE_HEALTH_CHANGED
                and event.health.status == pb.HEALTH_STATUS_HEALTHY
            ):
                self._suspended.pop(_skey(event.instance), None)
            view.changed.set()

    def _outdated(self, view: ServiceView) -> bool:
        return view.loaded_version != view.version or time.monotonic() - view.loaded_at >= self.refresh_s

    async def healthy(self, service: str) -> list[pb.ServiceInstance]:
        """Healthy instances; a caller arriving during a reload waits for it (never older data)."""
        view = self._view(service)
        if self._outdated(view):
            async with self._loading[service]:
                if self._outdated(view):
                    version = view.version
                    found = await self.store.discover(service)
                    view.instances = [
                        d.instance for d in found if d.health.status == pb.HEALTH_STATUS_HEALTHY
                    ]
                    view.loaded_version = version
                    view.loaded_at = time.monotonic()
        return view.instances

    def known_healthy(self, service: str) -> bool:
        """A current view (no change since it was loaded, younger than ``view_refresh_s``)
        holds a healthy instance; never reads Redis, so False also means "not known"."""
        view = self._views.get(service)
        return view is not None and bool(view.instances) and not self._outdated(view)

    def _usable(self, instance: pb.ServiceInstance, now: float) -> bool:
        until = self._suspended.get(_skey(instance))
        return until is None or until <= now

    async def ready(self, service: str) -> bool:
        """Worker predicate: is any instance able to take a delivery?"""
        now = time.monotonic()
        return any(self._usable(i, now) for i in await self.healthy(service))

    async def choose(self, service: str, exclude: set[str]) -> pb.ServiceInstance | None:
        """The next usable instance round-robin, skipping ``exclude`` (ids already tried)."""
        instances = await self.healthy(service)
        now = time.monotonic()
        usable = [i for i in instances if i.instance_id not in exclude and self._usable(i, now)]
        if not usable:
            return None
        return usable[next(self._view(service).turn) % len(usable)]

    def suspend(self, instance: pb.ServiceInstance) -> None:
        self._suspended[_skey(instance)] = time.monotonic() + self.suspend_s

    async def wait_change(self, service: str, timeout: float) -> None:
        """Sleep until the service's view changes, or ``timeout`` s."""
        view = self._view(service)
        view.changed.clear()
        await wait_event(view.changed, timeout)
