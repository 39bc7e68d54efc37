"""Run one gRPC service process: its gRPC host plus its background work.

Each area's ``services/<area>/app.py`` exposes ``build(config, redis) -> ProcessApp``:
the gRPC services it hosts and the background tasks it runs beside them (a queue worker,
a dispatcher, a health watcher). Start order: gRPC host, then background; stop order on
SIGTERM/SIGINT: the host goes NOT_SERVING and drains its calls, then background tasks
stop (they finish or hand back what they hold), then Redis closes.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from services.core.config import MeshConfig, build_authenticator
from services.core.metrics import serve_metrics
from services.core.redis_client import AnyRedis, connect
from services.core.server import BindError, ServiceDef, ServiceHost, install_signal_handlers

log = logging.getLogger("wedmesh.runner")

GRPC_PROCESSES = {
    "registry": "services.registry.app",
    "gateway": "services.gateway.app",
    "webhooks": "services.webhooks.app",
}
# Processes whose event loop is uvloop when it is installed (it ships with
# uvicorn[standard]). The gateway spends most of its time in the loop (a gRPC call in, a
# Redis script and an HTTP exchange out): uvloop cut its CPU per call by about 0.3 ms.
# The registry/router likewise (bench/router.py: 0.89 → 0.76 ms of router CPU per message),
# and webhook intake and the shim (HTTP parsing and socket work are most of their loop).
UVLOOP_PROCESSES = frozenset({"gateway", "registry", "webhooks", "shim"})


STOP_MARGIN_S = 5.0


class Background(Protocol):
    """A task that runs beside the gRPC server for the life of the process."""

    async def start(self, host: ServiceHost) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class ProcessApp:
    """What one service process hosts (gRPC services) and runs (background tasks)."""

    services: list[ServiceDef]
    background: list[Background] = field(default_factory=list)


def app_builder(process: str) -> Callable[[MeshConfig, AnyRedis], ProcessApp]:
    module = importlib.import_module(GRPC_PROCESSES[process])
    build: Callable[[MeshConfig, AnyRedis], ProcessApp] = module.build
    return build


class ProcessRuntime:
    """One process's host and background tasks, started and stopped in the right order."""

    def __init__(self, process: str, config: MeshConfig, redis: AnyRedis) -> None:
        self.process = process
        self.app = app_builder(process)(config, redis)
        self.host = ServiceHost(
            self.app.services,
            config.grpc_server(process),
            config.shutdown,
            redis=redis,
            auth=build_authenticator(config.auth),
        )
        self._stop_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    async def start(self) -> int:
        port = await self.host.start()
        for task in self.app.background:
            await task.start(self.host)
        return port

    async def stop(self) -> None:
        """Drain the host and stop background tasks side by side: one grace period, not two.

        A background task gets ``grace_s`` + a margin to stop; one that takes longer is
        abandoned with an error naming it, so a stuck task cannot hold the process open.
        """
        budget = self.host.shutdown_config.drain_delay_s + self.host.shutdown_config.grace_s + STOP_MARGIN_S
        results = await asyncio.gather(
            self.host.stop(),
            *(asyncio.wait_for(task.stop(), budget) for task in self.app.background),
            return_exceptions=True,
        )
        for task, result in zip(["host", *self.app.background], results, strict=True):
            if isinstance(result, Exception):
                log.error("failed to stop cleanly", exc_info=result, extra={"task": repr(task)})
        self._stopped.set()

    def request_stop(self) -> None:
        """Start :meth:`stop` once, from a signal handler."""
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(self.stop())

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


def loop_factory(process: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop for the processes in :data:`UVLOOP_PROCESSES`, else asyncio's default."""
    if process not in UVLOOP_PROCESSES:
        return None
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard] (not on Windows)
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def freeze_startup_objects() -> None:
    """Keep what start-up allocated (modules, descriptors, servers) out of full GC passes.

    It lives as long as the process; scanning it all every few thousand requests is a
    latency spike of several ms each time.
    """
    gc.collect()
    gc.freeze()


def serve_grpc_process(process: str, config: MeshConfig) -> None:
    """Run :func:`run_grpc_process` to the end on the process's event loop."""
    with asyncio.Runner(loop_factory=loop_factory(process)) as runner:
        runner.run(run_grpc_process(process, config))


async def run_grpc_process(process: str, config: MeshConfig) -> None:
    """Start ``process`` (registry, gateway or webhooks) and serve until told to stop."""
    server_config = config.grpc_server(process)
    redis = connect(config.redis)
    metrics = None
    try:
        runtime = ProcessRuntime(process, config, redis)
        try:
            metrics = serve_metrics(server_config.metrics_port, server_config.host)
        except OSError as exc:
            raise BindError(
                f"cannot serve metrics on {server_config.host}:{server_config.metrics_port}: {exc}"
            ) from exc
        await runtime.start()
        freeze_startup_objects()
        install_signal_handlers(runtime.request_stop)
        await runtime.wait_stopped()
    finally:
        if metrics:
            metrics.close()
        await redis.aclose()
