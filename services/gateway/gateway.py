"""The gateway's upstreams as one object: built from config, health published, closed.

Health names: each upstream id is reported on the standard gRPC health service (so
``wedmesh probe host:port --service stripe_payments`` works): SERVING while HEALTHY or
DEGRADED, NOT_SERVING when DOWN, UNCONFIGURED, or while Redis (needed for rate limits)
is unreachable. Statuses are re-published every ``health_interval_s`` and at once on a
breaker transition. They are set on ``host.health`` directly rather than through
``ServiceHost.set_status``, so the host's Redis-readiness flips (``set_all``) cannot mark
an unconfigured upstream SERVING; graceful shutdown still turns them NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.core.breaker import State
from services.core.errors import Unavailable, translate_redis_errors
from services.core.redis_client import AnyRedis
from services.core.server import NOT_SERVING, SERVING, ServiceHost
from services.gateway import health
from services.gateway.discovery import Discovery
from services.gateway.factory import build_upstream
from services.gateway.settings import GatewayConfig
from services.gateway.upstream import Upstream
from wedsync.gateway.v1 import gateway_pb2

log = logging.getLogger("wedmesh.gateway")

REDIS_CHECK_TIMEOUT_S = 1.0
_SERVING_STATES = (gateway_pb2.SERVICE_STATUS_HEALTHY, gateway_pb2.SERVICE_STATUS_DEGRADED)


class Gateway:
    """Owns the upstreams; a ProcessApp background task (start/stop)."""

    def __init__(self, config: GatewayConfig, redis: AnyRedis, discovery: Discovery | None = None) -> None:
        self.config = config
        self.redis = redis
        self.discovery = discovery
        self.upstreams: dict[str, Upstream] = {}
        self._host: ServiceHost | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._build_lock = asyncio.Lock()
        self._stopping = False

    async def ensure_built(self) -> None:
        """Build every upstream once (clients need a running loop, so not in __init__)."""
        if self._ready.is_set():
            return
        async with self._build_lock:
            if not self._ready.is_set():
                await self._build()

    async def _build(self) -> None:
        for service_id, cfg in sorted(self.config.upstreams.items()):
            up = await build_upstream(service_id, cfg, redis=self.redis, on_transition=self._transition)
            self.upstreams[service_id] = up
            if not up.configured:
                log.warning(
                    "upstream unconfigured",
                    extra={"service_id": service_id, "missing_env": up.missing, "invalid_env": up.invalid},
                )
        self._ready.set()

    async def start(self, host: ServiceHost) -> None:
        await self.ensure_built()
        self._host = host
        await self.publish(redis_ok=True)
        self._task = asyncio.create_task(self._publisher())
        if self.discovery is not None:
            self.discovery.start([up for up in self.upstreams.values() if up.config.registry_service])

    async def stop(self) -> None:
        self._stopping = True
        if self.discovery is not None:
            await self.discovery.stop()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for up in self.upstreams.values():
            await up.client.aclose()

    async def check_redis(self, what: str) -> None:
        """Raise UNAVAILABLE unless Redis answers a PING within :data:`REDIS_CHECK_TIMEOUT_S`.

        Without Redis no call can be rate-limited, so reports that would show upstreams as
        usable (``ListServices``) say so instead; one PING is cheap next to the RPC."""
        try:
            async with asyncio.timeout(REDIS_CHECK_TIMEOUT_S):
                with translate_redis_errors(what):
                    await self.redis.ping()
        except TimeoutError as exc:
            raise Unavailable(
                f"{what}: Redis did not answer within {REDIS_CHECK_TIMEOUT_S:g}s; retry later",
                retry_after=1.0,
            ) from exc

    def _transition(self, service_id: str, url: str, old: State, new: State) -> None:
        log.warning(
            "upstream breaker",
            extra={"service_id": service_id, "instance": url, "from_state": old.value, "to_state": new.value},
        )
        self._wake.set()

    async def publish(self, *, redis_ok: bool) -> None:
        if self._host is None or self._stopping:
            return
        for service_id, up in self.upstreams.items():
            serving = redis_ok and health.status(up) in _SERVING_STATES
            await self._host.health.set(service_id, SERVING if serving else NOT_SERVING)

    async def _publisher(self) -> None:
        interval = self.config.health_interval_s
        while not self._stopping:
            try:
                redis_ok = bool(await asyncio.wait_for(self.redis.ping(), interval))
            except Exception:  # any failure to reach Redis: rate limits cannot be checked
                redis_ok = False
            await self.publish(redis_ok=redis_ok)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
