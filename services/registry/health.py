"""Active health checking with grpc.health.v1, by one elected checker among the replicas.

Replicas compete for a leadership lease in Redis (``registry_global_key("checker")``,
taken with SET NX PX and kept by a compare-and-renew script); only the holder probes
instances and reaps expired leases, so N replicas do not probe every instance N times.
When the holder dies its lease lapses after ``LEADER_TTL_TICKS`` ticks and another
replica takes over.

Every ``health_interval_s`` the checker sends ``Check`` to each live instance (all in
parallel, each under ``health_timeout_s``); SERVING is healthy, anything else — an answer
of NOT_SERVING or SERVICE_UNKNOWN, an error, no answer — is unhealthy. A status flip is
stored and published as HEALTH_CHANGED. A new registration wakes the checker, so a fresh
instance is usually checked within a tick rather than an interval. An instance registered
with ``metadata["health"] = "none"`` (no gRPC health endpoint) is not probed. Each
service's part of a tick runs on its own (see ``_per_service``): one service that cannot be
read is logged and skipped, never a reason to check no service at all.

Probes follow ``[client_tls]`` and carry no bearer token: the health service is open by
the mesh's auth rules (as for Kubernetes probes), and the probed instances are user
services, which have no use for the registry's credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.core.channels import open_channel
from services.core.errors import MeshError, Unavailable, translate_redis_errors
from services.core.keys import registry_global_key
from services.core.server import ServiceHost
from services.core.settings_base import ClientTls
from services.registry.settings import RegistryConfig
from services.registry.store import RegistryStore
from services.registry.timeutil import ts, wait_event
from wedsync.registry.v1 import registry_pb2 as pb

log = logging.getLogger("wedmesh.registry.health")

LEADER_TTL_TICKS = 3
MIN_LEADER_TTL_S = 1.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NO_HEALTH_CHECK = "none"
T = TypeVar("T")


def _now_ms() -> int:
    return int(time.time() * 1000)


class HealthChecker:
    """Background task: elect a checker, probe instances, reap expired leases."""

    def __init__(self, store: RegistryStore, config: RegistryConfig, *, tls: ClientTls | None = None) -> None:
        self.store = store
        self.config = config
        self.tls = tls
        self.holder = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tick = min(config.reap_interval_s, config.health_interval_s)
        self.leader_ttl_ms = round(max(MIN_LEADER_TTL_S, LEADER_TTL_TICKS * self.tick) * 1000)
        self.key = registry_global_key("checker")
        self.is_leader = False
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_check = 0.0
        self._stopping = False

    def wake(self, event: pb.WatchEvent) -> None:
        """Feed listener: check soon after a registration."""
        if event.type == pb.WATCH_EVENT_TYPE_REGISTERED:
            self._wake.set()

    async def start(self, host: ServiceHost | None = None) -> None:
        self._task = asyncio.create_task(self._run(), name="registry-health-checker")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.is_leader:
            with contextlib.suppress(Exception), translate_redis_errors("resign"):
                if await self.store.client.get(self.key) == self.holder.encode():
                    await self.store.client.delete(self.key)
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    async def _run(self) -> None:
        woken = False
        while not self._stopping:
            try:
                await self._step(woken)
            except MeshError as exc:
                log.warning("health checker: %s", exc)
            except Exception:
                log.exception("health checker step failed")
            woken = await wait_event(self._wake, self.tick)
            self._wake.clear()

    async def _step(self, woken: bool) -> None:
        with translate_redis_errors("checker election"):
            got = await self.store.scripts.leader(keys=[self.key], args=[self.holder, self.leader_ttl_ms])
        if bool(got) != self.is_leader:
            log.info("health checker leadership", extra={"leader": bool(got), "holder": self.holder})
        self.is_leader = bool(got)
        if not self.is_leader:
            return
        services = await self.store.services()
        for service in services:
            await self._per_service("reap expired leases", service, partial(self.store.reap, service))
        due = time.monotonic() - self._last_check >= self.config.health_interval_s
        if not due and not woken:
            return
        if due:
            self._last_check = time.monotonic()
        found = await asyncio.gather(
            *(
                self._per_service("discover instances", name, partial(self.store.discover, name))
                for name in services
            )
        )
        instances = [d for group in found if group for d in group]
        await asyncio.gather(
            *(
                self._per_service(
                    "check instance", d.instance.service_name, partial(self._check, d, only_new=not due)
                )
                for d in instances
            )
        )
        self._forget_channels({d.instance.address for d in instances})

    async def _per_service(self, what: str, service: str, work: Callable[[], Awaitable[T]]) -> T | None:
        """Run one service's part of a tick; a failure is logged and skips only that service.

        One service whose state cannot be read (a corrupt record, a name no key can be built
        from) must not stop reaping and checking every other service.
        """
        # A factory, not a coroutine: gather may cancel this before it runs, and a coroutine
        # created for it would then be left never awaited.
        try:
            return await work()
        except Unavailable:
            raise  # Redis itself is failing: end the tick, as before (not N timeouts, one per service)
        except MeshError as exc:
            log.warning("health checker: %s of %r: %s", what, service[:80], exc)
        except Exception:
            log.exception("health checker: %s of %r failed", what, service[:80])
        return None

    async def _check(self, found: pb.DiscoveredInstance, *, only_new: bool) -> None:
        before = found.health
        if found.instance.metadata.get("health") == NO_HEALTH_CHECK:
            return  # e.g. a plain HTTP upstream: stays UNKNOWN (and gets no routed messages)
        if only_new and before.status != pb.HEALTH_STATUS_UNKNOWN:
            return
        ok, error = await self._probe(found.instance.address)
        now = _now_ms()
        after = pb.InstanceHealth(
            status=pb.HEALTH_STATUS_HEALTHY if ok else pb.HEALTH_STATUS_UNHEALTHY,
            last_check=ts(now),
            last_healthy=ts(now) if ok else before.last_healthy,
            consecutive_failures=0 if ok else before.consecutive_failures + 1,
            last_error="" if ok else error,
        )
        changed = after.status != before.status
        if changed:
            log.info(
                "instance health changed",
                extra={
                    "service": found.instance.service_name,
                    "instance_id": found.instance.instance_id,
                    "healthy": ok,
                },
            )
        await self.store.set_health(found.instance, after, changed=changed)

    async def _probe(self, address: str) -> tuple[bool, str]:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = open_channel(address, self.tls)
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=self.config.health_service),
                timeout=self.config.health_timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            return False, f"{exc.code().name}: {exc.details() or ''}"[:500]
        if reply.status != SERVING:
            return False, health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return True, ""

    def _forget_channels(self, live: set[str]) -> None:
        for address in set(self._channels) - live:
            channel = self._channels.pop(address)
            asyncio.get_running_loop().create_task(channel.close())
