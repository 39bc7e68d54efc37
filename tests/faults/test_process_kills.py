"""Worker, router and sink processes SIGKILLed under load: nothing acknowledged is lost.

Registry/router, webhooks (intake + worker) and the shim run as separate `wedmesh serve`
processes; two calendar-service sinks run as their own processes. Signed supplier webhooks
flow at a steady pace while, in turn, the webhooks process (its worker mid-event), the
router process and one sink are SIGKILLed; the killed mesh processes are started again.
Every webhook answered 200 must reach a sink; duplicates (at-least-once) are reported.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from services.core import probe
from tests.faults.load import Load, webhook_load
from tests.mesh_process import ServeProcess, mesh_env
from tests.registry.procs import SinkProcess
from tests.waiting import wait_for

WEDDING = re.compile(r"wed_kill_\d+")


def wedding_of(record: dict[str, object]) -> str:
    """The wedding id inside a delivered WeddingEvent (the sink records payloads as text)."""
    found = WEDDING.search(str(record["payload"]))
    return found.group(0) if found else ""


def serving(address: str) -> bool:
    return probe.probe(address, connect_timeout=0.3, rpc_timeout=0.5).code == probe.OK


@pytest.mark.slow
async def test_worker_router_and_sink_sigkills_lose_nothing(
    redis_url: str, tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    """SIGKILL webhooks (worker), router and one sink under load; every accepted webhook is delivered."""
    env = mesh_env(
        redis_url,
        {
            "WEDMESH_REGISTRY__QUEUE_LEASE_S": "2",
            "WEDMESH_REGISTRY__HEALTH_INTERVAL_S": "0.3",
            "WEDMESH_REGISTRY__VIEW_REFRESH_S": "0.3",
            "WEDMESH_WEBHOOKS__WORKER_LEASE_S": "2",
        },
    )
    registry_addr = f"127.0.0.1:{env['WEDMESH_REGISTRY__PORT']}"
    webhooks_addr = f"127.0.0.1:{env['WEDMESH_WEBHOOKS__PORT']}"
    shim = f"http://127.0.0.1:{env['WEDMESH_SHIM__PORT']}"
    procs = {
        name: ServeProcess(name, env, tmp_path / f"{name}.log").start()
        for name in ("registry", "webhooks", "shim")
    }
    sinks: list[SinkProcess] = []
    load, stop = Load(), asyncio.Event()
    try:
        await wait_for(
            lambda: serving(registry_addr) and serving(webhooks_addr), timeout=60, what="services up"
        )
        for i in (1, 2):
            sink = SinkProcess(
                registry_addr, "calendar-service", f"cal-{i}", tmp_path / f"sink{i}.jsonl", ttl=2.0
            )
            sinks.append(await sink.astart())
        await wait_for(
            lambda: httpx.get(f"{shim}/readyz", timeout=1).status_code == 200, timeout=30, what="shim ready"
        )
        loop = asyncio.create_task(webhook_load(shim, stop, load, "wed_kill_"))

        async def delivered_count_grows(by: int) -> None:
            target = len(delivered()) + by
            await wait_for(lambda: len(delivered()) >= target, timeout=60, what=f"{by} more deliveries")

        def delivered() -> set[str]:
            return {wedding_of(r) for s in sinks for r in s.records()}

        await delivered_count_grows(50)
        for name, address in (("webhooks", webhooks_addr), ("registry", registry_addr)):
            procs[name].kill()  # mid-event: the worker / router holds claimed entries
            procs[name].start()
            await wait_for(lambda a=address: serving(a), timeout=60, what=f"{name} back")
            await delivered_count_grows(50)
        sinks[0].kill()
        await delivered_count_grows(50)
        stop.set()
        await loop
        await wait_for(
            lambda: load.accepted <= delivered(), timeout=120, what="every accepted webhook delivered"
        )
    finally:
        stop.set()
        for sink in sinks:
            sink.stop()
        for process in procs.values():
            process.stop()
    records = [r for s in sinks for r in s.records()]
    deliveries = [wedding_of(r) for r in records]
    figures = {
        "webhooks_accepted": len(load.accepted),
        "refused_during_kills": load.refused,
        "lost": len(load.accepted - set(deliveries)),
        "duplicate_deliveries": len(deliveries) - len(set(deliveries)),
    }
    for key, value in figures.items():
        record_property(key, value)
    print(f"process SIGKILLs under load: {figures}")
    assert figures["lost"] == 0
