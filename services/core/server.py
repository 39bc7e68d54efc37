"""The gRPC server bootstrap every service uses.

A :class:`ServiceHost` runs one ``grpc.aio`` server with: the services it is given; the
standard health service answering for ``""`` and each full service name; reflection; the
shared interceptor; and graceful shutdown — every health status goes NOT_SERVING first,
stays visible for ``drain_delay_s`` so probes and load balancers notice, then the server
stops taking calls and in-flight calls get ``grace_s`` to finish.

Readiness: a service is SERVING only while its dependencies answer. The host pings Redis
every few seconds (when given a client) and flips every status with the result, so a
probe tells an operator the truth about whether calls can succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.core.auth import Authenticator
from services.core.config import GrpcServerConfig, ShutdownConfig
from services.core.interceptors import ServerInterceptor
from services.core.redis_client import AnyRedis
from services.core.tls import server_credentials

log = logging.getLogger("wedmesh.server")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Liveness is SERVING from start to shutdown whatever Redis does: a Kubernetes liveness
# probe on it restarts a wedged process, not one whose dependency is down (that is what
# readiness, on "" and the service names, is for).
LIVENESS = "liveness"
READINESS_INTERVAL_S = 2.0
MAX_MESSAGE_BYTES = 8 * 1024 * 1024

SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.so_reuseport", 0),  # a port already taken must fail loudly, not be shared
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


@dataclass(frozen=True)
class ServiceDef:
    """One gRPC service to host: its full name and the generated ``add_*_to_server``."""

    name: str
    register: Callable[[grpc.aio.Server], None]


class BindError(RuntimeError):
    """The configured address could not be bound (taken, or not a local address)."""


class ServiceHost:
    """One gRPC server process: start, report health, shut down gracefully."""

    def __init__(
        self,
        services: Sequence[ServiceDef],
        server: GrpcServerConfig,
        shutdown: ShutdownConfig,
        *,
        redis: AnyRedis | None = None,
        extra_health_names: Sequence[str] = (),
        auth: Authenticator | None = None,
    ) -> None:
        self.services = list(services)
        self.config = server
        self.shutdown_config = shutdown
        self.redis = redis
        self.auth = auth
        self.health = health.aio.HealthServicer()
        self.health_names = ["", *(s.name for s in self.services), *extra_health_names]
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._ready_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._stopping = False

    async def start(self) -> int:
        """Bind, start, and begin reporting readiness; return the bound port."""
        server = grpc.aio.server(interceptors=[ServerInterceptor(self.auth)], options=SERVER_OPTIONS)
        for service in self.services:
            service.register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [*(s.name for s in self.services), health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )
        address = f"{self.config.host}:{self.config.port}"
        try:
            if self.config.tls is not None:
                self.port = server.add_secure_port(address, server_credentials(self.config.tls))
            else:
                self.port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise BindError(f"cannot listen on {address}: {exc}") from exc
        if not self.port:
            raise BindError(f"cannot listen on {address}: the port is taken or the host is not local")
        await server.start()
        self._server = server
        await self.set_all(NOT_SERVING)
        await self.health.set(LIVENESS, SERVING)
        if self.redis is None:
            await self.set_all(SERVING)
        else:
            self._ready_task = asyncio.create_task(self._watch_readiness(self.redis))
        log.info(
            "listening",
            extra={
                "address": address,
                "port": self.port,
                "tls": "mutual"
                if self.config.tls and self.config.tls.client_ca_file
                else bool(self.config.tls),
                "services": self.health_names[1:],
            },
        )
        return self.port

    async def set_all(self, status: int) -> None:
        """Set ``""`` and every hosted service name (not the names set by set_status)."""
        for name in self.health_names:
            await self.health.set(name, status)

    async def set_status(self, name: str, status: int) -> None:
        """Report a name the service owns (e.g. an upstream id); readiness leaves it alone."""
        await self.health.set(name, status)

    async def _watch_readiness(self, redis: AnyRedis) -> None:
        last: bool | None = None
        while not self._stopping:
            try:
                ok = bool(await asyncio.wait_for(redis.ping(), READINESS_INTERVAL_S))
            except Exception:  # any failure to reach Redis means not ready
                ok = False
            if ok != last:
                await self.set_all(SERVING if ok else NOT_SERVING)
                log.log(logging.INFO if ok else logging.WARNING, "readiness", extra={"redis_ok": ok})
                last = ok
            await asyncio.sleep(READINESS_INTERVAL_S)

    async def stop(self) -> None:
        """NOT_SERVING → visible for drain_delay_s → stop taking calls → drain within grace_s."""
        if self._stopping or self._server is None:
            return
        self._stopping = True
        if self._ready_task:
            self._ready_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ready_task
        await self.health.enter_graceful_shutdown()
        log.info("shutting down", extra={"drain_delay_s": self.shutdown_config.drain_delay_s})
        await asyncio.sleep(self.shutdown_config.drain_delay_s)
        await self._server.stop(self.shutdown_config.grace_s)
        self._stopped.set()
        log.info("stopped")

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


def install_signal_handlers(stop: Callable[[], object]) -> None:
    """SIGTERM and SIGINT both start the graceful shutdown (once)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
