"""Failover with sinks (and router replicas) in separate processes."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.registry.procs import RegistryProcess, SinkProcess
from tests.waiting import wait_for
from wedsync.registry.v1 import message_pb2 as mpb
from wedsync.registry.v1 import registry_pb2 as pb
from wedsync.registry.v1 import registry_pb2_grpc, router_pb2_grpc
from wedsync.registry.v1 import router_pb2 as rpb

pytestmark = pytest.mark.slow
SVC = "notification-service"


@pytest.fixture
def sinks(tmp_path: Path) -> Any:
    """Factory of sink processes; every one is stopped after the test."""
    started: list[SinkProcess] = []

    async def start(registry: str, instance: str) -> SinkProcess:
        sink = SinkProcess(registry, SVC, instance, tmp_path / f"{instance}.jsonl")
        started.append(sink)
        return await sink.astart()

    yield start
    for sink in started:
        sink.kill()


async def health_of(registry: Any) -> dict[str, int]:
    reply = await registry.Discover(pb.DiscoverRequest(service_name=SVC))
    return {d.instance.instance_id: d.health.status for d in reply.instances}


async def all_healthy(registry: Any, *ids: str) -> bool:
    health = await health_of(registry)
    return all(health.get(i) == pb.HEALTH_STATUS_HEALTHY for i in ids)


async def send_many(router: Any, n: int, payload: bytes = b"ok") -> list[str]:
    out = []
    for _ in range(n):
        reply = await router.Send(rpb.SendRequest(message=mpb.Message(to_service=SVC, payload=payload)))
        out.append(reply.message_id)
    return out


def ids_of(*procs: SinkProcess) -> set[str]:
    return {r["id"] for p in procs for r in p.records()}


async def test_not_serving_gets_no_deliveries_until_serving_again(
    registry_host: Any, registry: Any, router: Any, sinks: Any
) -> None:
    """An instance answering NOT_SERVING is marked unhealthy and skipped; SERVING again resumes deliveries."""
    address = f"127.0.0.1:{registry_host.port}"
    s1, s2 = await sinks(address, "s1"), await sinks(address, "s2")
    await wait_for(lambda: all_healthy(registry, "s1", "s2"), what="both healthy")
    watch = Watch(registry)
    await watch.call.initial_metadata()
    s1.signal(signal.SIGUSR1)
    # A Watch client of this replica sees the change after the replica's router view did.
    await wait_for(
        lambda: watch.saw_health("s1", pb.HEALTH_STATUS_UNHEALTHY), what="s1 unhealthy", timeout=15
    )
    before = len(s1.records())
    sent = await send_many(router, 20)
    await wait_for(lambda: set(sent) <= ids_of(s2), what="all delivered to s2", timeout=20)
    assert len(s1.records()) == before
    s1.signal(signal.SIGUSR2)
    await wait_for(lambda: watch.saw_health("s1", pb.HEALTH_STATUS_HEALTHY), what="s1 healthy", timeout=15)
    watch.close()
    more = await send_many(router, 20)
    await wait_for(lambda: set(more) <= ids_of(s1, s2), what="second batch delivered", timeout=20)
    assert set(more) & ids_of(s1), "s1 took deliveries again"


class Watch:
    """Health changes seen by a Watch stream."""

    def __init__(self, registry: Any) -> None:
        self.call = registry.Watch(pb.WatchRequest(service_names=[SVC]))
        self.changes: list[tuple[str, int]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for reply in self.call:
            if reply.event.type == pb.WATCH_EVENT_TYPE_HEALTH_CHANGED:
                self.changes.append((reply.event.instance.instance_id, reply.event.health.status))

    def saw_health(self, iid: str, status: int) -> bool:
        return (iid, status) in self.changes[-1:]

    def close(self) -> None:
        self.call.cancel()
        self.task.cancel()


async def test_killed_sink_messages_go_to_another_instance(
    registry_host: Any, registry: Any, router: Any, sinks: Any
) -> None:
    """Messages in flight at a sink killed with SIGKILL are delivered by the surviving instance."""
    address = f"127.0.0.1:{registry_host.port}"
    s1, s2 = await sinks(address, "s1"), await sinks(address, "s2")
    await wait_for(lambda: all_healthy(registry, "s1", "s2"), what="both healthy")
    sent = await send_many(router, 10, b"sleep:2")
    await wait_for(lambda: s1.records(), what="s1 received a message")
    s1.kill()
    held_by_s1 = ids_of(s1)
    assert held_by_s1
    await wait_for(lambda: set(sent) <= ids_of(s2), what="every message delivered by s2", timeout=30)
    assert held_by_s1 <= ids_of(s2)


async def test_messages_wait_while_all_sinks_are_down(
    registry_host: Any, registry: Any, router: Any, sinks: Any
) -> None:
    """With every instance down, messages stay queued without spending attempts and flow once one is back."""
    address = f"127.0.0.1:{registry_host.port}"
    s1 = await sinks(address, "s1")
    await wait_for(lambda: all_healthy(registry, "s1"), what="s1 healthy")
    s1.kill()
    await wait_for(lambda: _not_healthy(registry, "s1"), what="s1 seen down", timeout=15)
    sent = await send_many(router, 20)
    stats = await router.GetQueueStats(rpb.GetQueueStatsRequest(service_name=SVC))
    normal = next(s for s in stats.stats if s.priority == mpb.MESSAGE_PRIORITY_NORMAL)
    assert normal.depth + normal.in_flight == 20 and normal.dead_letters == 0
    s3 = await sinks(address, "s3")
    await wait_for(lambda: set(sent) <= ids_of(s3), what="delivered after recovery", timeout=30)
    assert {r["attempt"] for r in s3.records()} == {1}


async def _not_healthy(registry: Any, iid: str) -> bool:
    return (await health_of(registry)).get(iid) != pb.HEALTH_STATUS_HEALTHY


async def test_router_replica_killed_mid_flow_loses_nothing(
    redis_url: str, tmp_path: Path, sinks: Any
) -> None:
    """Messages a router replica held when SIGKILLed are reclaimed and delivered by the other replica."""
    few = {"registry.max_in_flight": 4}  # neither replica can claim the whole backlog at once
    a = RegistryProcess(redis_url, tmp_path / "a.log", overrides=few)
    b = RegistryProcess(redis_url, tmp_path / "b.log", overrides=few)
    await a.astart()
    await b.astart()
    try:
        s1, s2 = await sinks(b.address, "s1"), await sinks(b.address, "s2")
        async with grpc.aio.insecure_channel(a.address) as ca, grpc.aio.insecure_channel(b.address) as cb:
            registry = registry_pb2_grpc.RegistryServiceStub(cb)
            await wait_for(lambda: all_healthy(registry, "s1", "s2"), what="sinks healthy", timeout=20)
            sent = await send_many(router_pb2_grpc.RouterServiceStub(ca), 20, b"sleep:1")
            await wait_for(lambda: len(ids_of(s1, s2)) >= 6, what="both replicas delivering", timeout=20)
            a.kill()  # mid-flow: every delivery it started is still sleeping in a sink, unacknowledged
            router_b = router_pb2_grpc.RouterServiceStub(cb)
            await wait_for(lambda: _drained(router_b), what="queue drained by replica b", timeout=60)
            assert set(sent) <= ids_of(s1, s2)
            records = [r for p in (s1, s2) for r in p.records()]
            assert any(r["attempt"] >= 2 for r in records), "replica a's deliveries were reclaimed"

    finally:
        a.kill()
        b.stop()


async def _drained(router: Any) -> bool:
    stats = (await router.GetQueueStats(rpb.GetQueueStatsRequest(service_name=SVC))).stats
    return all(s.depth == 0 and s.in_flight == 0 and s.delayed == 0 and s.dead_letters == 0 for s in stats)
