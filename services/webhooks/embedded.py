"""The shim hosted inside the webhooks process (``[webhooks] http_port``, 0 = off).

The same Starlette app as ``wedmesh serve shim``, with a backend that calls
:meth:`Intake.ingest` — the very code path ``WebhookIntake.Ingest`` runs — without the gRPC
hop (about 0.45 ms of CPU per webhook on this hardware). Errors map exactly as over gRPC:
client mistakes keep their status, everything else is 503 so the provider retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from services.core import logs
from services.core.config import ShimConfig
from services.core.errors import MeshError, translate_redis_errors
from services.core.redis_client import AnyRedis
from services.core.server import ServiceHost
from services.webhooks.intake import Intake
from services.webhooks.shim import IntakeRefused, uvicorn_server
from wedsync.webhooks.v1 import webhooks_pb2

log = logging.getLogger("wedmesh.webhooks.http")
CLIENT_STATUSES = {400, 401, 403, 404}


class LocalBackend:
    """The shim's backend when it lives in the intake process."""

    def __init__(self, intake: Intake, redis: AnyRedis) -> None:
        self.intake = intake
        self.redis = redis
        self.draining = False

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ingest(
        self, provider_id: str, headers: dict[str, str], body: bytes, remote_addr: str
    ) -> webhooks_pb2.IngestResponse:
        try:
            return await self.intake.ingest(provider_id, headers, body, remote_addr)
        except MeshError as exc:
            self.intake.count_rejected(provider_id, exc)
            if exc.http_status in CLIENT_STATUSES:
                raise IntakeRefused(exc.http_status, exc.message) from None
            log.warning("intake unavailable", extra={"reason": type(exc).__name__})
            raise IntakeRefused(
                503, exc.message if exc.http_status == 503 else "intake unavailable", exc.retry_after
            ) from None
        except Exception:
            log.exception("unexpected intake error", extra={"request_id": logs.request_id_var.get()})
            raise IntakeRefused(503, "webhook intake is unavailable; retry later") from None

    async def ready(self) -> str | None:
        if self.draining:
            return "intake is shutting down"
        try:
            with translate_redis_errors("ping"):
                await self.redis.ping()
        except MeshError as exc:
            return exc.message
        return None


class EmbeddedShim:
    """Background: serve the shim on ``host:port`` inside this process."""

    def __init__(self, config: ShimConfig, backend: LocalBackend, host: str, port: int) -> None:
        self.backend = backend
        self.server: Any = uvicorn_server(config, backend, host=host, port=port)
        self._task: asyncio.Task[None] | None = None
        self._drain_delay_s = 0.0

    async def start(self, host: ServiceHost) -> None:
        self._drain_delay_s = host.shutdown_config.drain_delay_s
        self.server.capture_signals = contextlib.nullcontext  # the process runtime owns signals
        self._task = asyncio.create_task(self.server.serve(), name="webhooks-http")
        while not self.server.started:
            if self._task.done():
                await self._task  # raises why it could not start (e.g. port taken)
                raise RuntimeError("embedded shim stopped during start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._task is None:
            return
        # As the gRPC port does: not ready (still serving) for drain_delay_s, so that a load
        # balancer polling /readyz stops sending here before the listener closes.
        self.backend.draining = True
        await asyncio.sleep(self._drain_delay_s)
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
