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
from services.core.queue import DurableQueue, Priority, QueueStats
from services.core.redis_client import AnyRedis, connect
from services.core.runner import ProcessRuntime
from services.core.settings_base import ConfigError
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
    started: asyncio.Task[int] | None = None
    """With ``hold``: the runtime's start, done once the held dispatcher started."""


@pytest.fixture
async def start_replica(fast_config: MeshConfig) -> AsyncIterator[Callable[..., Awaitable[Replica]]]:
    """Start router replicas sharing the test Redis, each on its own port, with config overrides.

    ``hold``: the dispatcher's start waits for that event (the gRPC port is open already),
    as a replica's does while its earlier background tasks start.
    """
    runtimes: list[ProcessRuntime] = []
    closers: list[Any] = []
    starts: list[asyncio.Task[int]] = []

    async def start(overrides: dict[str, Any], hold: asyncio.Event | None = None) -> Replica:
        config = with_overrides(fast_config, {**overrides, "registry.port": free_port()})
        redis = connect(config.redis)
        closers.append(redis.aclose)
        runtime = ProcessRuntime("registry", config, redis)
        dispatcher = next(t for t in runtime.app.background if isinstance(t, Dispatcher))
        started = None
        if hold is None:
            await runtime.start()
        else:
            real_start = dispatcher.start

            async def held_start(host: Any = None) -> None:
                await hold.wait()
                await real_start(host)

            dispatcher.start = held_start  # type: ignore[method-assign]
            started = asyncio.create_task(runtime.start())
            starts.append(started)
        runtimes.append(runtime)
        await wait_for(lambda: host_serving(runtime.host), what="registry SERVING")
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{runtime.host.port}")
        closers.append(channel.close)
        return Replica(runtime.host.port, dispatcher, router_pb2_grpc.RouterServiceStub(channel), started)

    yield start
    for task in starts:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
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


def series_of(service: str) -> list[str]:
    """Names of every exported sample labelled with ``service``."""
    return [
        sample.name
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.labels.get("service") == service
    ]


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
    # The batch's messages are admitted concurrently: which two win is not ordered.
    assert sorted(r.error_code for r in reply.results) == [0, 0, exhausted, exhausted]
    refused = [r for r in reply.results if r.error_code]
    assert all("registry.max_target_services = 2" in r.error_message for r in refused)
    assert all(r.message_id for r in reply.results if not r.error_code)


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
    assert not series_of("never-sent-to")
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
    assert a.dispatcher.deliverer.addresses() | b.dispatcher.deliverer.addresses()  # the sink's
    await instance.stop(grace=0.5)  # deregisters: no live instance any more
    await wait_for(lambda: retired_everywhere(redis_client, LEDGER, a, b), what="ledger retired")
    # A replica's Worker leaves `serving()` before it has stopped and its series are gone:
    # wait for the end state itself.
    await wait_for(lambda: depth_series(LEDGER) is None and accepted_series(LEDGER) is None, what="no series")
    await wait_for(lambda: _no_consumers(redis_client, LEDGER), what="every Worker left the group")
    await wait_for(
        lambda: not a.dispatcher.deliverer.addresses() and not b.dispatcher.deliverer.addresses(),
        what="the sink's connections closed",
    )
    assert await retired_everywhere(redis_client, LEDGER, a, b)
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
    dead = {"service": "dead-letter-service", "priority": "normal"}
    assert REGISTRY.get_sample_value("wedmesh_router_dead_letters", dead) == 1  # the split, in the sweep
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


async def _no_consumers(client: AnyRedis, service: str) -> bool:
    for stream in DurableQueue(client, queue_name(service)).keys.streams:
        for group in await client.xinfo_groups(stream):
            if group["consumers"]:
                return False
    return True


async def _in_set_and_served(client: AnyRedis, replica: Replica, name: str) -> bool:
    return name in await members(client) and name in replica.dispatcher.serving()


async def _reject(message: Message) -> None:
    raise Reject("not for us")


async def _dead_letters(replica: Replica, service: str) -> bool:
    reply = await replica.router.GetQueueStats(rpb.GetQueueStatsRequest(service_name=service))
    return sum(s.dead_letters for s in reply.stats) == 1


QUIET = {"registry.target_idle_s": 3600}  # only the test retires


async def test_send_before_the_dispatcher_starts_is_delivered_once_it_does(
    start_replica: Any, start_sink: Any
) -> None:
    """The gRPC port opens before the dispatcher starts: a Send accepted then is delivered after."""
    hold = asyncio.Event()
    replica = await start_replica(QUIET, hold=hold)
    early = await send(replica, LEDGER, b"early")  # acknowledged: persisted, dispatcher not running
    assert LEDGER not in replica.dispatcher.serving()
    hold.set()
    assert replica.started is not None
    await replica.started
    sink = RecordingSink()
    await start_sink(replica, LEDGER, sink)
    await sink.wait_for(1)
    assert sink.messages[0].message_id == early.message_id


