"""examples/notification_service.py works as the README walk-through says."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

from tests.registry.procs import ROOT, _env
from tests.waiting import wait_for
from wedsync.events.v1 import events_pb2
from wedsync.registry.v1 import registry_pb2 as pb
from wedsync.registry.v1 import router_pb2 as rpb


def _spawn(registry: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "examples/notification_service.py", "--registry", registry],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip


@pytest.mark.slow
async def test_example_registers_and_accepts_published_events(
    registry_host: Any, registry: Any, router: Any
) -> None:
    """The example registers as notification-service, turns healthy and accepts a published wedding event."""
    process = _spawn(f"127.0.0.1:{registry_host.port}")
    try:
        assert process.stdout is not None
        line = await asyncio.to_thread(process.stdout.readline)
        assert line.startswith("ready")
        await wait_for(lambda: _healthy(registry), what="example healthy")
        event = events_pb2.WeddingEvent(id="evt-9", type="wedding.created", wedding_id="w-9")
        reply = await router.Publish(rpb.PublishRequest(event=event))
        assert reply.targets[0].service_name == "notification-service"
        await wait_for(lambda: _accepted(router), what="delivered and accepted")
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 10)
        if process.stdout is not None:
            process.stdout.close()


async def _healthy(registry: Any) -> bool:
    found = await registry.Discover(
        pb.DiscoverRequest(service_name="notification-service", healthy_only=True)
    )
    return len(found.instances) == 1


async def _accepted(router: Any) -> bool:
    stats = await router.GetQueueStats(rpb.GetQueueStatsRequest(service_name="notification-service"))
    return bool(stats.stats) and all(
        s.depth == 0 and s.in_flight == 0 and s.dead_letters == 0 for s in stats.stats
    )
