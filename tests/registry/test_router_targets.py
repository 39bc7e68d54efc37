"""Router target bounds: the cap on services with a queue, and retirement of idle ones."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from services.core.config import MeshConfig, with_overrides
from services.core.local_redis import free_port
from services.core.queue import DurableQueue, Priority
from services.core.redis_client import AnyRedis, connect
from services.core.runner import ProcessRuntime
from services.core.settings_base import ConfigError
from services.registry import metrics
from services.registry.admin import services_key
from services.registry.codec import queue_name
from services.registry.dispatcher import Dispatcher
from services.registry.sdk import MeshInstance, Message, Reject
from services.registry.testing import RecordingSink
from tests.conftest import host_serving
from tests.waiting import wait_for
from wedsync.events.v1 import events_pb2
from wedsync.registry.v1 import message_pb2 as mpb
from wedsync.registry.v1 import router_pb2 as rpb
from wedsync.registry.v1 import router_pb2_grpc

LEDGER = "ledger-service"  # no route names it
IDLE = {"registry.target_idle_s": 0.3}
NO_ROUTES: dict[str, Any] = {"registry.routes": []}


@dataclass
class Replica:
    """One running registry/router process in this event loop."""

    port: int
    dispatcher: Dispatcher
    router: router_pb2_grpc.RouterServiceStub


@pytest.fixture
async def start_replica(fast_config: MeshConfig) -> AsyncIterator[Callable[..., Awaitable[Replica]]]:
    """Start router replicas sharing the test Redis, each on its own port, with config overrides."""
    runtimes: list[ProcessRuntime] = []
    closers: list[Any] = []

    async def start(overrides: dict[str, Any]) -> Replica:
        config = with_overrides(fast_config, {**overrides, "registry.port": free_port()})
        redis = connect(config.redis)
        closers.append(redis.aclose)
        runtime = ProcessRuntime("registry", config, redis)
        await runtime.start()
        runtimes.append(runtime)
        await wait_for(lambda: host_serving(runtime.host), what="registry SERVING")
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{runtime.host.port}")
        closers.append(channel.close)
        dispatcher = next(t for t in runtime.app.background if isinstance(t, Dispatcher))
        return Replica(runtime.host.port, dispatcher, router_pb2_grpc.RouterServiceStub(channel))

    yield start
    for runtime in runtimes:
        await runtime.stop()
    for close in closers:
        await close()


@pytest.fixture
async def start_sink() -> AsyncIterator[Callable[..., Awaitable[MeshInstance]]]:
    """Start an SDK sink registered with a given replica; stopped (deregistered) after the test."""
    started: list[MeshInstance] = []

    async def start(replica: Replica, service: str, handler: Any, instance_id: str = "i1") -> MeshInstance:
        sink = MeshInstance(
            service, handler, registry=f"127.0.0.1:{replica.port}", instance_id=instance_id, ttl=2.0
        )
        await sink.start()
        started.append(sink)
        return sink

    yield start
    for sink in started:
        await sink.stop(grace=0.5)


async def send(replica: Replica, service: str, payload: bytes = b"x") -> rpb.SendResponse:
    reply: rpb.SendResponse = await replica.router.Send(
        rpb.SendRequest(message=mpb.Message(to_service=service, payload=payload))
    )
    return reply


async def members(client: AnyRedis) -> set[str]:
    return {m.decode() for m in await client.smembers(services_key())}


def depth_series(service: str) -> float | None:
    return REGISTRY.get_sample_value("wedmesh_router_queue_depth", {"service": service, "priority": "normal"})


def accepted_series(service: str) -> float | None:
    return REGISTRY.get_sample_value(
        "wedmesh_router_deliveries_total", {"service": service, "outcome": "accepted"}
    )


async def retired_everywhere(client: AnyRedis, service: str, *replicas: Replica) -> bool:
    return service not in await members(client) and all(
        service not in r.dispatcher.serving() for r in replicas
    )


def test_cap_and_idle_period_must_be_positive(mesh_config: MeshConfig) -> None:
    """max_target_services 0 and target_idle_s 0 are refused at start, naming the key."""
    for key in ("registry.max_target_services", "registry.target_idle_s"):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            with_overrides(mesh_config, {key: 0})


async def test_new_unregistered_services_past_the_cap_are_refused_naming_the_knob(
    start_replica: Any, redis_client: AnyRedis
) -> None:
    """With max_target_services 3, three unregistered names get queues; a fourth is RESOURCE_EXHAUSTED."""
    replica = await start_replica({**NO_ROUTES, "registry.max_target_services": 3})
    for n in range(3):
        assert (await send(replica, f"made-up-{n}")).message_id  # accepted: waits for an instance
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await send(replica, "made-up-3")
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = err.value.details() or ""
    assert "registry.max_target_services = 3" in details and "'made-up-3'" in details
    assert (await send(replica, "made-up-1")).message_id  # a service with a queue is never refused
    assert await members(redis_client) == {"made-up-0", "made-up-1", "made-up-2"}
    assert replica.dispatcher.serving() == {"made-up-0", "made-up-1", "made-up-2"}


async def test_send_batch_refuses_only_the_messages_past_the_cap(start_replica: Any) -> None:
    """A SendBatch to four new names under a cap of two queues two and refuses the other two."""
    replica = await start_replica({**NO_ROUTES, "registry.max_target_services": 2})
    batch = [mpb.Message(to_service=f"batch-{n}", payload=b"x") for n in range(4)]
    reply = await replica.router.SendBatch(rpb.SendBatchRequest(messages=batch))
    exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert [r.error_code for r in reply.results] == [0, 0, exhausted, exhausted]
    assert "registry.max_target_services = 2" in reply.results[2].error_message


async def test_registered_services_and_route_targets_are_admitted_past_the_cap(
    start_replica: Any, start_sink: Any
) -> None:
    """At the cap, a service with a live instance and Publish's route targets still get their messages."""
    replica = await start_replica({"registry.max_target_services": 1})  # the routes alone exceed it
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await send(replica, "made-up")
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    published = await replica.router.Publish(
        rpb.PublishRequest(event=events_pb2.WeddingEvent(id="evt-1", type="wedding.created"))
    )
    assert len(published.message_ids) == 2
    sink = RecordingSink()
    await start_sink(replica, LEDGER, sink)
    reply = await send(replica, LEDGER, b"for the ledger")
    await sink.wait_for(1)
    assert sink.messages[0].message_id == reply.message_id