async def test_service_retired_elsewhere_while_sent_to_here_is_put_back(
    start_replica: Any, redis_client: AnyRedis
) -> None:
    """Replica b retires S while a Send to S runs on a (which serves S, so skips admission): a puts S back."""
    a, b = await start_replica(QUIET), await start_replica(QUIET)
    async with a.dispatcher.sending(LEDGER):  # admitted: in the set, served on a
        pass
    await wait_for(lambda: LEDGER in b.dispatcher.serving(), what="b serving the ledger")
    async with a.dispatcher.sending(LEDGER):  # a Send in flight on a, for as long as the test needs
        assert await b.dispatcher.retire(LEDGER, remove=True)  # idle as far as b can tell
        assert LEDGER not in await members(redis_client)
        await wait_for(lambda: _in_set(redis_client, LEDGER), what="a putting the ledger back")
        await wait_for(lambda: LEDGER in b.dispatcher.serving(), what="b serving the ledger again")
        assert LEDGER in a.dispatcher.serving()


async def test_sweep_goes_on_past_a_service_whose_stats_fail(
    start_replica: Any, start_sink: Any, redis_client: AnyRedis
) -> None:
    """A member whose queue cannot be read is logged and skipped: the others' gauges and retirement go on."""
    broken = "broken-service"  # sorts before the ledger: swept first
    await redis_client.set(DurableQueue(redis_client, queue_name(broken)).keys.streams[0], "not a stream")
    await redis_client.sadd(services_key(), broken)
    replica = await start_replica(IDLE)
    await wait_for(lambda: broken in replica.dispatcher.serving(), what="the broken service served")
    sink = RecordingSink()
    instance = await start_sink(replica, LEDGER, sink)
    await send(replica, LEDGER)
    await sink.wait_for(1)
    await wait_for(lambda: depth_series(LEDGER) == 0, what="the ledger's gauges")
    await instance.stop(grace=0.5)
    await wait_for(lambda: retired_everywhere(redis_client, LEDGER, replica), what="ledger retired")
    assert broken in await members(redis_client) and depth_series(broken) is None


