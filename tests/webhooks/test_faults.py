"""Faults: Redis down at intake (503, never 200) and a worker SIGKILLed mid-event."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from services.core.config import MeshConfig, with_overrides
from services.core.keys import QueueKeys
from services.core.local_redis import free_port
from services.core.server import ServiceHost
from services.webhooks.layout import stream_key
from services.webhooks.providers import queue_name
from tests.redis_mode import service_env, start_server
from tests.waiting import wait_for
from tests.webhooks.conftest import SECRETS, STRIPE_SECRET, SUPPLIER_SECRET, Shim, example_providers
from tests.webhooks.payloads import stripe_body, stripe_headers, supplier_body, supplier_headers
from wedsync.registry.v1 import router_pb2, router_pb2_grpc
from wedsync.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

Start = Callable[..., Awaitable[ServiceHost]]
RunShim = Callable[..., Awaitable[Shim]]


@pytest.mark.slow
@pytest.mark.single_redis  # kills and restarts its own one-node Redis
async def test_redis_down_answers_503_then_accepts_after_restart(
    start_service: Start, run_shim: RunShim, wh_config: MeshConfig, tmp_path: Path
) -> None:
    """With Redis stopped the shim answers 503 + Retry-After (never 200); after a restart it accepts again."""
    server = start_server(tmp_path / "redis")
    try:
        http_port = free_port()
        config = with_overrides(
            wh_config,
            {"redis.url": server.url, "webhooks.worker_enabled": False, "webhooks.http_port": http_port},
        )
        host = await start_service("webhooks", config)
        shim = await run_shim(host)
        embedded = Shim(f"http://127.0.0.1:{http_port}", shim.client)
        _, body = stripe_body()
        first = await shim.post("stripe", body, stripe_headers(body, STRIPE_SECRET))
        assert first.json()["status"] == "accepted"

        server.kill()
        _, body2 = stripe_body()
        down = await shim.post("stripe", body2, stripe_headers(body2, STRIPE_SECRET))
        assert down.status_code == 503 and down.headers["retry-after"]
        down_embedded = await embedded.post("stripe", body2, stripe_headers(body2, STRIPE_SECRET))
        assert down_embedded.status_code == 503 and down_embedded.headers["retry-after"]

        await asyncio.to_thread(server.restart)

        async def accepted() -> bool:
            reply = await shim.post("stripe", body2, stripe_headers(body2, STRIPE_SECRET))
            return reply.status_code == 200 and reply.json()["status"] == "accepted"

        await wait_for(accepted, timeout=30, what="accepted after restart")
        client = aioredis.Redis.from_url(server.url)
        try:
            depth = sum([await client.xlen(k) for k in QueueKeys(queue_name("stripe")).streams])
        finally:
            await client.aclose()
        assert depth == 2  # the event acknowledged before the crash survived it
    finally:
        server.stop()


class HangingRouter(router_pb2_grpc.RouterServiceServicer):
    """Publish hangs on the first call (the worker is mid-event), answers the later ones."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.first_seen = asyncio.Event()

    async def Publish(self, request: router_pb2.PublishRequest, context: Any) -> router_pb2.PublishResponse:
        self.calls.append(request.idempotency_key)
        if len(self.calls) == 1:
            self.first_seen.set()
            await asyncio.Event().wait()
        return router_pb2.PublishResponse(message_ids=["m"])


@pytest.mark.slow
async def test_worker_sigkilled_mid_event_is_finished_once_by_another(
    start_service: Start, mesh_config: MeshConfig, secrets_env: dict[str, str], redis_client: Any
) -> None:
    """A worker process SIGKILLed while publishing loses nothing: another claims it after the lease, once."""
    router_port = free_port()
    router = HangingRouter()
    server = grpc.aio.server()
    router_pb2_grpc.add_RouterServiceServicer_to_server(router, server)
    server.add_insecure_port(f"127.0.0.1:{router_port}")
    await server.start()
    port = free_port()
    providers = example_providers()
    env = {
        **os.environ,
        **SECRETS,
        "REDIS_URL": mesh_config.redis.url or "",
        **service_env(),
        "WEDMESH_WEBHOOKS__PORT": str(port),
        "WEDMESH_WEBHOOKS__METRICS_PORT": "0",
        "WEDMESH_WEBHOOKS__PROVIDERS": json.dumps(providers),
        "WEDMESH_WEBHOOKS__ROUTER_ADDRESS": f"127.0.0.1:{router_port}",
        "WEDMESH_WEBHOOKS__ROUTER_TIMEOUT_S": "60",
        "WEDMESH_WEBHOOKS__WORKER_LEASE_S": "2",
        "WEDMESH_LOGGING__LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "serve", "webhooks", env=env, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = webhooks_pb2_grpc.WebhookIntakeServiceStub(channel)
            _, body = supplier_body()
            request = webhooks_pb2.IngestRequest(
                provider_id="supplier_platform", body=body, headers=supplier_headers(body, SUPPLIER_SECRET)
            )
            reply = await stub.Ingest(request, timeout=30, wait_for_ready=True)
            await asyncio.wait_for(router.first_seen.wait(), 30)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

        config = with_overrides(
            mesh_config,
            {
                "webhooks.providers": providers,
                "webhooks.router_address": f"127.0.0.1:{router_port}",
                "webhooks.worker_lease_s": 2.0,
            },
        )
        host = await start_service("webhooks", config)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            stub = webhooks_pb2_grpc.WebhookIntakeServiceStub(channel)

            async def done() -> Any:
                got = await stub.GetEvent(webhooks_pb2.GetEventRequest(event_id=reply.event_id))
                return got.event if got.event.status == webhooks_pb2.WEBHOOK_EVENT_STATUS_PROCESSED else None

            event = await wait_for(done, timeout=30, what="processed by the second worker")
        assert event.attempts == 2  # the crashed delivery counts as an attempt
        assert router.calls == [reply.event_id, reply.event_id]  # same idempotency key both times
        assert await redis_client.xlen(stream_key()) == 1
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await server.stop(None)
