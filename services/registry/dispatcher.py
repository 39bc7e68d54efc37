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
Retiring never loses a message while the replicas that queued into it keep running:

1. A Send enqueues only while its replica serves ``S`` (``S`` is in ``_known``: admitted
   into the set, or adopted from it, and given a Worker — at once, or by ``start()`` for a
   Send that arrived before it), and counts itself in ``_sending`` from before admission
   until its enqueue returned.
2. Retiring ``S`` on a replica is skipped (not waited for: the caller tries again on its
   next pass) while a Send for it runs there; otherwise it first (without yielding) stops
   serving ``S``, so a Send that starts afterwards admits ``S`` again (set and Worker).
   Only then does it read the registry (a live instance undoes it before the set is
   touched), remove ``S`` from the set and read the queue; anything found — a message, a
   dead letter, or ``S`` admitted again meanwhile — undoes it (``S`` back in the set and
   served). An instance registering after the registry read does not: the queue read
   after the removal is what keeps messages safe, and the next Send admits ``S`` again
   (past the cap: it has an instance). Interrupted (an error, or
   ``stop()`` cancelling it), it is undone too: the Worker serves again (3 puts ``S``
   back in the set), or is stopped when the dispatcher is stopping.
3. Every ``DISCOVER_SERVICES_S`` each replica compares what it serves with the set. A
   served service missing from it was retired by another replica (which cannot see this
   replica's Sends: a served service is not admitted again), or removed by the race in 2
   after being admitted again: a route target, or one with a Send running here, is put
   back; otherwise this replica retires it too (``remove=False``), which puts it back
   unless it is empty and instance-less. Members without a Worker here are served.
4. So a message can sit in a queue that no replica serves only if the replica that queued
   it stopped or died before the set held ``S`` again (between its enqueue and 2's or
   3's putting back). It cannot be delivered before an instance registers, and a
   registration (change feed; one that arrives while ``S`` is being retired is kept until
   the retirement settled), or the sweep's check of registered services (every
   ``min(RESCUE_S, target_idle_s)``, for a lost feed event), serves a registered service
   whose queue then holds anything.

Putting a service back (2, 3, and 4's rescue) is not an admission: it is never refused,
since the messages are accepted already. So the set can exceed ``max_target_services``
when a retirement that took ``S`` out is undone after a new service took the freed place:
one more member per service put back that way, until idle services retire.

The loops survive any error: one service's failure is logged and the others are still
swept, reconciled or rescued; the next pass tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator

from services.core.autopipeline import batching
from services.core.errors import MeshError, ResourceExhausted
from services.core.queue import Delivery, DurableQueue, QueueStats, RetryPolicy, Worker
from services.core.redis_client import AnyRedis
from services.core.server import ServiceHost
from services.core.settings_base import ClientTls
from services.registry import metrics
from services.registry.admin import PRIORITIES, RouterAdmin, Split, rows
from services.registry.codec import queue_name
from services.registry.delivery import IDLE_WAIT_S, Deliverer
from services.registry.routes import RoutesTable
from services.registry.settings import RegistryConfig
from services.registry.targets import IdleClock, TargetSet
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
        self._splits: dict[str, tuple[tuple[int, int], float, Split]] = {}  # (totals, read at, split)
        self._worker_stops: set[asyncio.Future[None]] = set()
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
        """Feed listener: a registration may be what a retired service's waiting messages need.

        For a served service it is a live instance: not idle, so its idle time restarts.
        """
        name = event.instance.service_name
        if event.type != reg_pb.WATCH_EVENT_TYPE_REGISTERED:
            return
        if name in self._known:
            self.idle.forget(name)
        else:
            self._registered.add(name)
            self._follow_now.set()

    async def start(self, host: ServiceHost | None = None) -> None:
        self._running = True
        for service in sorted(self._routed):  # configured: always served, whatever the cap
            await self.targets.admit(service, past_cap=True)
            self._adopt(service)
        for service in sorted(self._known):  # admitted by Sends that came before start
            self._serve(service)
        self._tasks = [
            asyncio.create_task(self._follow_forever(), name="router-services"),
            asyncio.create_task(self._sweep_forever(), name="router-sweep"),
        ]

    async def stop(self) -> None:
        """Stop the loops, then every Worker (retirements' ones too), then the connections.

        Each step runs whatever the one before raised: a failure is logged, never left to
        keep Workers claiming for a deliverer that is gone.
        """
        self._running = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task, result in zip(tasks, await asyncio.gather(*tasks, return_exceptions=True), strict=True):
            if isinstance(result, Exception):
                log.error("router: %s had failed", task.get_name(), exc_info=result)
        await asyncio.gather(*self._worker_stops, return_exceptions=True)
        workers, self._workers = list(self._workers.values()), {}
        stopped = await asyncio.gather(
            *(w.stop(grace=self.config.deliver_timeout_s) for w in workers), return_exceptions=True
        )
        for worker, result in zip(workers, stopped, strict=True):
            if isinstance(result, Exception):
                log.error("router: stopping %r failed", worker, exc_info=result)
        with _logged("closing sink connections"):
            await self.deliverer.close()
        for service in metrics.services():
            metrics.forget(service)

    async def _follow_forever(self) -> None:
        while True:
            with _logged("following the service set"):
                await self.follow()
            self._follow_now.clear()
            await wait_event(self._follow_now, DISCOVER_SERVICES_S)

    async def follow(self) -> None:
        """Serve members of the set, reconcile served services it lost, wake registered ones."""
        known = set(self._known)  # admitted before the read below: in the set when it began
        members = set(await self.admin.services())
        for service in sorted(members - set(self._workers) - self._retiring):
            self._adopt(service)
        for service in sorted(known - members):  # not one admitted while it read
            with _logged(f"reconciling {service}"):
                await self._reconcile(service)
        registered, self._registered = self._registered, set()
        for service in sorted(registered):
            if service in self._retiring:  # served once its retirement settled, if it must be
                self._registered.add(service)
                continue
            with _logged(f"rescuing {service}"):
                try:
                    await self._rescue(service)
                except Exception:
                    self._registered.add(service)  # try again next time
                    raise

    async def _reconcile(self, service: str) -> None:
        """A served service missing from the set: put it back, or retire it here too."""
        if service not in self._known:
            return
        if service in self._routed or service in self._sending:
            # A route target, or being sent to here (admission is skipped for a served
            # service): its messages are ours to deliver, and it must stay listed.
            await self.targets.add(service)
        else:
            await self.retire(service, remove=False)  # puts it back unless empty and instance-less

    async def _sweep_forever(self) -> None:
        interval = min(STATS_EXPORT_S, self.config.target_idle_s / 2)
        rescue_every = min(RESCUE_S, self.config.target_idle_s)
        rescued_at = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            with _logged("sweep"):
                await self.sweep()
            if time.monotonic() - rescued_at >= rescue_every:
                rescued_at = time.monotonic()
                with _logged("check of registered services"):
                    for service in await self.views.store.services():
                        with _logged(f"rescuing {service}"):
                            await self._rescue(service)

    async def sweep(self) -> None:
        """Export every member's queue gauges (dropping non-members'), and retire idle services.

        One queue-stats script per member decides idleness and gives the gauges' totals;
        the per-priority split of delayed and dead counts (``queue_split``, which reads the
        whole parked hash and up to 100k dead letters) is read only for a queue that holds
        any, and then at most every ``STATS_EXPORT_S`` while those totals stay the same.
        A member whose figures cannot be read is skipped this time; the others are not.
        """
        members = await self.admin.services()
        now = time.monotonic()
        for service in members:
            with _logged(f"sweep of {service}"):
                await self._sweep_one(service, now)
        for service in metrics.services() - set(members):
            metrics.forget(service)
        for service in set(self._splits) - set(members):
            del self._splits[service]
        self.idle.retain(set(members) & self._known)

    async def _sweep_one(self, service: str, now: float) -> None:
        queue = self.queue(service)
        stats = await queue.stats()
        for row, priority in zip(
            rows(service, stats, await self._split(service, queue, stats, now)), PRIORITIES, strict=True
        ):
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
            return
        # No registry read here: retire() asks it once, when the clock says the service is due.
        idle = stats.empty and service not in self._sending and not self.views.known_healthy(service)
        if self.idle.observe(service, idle, now):
            await self.retire(service, remove=True)

    async def _split(self, service: str, queue: DurableQueue, stats: QueueStats, now: float) -> Split:
        """The queue's split, read again when its delayed/dead totals changed or it is stale."""
        totals = (stats.delayed, stats.dead)
        cached = self._splits.get(service)
        if cached is not None and cached[0] == totals and now - cached[1] < STATS_EXPORT_S:
            return cached[2]
        split = await self.admin.split(queue, stats)
        self._splits[service] = (totals, now, split)
        return split

    async def _rescue(self, service: str) -> None:
        """Serve a service not served here whose queue holds anything (its set entry was lost)."""
        if service in self._known or service in self._retiring:
            return
        if not (await self.queue(service).stats()).empty:
            await self.targets.add(service)
            self._adopt(service)

    async def retire(self, service: str, *, remove: bool) -> bool:
        """Stop serving an idle service (and, with ``remove``, take it out of the set); True if done.

        Not done when a Send for it is running here (the caller tries again later), and
        undone when it turns out not to be idle: see the module docstring for why no message
        can be stranded. The registry is read once, before the set is touched: a live
        instance ends the retirement there (``S`` still in the set; put back when
        reconciling), and, like any retirement attempt that went through, restarts the
        service's idle time. However it ends (an error, a cancellation by stop()), the
        Worker is either serving again or stopped.
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
                if await self._has_instances(service):
                    if not remove:  # reconciling: it is missing from the set
                        await self.targets.add(service)
                else:
                    if remove:
                        await self.targets.remove(service)
                    stats = await self.queue(service).stats()
                    busy = service in self._known or not stats.empty
                    if busy:
                        await self.targets.add(service)
            except MeshError as exc:
                log.warning("router: could not retire %s: %s", service, exc)
            finally:  # also on a cancellation or another error: never leave the Worker behind
                if busy and service not in self._known:  # take up where it was
                    self._known.add(service)
                    if worker is not None and self._running:
                        self._workers[service], worker = worker, None
                    self._serve(service)
                if worker is not None:
                    await self._stop_worker(worker)
            if not busy and service not in self._known:
                self.views.forget(service)
                self._splits.pop(service, None)
                metrics.forget(service)
                await self.deliverer.forget(service)
                log.info("router: retired idle service %s", service)
        finally:
            self._retiring.discard(service)
            self.idle.forget(service)  # retired, or found busy: either way its idle time restarts
        return not busy

    async def _stop_worker(self, worker: Worker) -> None:
        """Stop a Worker to completion even if the caller is cancelled (stop() waits for it)."""
        task = asyncio.ensure_future(worker.stop(grace=self.config.deliver_timeout_s))
        self._worker_stops.add(task)
        task.add_done_callback(self._worker_stops.discard)
        await asyncio.shield(task)


@contextlib.contextmanager
def _logged(what: str) -> Iterator[None]:
    """Log and swallow a failure of one step of a background loop, so the loop goes on."""
    try:
        yield
    except MeshError as exc:  # Redis unavailable or refusing: expected, and retried
        log.warning("router %s: %s", what, exc)
    except Exception:
        log.exception("router %s failed", what)