async def test_loops_and_stop_survive_unexpected_errors(
    start_replica: Any, redis_client: AnyRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follow raising a non-Mesh error does not end its loop; stop() gets past a failing Worker."""
    replica = await start_replica(QUIET)
    dispatcher = replica.dispatcher
    real_follow = dispatcher.follow
    failed = asyncio.Event()

    async def follow_failing_once() -> None:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("injected")
        await real_follow()

    monkeypatch.setattr(dispatcher, "follow", follow_failing_once)
    await wait_for(failed.is_set, what="the injected failure")
    await redis_client.sadd(services_key(), "added-later")
    await wait_for(lambda: "added-later" in dispatcher.serving(), what="the follow loop going on")

    first = dispatcher._workers["added-later"]
    real_stop = first.stop

    async def stop_failing(grace: float = 10.0) -> None:
        await real_stop(grace)
        raise RuntimeError("injected")

    monkeypatch.setattr(first, "stop", stop_failing)
    others = [w for name, w in dispatcher._workers.items() if name != "added-later"]
    assert others  # the route targets'
    await dispatcher.stop()  # logs the failure, raises nothing
    assert dispatcher.serving() == set()
    assert all(w._main is not None and w._main.done() for w in others)


@pytest.mark.parametrize("interruption", ["cancelled", "error"])
async def test_interrupted_retirement_leaves_the_worker_serving(
    start_replica: Any, redis_client: AnyRedis, monkeypatch: pytest.MonkeyPatch, interruption: str
) -> None:
    """A retirement cancelled, or failing with a non-Mesh error, mid-way puts its Worker back."""
    replica = await start_replica(QUIET)
    dispatcher = replica.dispatcher
    async with dispatcher.sending(LEDGER):
        pass
    worker = dispatcher._workers[LEDGER]
    entered = asyncio.Event()

    async def remove(service: str) -> None:
        entered.set()
        if interruption == "error":
            raise RuntimeError("injected")
        await asyncio.Event().wait()  # until cancelled

    monkeypatch.setattr(dispatcher.targets, "remove", remove)
    retiring = asyncio.create_task(dispatcher.retire(LEDGER, remove=True))
    await wait_for(entered.is_set, what="the retirement under way")
    if interruption == "cancelled":
        retiring.cancel()  # as stop() cancelling the sweep that runs it
    with pytest.raises((asyncio.CancelledError, RuntimeError)):
        await retiring
    assert dispatcher._workers.get(LEDGER) is worker and worker._main is not None
    assert not worker._main.done()  # still claiming, and known to stop() again
    assert LEDGER in await members(redis_client)


async def test_registration_during_a_retirement_serves_the_service_once_it_settled(
    start_replica: Any, start_sink: Any, redis_client: AnyRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registration seen while its service was being retired still rescues the service's queue."""
    replica = await start_replica(QUIET)
    dispatcher = replica.dispatcher
    async with dispatcher.sending(LEDGER):
        pass
    real_queue = dispatcher.queue
    entered, release = asyncio.Event(), asyncio.Event()

    def queue_read_before_the_registration(service: str) -> DurableQueue:
        queue = real_queue(service)
        if service == LEDGER and LEDGER in dispatcher._retiring:  # its last read: after the registry's
            real_stats = queue.stats

            async def stats() -> QueueStats:
                found = await real_stats()
                entered.set()
                await release.wait()
                return found

            queue.stats = stats  # type: ignore[method-assign]
        return queue

    monkeypatch.setattr(dispatcher, "queue", queue_read_before_the_registration)
    retiring = asyncio.create_task(dispatcher.retire(LEDGER, remove=True))
    await wait_for(entered.is_set, what="the retirement reading the queue")
    sink = RecordingSink()
    await start_sink(replica, LEDGER, sink)
    await wait_for(lambda: LEDGER in dispatcher._registered, what="the registration seen")
    await dispatcher.follow()  # a follow pass while the ledger is being retired
    # After the retirement read the (empty) queue: what a replica dying between its enqueue
    # and putting the service back would leave behind. Delayed, so that the Worker being
    # retired (still running until the retirement ends) cannot be the one delivering it.
    stranded = mpb.Message(message_id="stranded-2", to_service=LEDGER, payload=b"late")
    await DurableQueue(redis_client, queue_name(LEDGER)).submit(
        stranded.SerializeToString(), Priority.NORMAL, message_id="stranded-2", max_attempts=4, delay=2.0
    )
    release.set()
    assert await retiring  # it read no instance, then an empty queue
    await sink.wait_for(1)  # rescued by the next follow, not the 30 s check of registered services
    assert sink.messages[0].message_id == "stranded-2"


async def _in_set(client: AnyRedis, service: str) -> bool:
    return service in await members(client)


async def test_sweep_reads_the_registry_only_when_a_service_is_due(
    start_replica: Any, start_sink: Any, redis_client: AnyRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty queue with a live instance: no registry read per sweep; one when due, restarting its clock."""
    replica = await start_replica(QUIET)
    dispatcher = replica.dispatcher
    sweeping = next(t for t in dispatcher._tasks if t.get_name() == "router-sweep")
    sweeping.cancel()  # only the test sweeps
    await asyncio.gather(sweeping, return_exceptions=True)
    async with dispatcher.sending(LEDGER):  # admitted; its queue stays empty
        pass
    dispatcher.idle._since[LEDGER] = 0.0
    await start_sink(replica, LEDGER, RecordingSink())
    await wait_for(lambda: LEDGER not in dispatcher.idle._since, what="the registration seen")
    # No current healthy view (as for an instance that has not been delivered to lately):
    # only the registry can tell that the ledger is not idle.
    monkeypatch.setattr(dispatcher.views, "known_healthy", lambda service: False)
    reads: list[str] = []
    real_has_instances = dispatcher._has_instances

    async def has_instances(service: str) -> bool:
        reads.append(service)
        return await real_has_instances(service)

    monkeypatch.setattr(dispatcher, "_has_instances", has_instances)
    dispatcher.idle.idle_s = 0.5
    for _ in range(5):
        await dispatcher.sweep()
    assert reads == []  # idle, not yet due: queue totals only
    await asyncio.sleep(0.5)
    await dispatcher.sweep()  # due: one read, which finds the instance
    assert reads == [LEDGER]
    for _ in range(5):
        await dispatcher.sweep()
    assert reads == [LEDGER]  # its idle time started again
    assert LEDGER in await members(redis_client) and LEDGER in dispatcher.serving()


async def test_a_registration_or_a_current_healthy_view_restarts_the_idle_clock(
    start_replica: Any, start_sink: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the replica knows without Redis (the change feed, its instance view) keeps a service busy."""
    replica = await start_replica(QUIET)
    dispatcher = replica.dispatcher
    async with dispatcher.sending(LEDGER):
        pass
    clock = dispatcher.idle._since
    clock[LEDGER] = 0.0  # idle since long ago
    await start_sink(replica, LEDGER, RecordingSink())  # its registration, on the change feed
    await wait_for(lambda: LEDGER not in clock, what="the registration restarting the clock")
    monkeypatch.setattr(dispatcher.views, "refresh_s", 60.0)  # the view stays current while we look
    await wait_for(lambda: dispatcher.views.healthy(LEDGER), what="a healthy instance in the view")
    assert dispatcher.views.known_healthy(LEDGER)
    reads: list[str] = []

    async def has_instances(service: str) -> bool:
        reads.append(service)
        return True

    monkeypatch.setattr(dispatcher, "_has_instances", has_instances)
    clock[LEDGER] = 0.0
    await dispatcher.sweep()
    assert LEDGER not in clock and reads == []  # seen busy without asking the registry
    assert LEDGER in dispatcher.serving()
