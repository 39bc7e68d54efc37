"""The router's dispatcher: which target services this replica serves, one Worker each.

Each served service ``S`` has a :class:`DurableQueue` named ``router:S`` (priority streams,
delayed retries, dead letters; see ``services.core.queue``). Its Worker claims in batches
(one script call hands out up to ``max_in_flight`` entries, weighted 70/20/10 across
HIGH/NORMAL/LOW with unused share flowing down, so HIGH drains first and LOW is never
starved) and hands each claimed message to :class:`Deliverer` (``delivery.py``). The
Worker's ``ready`` predicate is false while no instance of ``S`` is healthy: it then stops
claiming (one cheap check per ``IDLE_WAIT_S``, no busy loop) and messages wait, persisted,
in Redis. A router replica killed mid-delivery stops renewing; its messages are reclaimed
by another replica after ``queue_lease_s``.

Every replica serves every member of the router's service set (``targets.py``: admission
under ``max_target_services``, and what makes a service idle). A periodic sweep exports
the members' queue gauges and retires a member that stayed idle for ``target_idle_s``.
Retiring never loses a message:

1. A Send enqueues only while its replica serves ``S`` (``S`` is in ``_known``: admitted,
   so in the set, with a Worker), and counts itself in ``_sending`` from before admission
   until its enqueue returned.
2. Retiring ``S`` on a replica is refused while a Send for it runs there; otherwise it first
   (without yielding) stops serving ``S``, so a Send that starts afterwards admits ``S``
   again (set and Worker). Only then does it remove ``S`` from the set and read the queue
   and the registry; anything found — a message, a dead letter, a live instance, or ``S``
   admitted again meanwhile — undoes it (``S`` back in the set and served).
3. Every ``DISCOVER_SERVICES_S`` each replica compares what it serves with the set. A
   served service missing from it was retired by another replica, or removed by the race
   in 2 after being admitted again: empty, this replica retires it too; not empty, it is
   put back. New members are served.
4. So a message can sit in a queue that no replica serves only if the replica that queued
   it died inside that window. It cannot be delivered before an instance registers, and a
   registration (change feed), or the sweep's check of registered services (every
   ``min(RESCUE_S, target_idle_s)``, for a lost feed event), serves a registered service
   whose queue holds anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from services.core.autopipeline import batching
from services.core.errors import MeshError, ResourceExhausted
from services.core.queue import Delivery, DurableQueue, RetryPolicy, Worker
from services.core.redis_client import AnyRedis
from services.core.server import ServiceHost
from services.core.settings_base import ClientTls
from services.registry import metrics
from services.registry.admin import PRIORITIES, RouterAdmin
from services.registry.codec import queue_name
from services.registry.delivery import IDLE_WAIT_S, Deliverer
from services.registry.routes import RoutesTable
from services.registry.settings import RegistryConfig
from services.registry.targets import IdleClock, TargetSet, is_empty
from services.registry.timeutil import seconds_of, wait_event
from services.registry.view import InstanceViews
from wedsync.registry.v1 import registry_pb2 as reg_pb

log = logging.getLogger("wedmesh.router")

DISCOVER_SERVICES_S = 1.0
STATS_EXPORT_S = 5.0
RESCUE_S = 30.0


class Dispatcher:
    """Background task: serve every target service's queue from this replica."""

    def __init__(
        self,
        client: AnyRedis,
        views: InstanceViews,
        config: RegistryConfig,
        routes: RoutesTable,
        *,
        tls: ClientTls | None = None,
    ) -> None:
        self.client = client
        self.views = views
        self.config = config
        self.routes = routes
        self.policy = RetryPolicy(
            max_attempts=1 + config.default_max_retries,
            initial_backoff=config.retry_initial_backoff_s,
            max_backoff=max(config.retry_max_backoff_s, config.retry_initial_backoff_s),
        )
        self.deliverer = Deliverer(views, config, self.policy, tls)
        self.targets = TargetSet(client, config.max_target_services)
        self.idle = IdleClock(config.target_idle_s)
        self._batching = batching(client)
        self.admin = RouterAdmin(client, self.queue)
        self._routed = set(routes.services)
        self._queues: dict[str, DurableQueue] = {}
        self._workers: dict[str, Worker] = {}
        self._known: set[str] = set()
        self._sending: dict[str, int] = {}
        self._retiring: set[str] = set()
        self._registered: set[str] = set()  # registrations seen, for services not served here
        self._follow_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False

    def queue(self, service: str) -> DurableQueue:
        """The service's queue; kept only while served, so a refused name leaves nothing behind."""
        q = self._queues.get(service)
        if q is None:
            q = DurableQueue(self._batching, queue_name(service), policy=self.policy)
            if service in self._known:
                self._queues[service] = q
        return q

    def serving(self) -> set[str]:
        """The services this replica runs a Worker for."""
        return set(self._workers)

    @contextlib.asynccontextmanager
    async def sending(self, service: str) -> AsyncIterator[None]:
        """Admit ``service`` (ResourceExhausted past the cap) and keep it from retiring meanwhile."""
        self._sending[service] = self._sending.get(service, 0) + 1
        try:
            await self._admit(service)
            yield
        finally:
            left = self._sending[service] - 1
            if left:
                self._sending[service] = left
            else:
                del self._sending[service]

    async def _admit(self, service: str) -> None:
        if service in self._known:
            return
        admitted, members = await self.targets.admit(service, past_cap=service in self._routed)
        if not admitted and await self._has_instances(service):
            admitted, members = await self.targets.admit(service, past_cap=True)
        if not admitted:
            raise ResourceExhausted(
                f"the router holds queues for {members} services, at registry.max_target_services ="
                f" {self.targets.cap}, and {service!r} has no live instance and no route: register an"
                " instance of it first, raise registry.max_target_services, or retry once idle services'"
                f" queues are retired (registry.target_idle_s = {self.config.target_idle_s:g} s)"
            )
        self._adopt(service)

    def _adopt(self, service: str) -> None:
        self._known.add(service)
        self._serve(service)

    async def _has_instances(self, service: str) -> bool:
        return bool(await self.views.store.discover(service))

    def _serve(self, service: str) -> None:
        if not self._running or service in self._workers:
            return

        async def ready() -> bool:
            return await self.views.ready(service)

        async def handle(delivery: Delivery) -> None:
            await self.deliverer.deliver(service, delivery)

        worker = Worker(
            self.queue(service),
            handle,
            lease=self.config.queue_lease_s,
            max_in_flight=self.config.max_in_flight,
            ready=ready,
            idle_wait=IDLE_WAIT_S,
        )
        self._workers[service] = worker
        worker.start()

    def on_change(self, event: reg_pb.WatchEvent) -> None:
        """Feed listener: a registration may be what a retired service's waiting messages need."""
        name = event.instance.service_name
        if event.type == reg_pb.WATCH_EVENT_TYPE_REGISTERED and name not in self._known:
            self._registered.add(name)
            self._follow_now.set()

    async def start(self, host: ServiceHost | None = None) -> None:
        self._running = True
        for service in sorted(self._routed):  # configured: always served, whatever the cap
            await self.targets.admit(service, past_cap=True)
            self._adopt(service)
        self._tasks = [
            asyncio.create_task(self._follow_forever(), name="router-services"),
            asyncio.create_task(self._sweep_forever(), name="router-sweep"),
        ]

    async def stop(self) -> None:
        self._running = False
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(w.stop(grace=self.config.deliver_timeout_s) for w in self._workers.values()))
        self._workers.clear()
        await self.deliverer.close()
        for service in metrics.services():
            metrics.forget(service)

    async def _follow_forever(self) -> None:
        while True:
            try:
                await self.follow()
            except MeshError as exc:
                log.warning("router: %s", exc)
            self._follow_now.clear()
            await wait_event(self._follow_now, DISCOVER_SERVICES_S)

    async def follow(self) -> None:
        """Serve new members of the set, reconcile served services it lost, wake registered ones."""
        members = set(await self.admin.services())
        for service in sorted(members - self._known - self._retiring):
            self._adopt(service)
        for service in sorted(self._known - members):
            if service in self._routed:
                await self.targets.add(service)
            else:
                await self.retire(service, remove=False)
        registered, self._registered = self._registered, set()
        for service in sorted(registered):
            await self._rescue(service)

    async def _sweep_forever(self) -> None:
        interval = min(STATS_EXPORT_S, self.config.target_idle_s / 2)
        rescue_every = min(RESCUE_S, self.config.target_idle_s)
        rescued_at = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
                if time.monotonic() - rescued_at >= rescue_every:
                    rescued_at = time.monotonic()
                    for service in await self.views.store.services():
                        await self._rescue(service)
            except MeshError as exc:
                log.warning("router sweep: %s", exc)

    async def sweep(self) -> None:
        """Export every member's queue gauges (dropping non-members'), and retire idle services."""
        members = await self.admin.services()
        now = time.monotonic()
        for service in members:
            rows, stats = await self.admin.service_stats(service)
            for row, priority in zip(rows, PRIORITIES, strict=True):
                metrics.set_queue(
                    service,
                    priority.value,
                    row.depth,
                    row.in_flight,
                    row.delayed,
                    row.dead_letters,
                    seconds_of(row.oldest_age),
                )
            if service not in self._known or service in self._routed:
                continue
            idle = is_empty(stats) and service not in self._sending and not await self._has_instances(service)
            if self.idle.observe(service, idle, now):
                await self.retire(service, remove=True)
        for service in metrics.services() - set(members):
            metrics.forget(service)

    async def _rescue(self, service: str) -> None:
        """Serve a service not served here whose queue holds anything (its set entry was lost)."""
        if service in self._known or service in self._retiring:
            return
        if not is_empty(await self.queue(service).stats()):
            await self.targets.add(service)
            self._adopt(service)

    async def retire(self, service: str, *, remove: bool) -> bool:
        """Stop serving an idle service (and, with ``remove``, take it out of the set); True if done.

        Not done (and undone) when a Send for it is running here, or when it turns out not
        to be idle: see the module docstring for why no message can be stranded.
        """
        if service in self._sending or service in self._routed or service not in self._known:
            return False
        if service in self._retiring:
            return False
        self._retiring.add(service)
        self._known.discard(service)  # from here on a Send admits it again
        worker = self._workers.pop(service, None)
        self._queues.pop(service, None)
        busy = True
        try:
            try:
                if remove:
                    await self.targets.remove(service)
                stats = await self.queue(service).stats()
                busy = service in self._known or not is_empty(stats) or await self._has_instances(service)
                if busy:
                    await self.targets.add(service)
            except MeshError as exc:
                log.warning("router: could not retire %s: %s", service, exc)
            if busy and service not in self._known:  # take up where it was
                self._known.add(service)
                if worker is not None and self._running:
                    self._workers[service], worker = worker, None
                self._serve(service)
            if worker is not None:
                await worker.stop(grace=self.config.deliver_timeout_s)
            if not busy and service not in self._known:
                self.idle.forget(service)
                self.views.forget(service)
                metrics.forget(service)
                log.info("router: retired idle service %s", service)
        finally:
            self._retiring.discard(service)
        return not busy
