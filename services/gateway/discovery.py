"""Upstream instances resolved through ``Registry.Discover``.

An upstream with ``registry_service`` takes its instances from the registry instead of
``base_urls``: every ``registry_refresh_s`` the gateway asks for the live (leased) instances
of that service and uses each one's ``metadata["base_url"]`` (else ``http://<address>``).
Instances the registry's checker marks UNHEALTHY are skipped only when they registered a
gRPC health endpoint (``metadata["health"] != "none"``); plain HTTP upstreams cannot answer
gRPC health checks, so for them the gateway's own breakers judge health. A failed lookup
keeps the last known list (and is logged): a registry outage must not empty a working pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from pydantic import SecretStr

from services.core.channels import open_channel
from services.core.settings_base import ClientTls
from services.gateway.settings import check_base_url
from services.gateway.upstream import Upstream
from wedsync.registry.v1 import registry_pb2, registry_pb2_grpc

log = logging.getLogger("wedmesh.gateway.discovery")
UNHEALTHY = registry_pb2.HEALTH_STATUS_UNHEALTHY


def base_urls(reply: registry_pb2.DiscoverResponse) -> list[str]:
    """Usable base URLs from a Discover answer, sorted for a stable order."""
    urls = set()
    for found in reply.instances:
        meta = found.instance.metadata
        if found.health.status == UNHEALTHY and meta.get("health", "grpc") != "none":
            continue
        url = meta.get("base_url") or f"http://{found.instance.address}"
        try:
            urls.add(check_base_url(url).rstrip("/"))
        except ValueError:
            log.warning(
                "registry instance has no usable base URL", extra={"instance": found.instance.instance_id}
            )
    return sorted(urls)


class Discovery:
    """Keeps registry-backed upstreams' instance lists current (a background loop)."""

    def __init__(self, address: str, tls: ClientTls | None, token: SecretStr | None) -> None:
        self.address = address
        self.tls = tls
        self.token = token
        self._task: asyncio.Task[None] | None = None

    def start(self, upstreams: list[Upstream]) -> None:
        if upstreams:
            self._task = asyncio.create_task(self._run(upstreams))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, upstreams: list[Upstream]) -> None:
        interval = min(up.config.registry_refresh_s for up in upstreams)
        async with open_channel(self.address, self.tls, token=self.token) as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            while True:
                for up in upstreams:
                    try:
                        await self.refresh(stub, up)
                    except Exception:  # keep discovering; one bad answer must not stop the loop
                        log.exception("registry refresh failed", extra={"service_id": up.service_id})
                await asyncio.sleep(interval)

    async def refresh(self, stub: registry_pb2_grpc.RegistryServiceStub, up: Upstream) -> None:
        name = up.config.registry_service or ""
        try:
            reply = await stub.Discover(registry_pb2.DiscoverRequest(service_name=name), timeout=5)
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "registry lookup failed; keeping the last instances",
                extra={"service_id": up.service_id, "code": exc.code().name},
            )
            return
        urls = base_urls(reply)
        if up.set_urls(urls):
            log.info("upstream instances changed", extra={"service_id": up.service_id, "instances": urls})
