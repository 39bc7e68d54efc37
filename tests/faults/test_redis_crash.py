"""Redis SIGKILLed under load and restarted from its AOF: nothing acknowledged is lost.

The whole mesh runs as processes against a Redis with ``appendfsync always``. Two load
loops run at once — signed supplier webhooks through the shim, and Router.Send messages —
while Redis is killed with SIGKILL and started again on the same folder. Every webhook
answered 200 and every Send that returned a message id before, during or after the crash
must be delivered afterwards; duplicates (at-least-once) are counted and reported.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from services.registry.sdk import MeshInstance
from services.registry.testing import RecordingSink
from tests.faults.load import PACE_S, Load, webhook_load
from tests.mesh_process import running_mesh
from tests.redis_mode import start_server
from tests.waiting import wait_for
from wedsync.events.v1 import events_pb2
from wedsync.registry.v1 import message_pb2, router_pb2, router_pb2_grpc


async def send_load(registry: str, stop: asyncio.Event, load: Load) -> None:
    async with grpc.aio.insecure_channel(registry) as channel:
        router = router_pb2_grpc.RouterServiceStub(channel)
        i = 0
        while not stop.is_set():
            i += 1
            message = message_pb2.Message(
                to_service="notification-service",
                event_type="test.crash",
                payload=str(i).encode(),
                idempotency_key=f"crash-{i}",
                max_retries=20,
            )
            try:
                await router.Send(router_pb2.SendRequest(message=message), timeout=2)
            except grpc.aio.AioRpcError:
                load.refused += 1
            else:
                load.accepted.add(str(i))
            await asyncio.sleep(PACE_S)


@pytest.mark.slow
@pytest.mark.single_redis  # SIGKILLs its one Redis and restarts it from the AOF
async def test_redis_sigkill_under_load_loses_nothing_acknowledged(
    tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    """Webhooks answered 200 and Sends accepted around a Redis SIGKILL are all delivered afterwards."""
    redis = start_server(tmp_path / "redis", appendfsync="always")
    calendar, notification = RecordingSink(), RecordingSink()
    webhooks, sends = Load(), Load()
    stop = asyncio.Event()
    try:
        async with (
            running_mesh(redis.url, tmp_path) as mesh,
            MeshInstance("calendar-service", calendar, registry=mesh.registry),
            MeshInstance("notification-service", notification, registry=mesh.registry),
        ):
            loops = [
                asyncio.create_task(webhook_load(mesh.shim, stop, webhooks, "wed_crash_")),
                asyncio.create_task(send_load(mesh.registry, stop, sends)),
            ]
            await wait_for(
                lambda: len(webhooks.accepted) >= 30 and len(sends.accepted) >= 30,
                timeout=60,
                what="load flowing",
            )
            redis.kill()
            before = webhooks.refused + sends.refused
            await wait_for(
                lambda: webhooks.refused + sends.refused >= before + 20,
                timeout=30,
                what="refusals while Redis is down",
            )
            redis.restart()
            accepted_at_restart = len(webhooks.accepted) + len(sends.accepted)
            await wait_for(
                lambda: len(webhooks.accepted) + len(sends.accepted) >= accepted_at_restart + 200,
                timeout=60,
                what="load accepted again after the restart",
            )
            stop.set()
            await asyncio.gather(*loops)

            def delivered_weddings() -> set[str]:
                return {events_pb2.WeddingEvent.FromString(m.payload).wedding_id for m in calendar.messages}

            def delivered_sends() -> set[str]:
                return {m.payload.decode() for m in notification.messages if m.event_type == "test.crash"}

            await wait_for(
                lambda: webhooks.accepted <= delivered_weddings(),
                timeout=90,
                what="every accepted webhook delivered",
            )
            await wait_for(
                lambda: sends.accepted <= delivered_sends(), timeout=90, what="every accepted Send delivered"
            )
    finally:
        stop.set()
        redis.stop()
    lost = len(webhooks.accepted - delivered_weddings()) + len(sends.accepted - delivered_sends())
    duplicates = (len(calendar.messages) - len(calendar.unique_ids)) + (
        len(notification.messages) - len(notification.unique_ids)
    )
    figures = {
        "webhooks_accepted": len(webhooks.accepted),
        "sends_accepted": len(sends.accepted),
        "refused_while_down": webhooks.refused + sends.refused,
        "lost": lost,
        "duplicate_deliveries": duplicates,
    }
    for key, value in figures.items():
        record_property(key, value)
    print(f"redis SIGKILL under load: {figures}")
    assert lost == 0