async def test_concurrent_new_services_through_two_replicas_never_overshoot_the_cap(
    start_replica: Any, redis_client: AnyRedis
) -> None:
    """30 concurrent Sends to distinct new names through two replicas, cap 5: exactly 5 accepted."""
    overrides = {**NO_ROUTES, "registry.max_target_services": 5}
    a, b = await start_replica(overrides), await start_replica(overrides)
    results = await asyncio.gather(
        *(send(a if n % 2 else b, f"burst-{n}") for n in range(30)), return_exceptions=True
    )
    accepted = [r for r in results if isinstance(r, rpb.SendResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert (len(accepted), len(refused)) == (5, 25)
    assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert len(await members(redis_client)) == 5


async def test_get_queue_stats_for_any_name_adds_no_metric_series(start_replica: Any) -> None:
    """GetQueueStats for a name nobody sent to answers zeros and creates no gauge series or queue."""
    replica = await start_replica({})
    reply = await replica.router.GetQueueStats(rpb.GetQueueStatsRequest(service_name="never-sent-to"))
    assert [s.depth for s in reply.stats] == [0, 0, 0]
    assert depth_series("never-sent-to") is None
    assert "never-sent-to" not in metrics.gauged_services()
    assert "never-sent-to" not in replica.dispatcher.serving()


async def test_idle_service_is_retired_on_every_replica_with_its_series(
    start_replica: Any, start_sink: Any, redis_client: AnyRedis
) -> None:
    """Drained and instance-less for target_idle_s, a service leaves the set, every Worker and /metrics."""
    a, b = await start_replica(IDLE), await start_replica(IDLE)
    sink = RecordingSink()
    instance = await start_sink(a, LEDGER, sink)
    await send(a, LEDGER)
    await sink.wait_for(1)
    await wait_for(lambda: LEDGER in b.dispatcher.serving(), what="replica b serving the ledger")
    await wait_for(lambda: depth_series(LEDGER) == 0 and accepted_series(LEDGER) == 1, what="series")
    await instance.stop(grace=0.5)  # deregisters: no live instance any more
    await wait_for(lambda: retired_everywhere(redis_client, LEDGER, a, b), what="ledger retired")
    assert depth_series(LEDGER) is None and accepted_series(LEDGER) is None
    for stream in DurableQueue(redis_client, queue_name(LEDGER)).keys.streams:
        for group in await redis_client.xinfo_groups(stream):
            assert group["consumers"] == 0  # every Worker stopped and left the group
    assert "notification-service" in a.dispatcher.serving()  # route targets are never retired


async def test_retired_service_is_served_again_when_sent_to(
    start_replica: Any, start_sink: Any, redis_client: AnyRedis
) -> None:
    """After retirement, a Send admits the service again and its message reaches a new instance."""
    replica = await start_replica(IDLE)
    first = RecordingSink()
    instance = await start_sink(replica, LEDGER, first)
    await send(replica, LEDGER, b"one")
    await first.wait_for(1)
    await instance.stop(grace=0.5)
    await wait_for(lambda: retired_everywhere(redis_client, LEDGER, replica), what="ledger retired")
    reply = await send(replica, LEDGER, b"two")
    assert LEDGER in await members(redis_client) and LEDGER in replica.dispatcher.serving()
    second = RecordingSink()
    await start_sink(replica, LEDGER, second, "i2")
    await second.wait_for(1)
    assert (second.messages[0].message_id, second.messages[0].payload) == (reply.message_id, b"two")


async def test_queue_with_waiting_messages_or_dead_letters_is_never_retired(
    start_replica: Any, start_sink: Any, redis_client: AnyRedis
) -> None:
    """While one idle service is retired, one with a waiting message and one with a dead letter stay."""
    replica = await start_replica(IDLE)
    waiting = await send(replica, "waiting-service", b"wait for me")
    rejecting = await start_sink(replica, "dead-letter-service", RecordingSink(behaviour=_reject))
    await send(replica, "dead-letter-service")
    await wait_for(lambda: _dead_letters(replica, "dead-letter-service"), what="a dead letter")
    await rejecting.stop(grace=0.5)
    drained = RecordingSink()
    ledger = await start_sink(replica, LEDGER, drained)
    await send(replica, LEDGER)
    await drained.wait_for(1)
    await ledger.stop(grace=0.5)
    await wait_for(lambda: retired_everywhere(redis_client, LEDGER, replica), what="ledger retired")
    # The sweep that retired the ledger saw the two others idle-free-of-instances for as long.
    kept = {"waiting-service", "dead-letter-service"}
    assert kept <= await members(redis_client) and kept <= replica.dispatcher.serving()
    assert depth_series("waiting-service") == 1
    sink = RecordingSink()
    await start_sink(replica, "waiting-service", sink)
    await sink.wait_for(1)
    assert sink.messages[0].message_id == waiting.message_id


async def test_registration_serves_a_retired_service_whose_queue_holds_a_message(
    start_replica: Any, start_sink: Any, redis_client: AnyRedis
) -> None:
    """A message in the queue of a service no replica serves is delivered once an instance registers."""
    replica = await start_replica(IDLE)
    first = RecordingSink()
    instance = await start_sink(replica, LEDGER, first)
    await send(replica, LEDGER)
    await first.wait_for(1)
    await instance.stop(grace=0.5)
    await wait_for(lambda: retired_everywhere(redis_client, LEDGER, replica), what="ledger retired")
    # What a replica dying between its enqueue and putting the service back would leave behind.
    stranded = mpb.Message(message_id="stranded-1", to_service=LEDGER, payload=b"late")
    await DurableQueue(redis_client, queue_name(LEDGER)).submit(
        stranded.SerializeToString(), Priority.NORMAL, message_id="stranded-1", max_attempts=4
    )
    sink = RecordingSink()
    await start_sink(replica, LEDGER, sink, "i2")
    await sink.wait_for(1)
    assert sink.messages[0].message_id == "stranded-1"
    assert LEDGER in await members(redis_client)


async def test_sends_racing_retirement_always_leave_their_service_served(
    start_replica: Any, redis_client: AnyRedis
) -> None:
    """A Send racing the retirement of its idle target ends with the service in the set and served."""
    replica = await start_replica({"registry.target_idle_s": 3600})  # only the test retires
    rng = random.Random(7)
    names = [f"racing-{n}" for n in range(12)]
    for name in names:
        async with replica.dispatcher.sending(name):  # admitted, empty, no instance: retirable
            pass

        async def retire(name: str = name) -> bool:
            for _ in range(rng.randrange(6)):  # vary where the two interleave
                await asyncio.sleep(0)
            return await replica.dispatcher.retire(name, remove=True)

        _, retired = await asyncio.gather(send(replica, name), retire())
        assert not retired or name in replica.dispatcher.serving()  # retired, then admitted again
    for name in names:
        await wait_for(
            lambda name=name: _in_set_and_served(redis_client, replica, name), what=f"{name} served"
        )
        stats = await replica.router.GetQueueStats(rpb.GetQueueStatsRequest(service_name=name))
        assert sum(s.depth for s in stats.stats) == 1


async def _in_set_and_served(client: AnyRedis, replica: Replica, name: str) -> bool:
    return name in await members(client) and name in replica.dispatcher.serving()


async def _reject(message: Message) -> None:
    raise Reject("not for us")


async def _dead_letters(replica: Replica, service: str) -> bool:
    reply = await replica.router.GetQueueStats(rpb.GetQueueStatsRequest(service_name=service))
    return sum(s.dead_letters for s in reply.stats) == 1
