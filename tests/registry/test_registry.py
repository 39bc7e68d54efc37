"""Registry behaviour through its gRPC API: leases, validation, discovery, watches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from services.core.config import MeshConfig, with_overrides
from services.core.keys import registry_global_key
from services.core.local_redis import free_port
from services.core.redis_client import AnyRedis
from services.registry.testing import RecordingSink
from tests.waiting import wait_for
from wedsync.registry.v1 import registry_pb2 as pb
from wedsync.registry.v1 import registry_pb2_grpc


def instance(iid: str = "i1", address: str = "127.0.0.1:1", service: str = "svc-a") -> pb.ServiceInstance:
    return pb.ServiceInstance(service_name=service, instance_id=iid, address=address, version="1.0")


def ttl(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromMilliseconds(int(seconds * 1000))
    return out


async def ids(registry: Any, service: str = "svc-a") -> list[str]:
    reply = await registry.Discover(pb.DiscoverRequest(service_name=service))
    return [d.instance.instance_id for d in reply.instances]


class Watcher:
    """Collects a Watch stream's events in the background."""

    def __init__(self, stub: registry_pb2_grpc.RegistryServiceStub, request: pb.WatchRequest) -> None:
        self.call = stub.Watch(request)
        self.events: list[pb.WatchEvent] = []
        self.task = asyncio.create_task(self._read())

    async def live(self) -> Watcher:
        """Wait for the response headers, which the server sends once it is subscribed."""
        await self.call.initial_metadata()
        return self

    async def _read(self) -> None:
        async for reply in self.call:
            self.events.append(reply.event)

    def saw(self, kind: int, iid: str) -> bool:
        return any(e.type == kind and e.instance.instance_id == iid for e in self.events)

    def close(self) -> None:
        self.call.cancel()
        self.task.cancel()


@pytest.fixture
async def watcher(registry: Any) -> AsyncIterator[Watcher]:
    w = await Watcher(registry, pb.WatchRequest()).live()
    yield w
    w.close()


async def test_register_returns_a_lease_with_the_default_ttl(registry: Any) -> None:
    """Register grants a lease of the configured default ttl for the instance."""
    reply = await registry.Register(pb.RegisterRequest(instance=instance()))
    assert reply.lease.lease_id
    assert reply.lease.ttl.ToMilliseconds() == 10_000
    assert (reply.lease.service_name, reply.lease.instance_id) == ("svc-a", "i1")
    assert await ids(registry) == ["i1"]


async def test_expired_lease_removes_the_instance_and_is_watched(registry: Any, watcher: Watcher) -> None:
    """An instance that stops heartbeating disappears after its ttl, announced as EXPIRED."""
    await registry.Register(pb.RegisterRequest(instance=instance(), ttl=ttl(0.5)))
    assert await ids(registry) == ["i1"]
    await wait_for(lambda: watcher.saw(pb.WATCH_EVENT_TYPE_EXPIRED, "i1"), what="EXPIRED event")
    assert await ids(registry) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.Heartbeat(pb.HeartbeatRequest(lease_id="bm90LWEtbGVhc2U"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_heartbeat_keeps_the_lease_alive(registry: Any) -> None:
    """Heartbeats renew the lease, so the instance outlives several ttls."""
    reply = await registry.Register(pb.RegisterRequest(instance=instance(), ttl=ttl(0.6)))
    first_expiry = reply.lease.expires_at.ToMilliseconds()
    for _ in range(8):
        await asyncio.sleep(0.2)
        beat = await registry.Heartbeat(pb.HeartbeatRequest(lease_id=reply.lease.lease_id))
    assert beat.lease.expires_at.ToMilliseconds() > first_expiry + 1000
    assert await ids(registry) == ["i1"]


async def test_heartbeat_on_an_expired_lease_is_not_found(registry: Any) -> None:
    """A lease that lapsed cannot be renewed: the instance must register again."""
    reply = await registry.Register(pb.RegisterRequest(instance=instance(), ttl=ttl(0.3)))
    await wait_for(lambda: _empty(registry), what="expiry")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.Heartbeat(pb.HeartbeatRequest(lease_id=reply.lease.lease_id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def _empty(registry: Any) -> bool:
    return await ids(registry) == []


async def test_deregister_removes_at_once(registry: Any, watcher: Watcher) -> None:
    """Deregister removes the instance immediately; a second one reports found=false."""
    reply = await registry.Register(pb.RegisterRequest(instance=instance()))
    gone = await registry.Deregister(pb.DeregisterRequest(lease_id=reply.lease.lease_id))
    assert gone.found and await ids(registry) == []
    again = await registry.Deregister(pb.DeregisterRequest(service_name="svc-a", instance_id="i1"))
    assert not again.found
    await wait_for(lambda: watcher.saw(pb.WATCH_EVENT_TYPE_DEREGISTERED, "i1"), what="DEREGISTERED")


async def test_duplicate_instance_id_from_another_address_is_refused(registry: Any) -> None:
    """A live instance id registered from a second address answers ALREADY_EXISTS."""
    await registry.Register(pb.RegisterRequest(instance=instance(address="10.0.0.1:5000")))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.Register(pb.RegisterRequest(instance=instance(address="10.0.0.2:5000")))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "10.0.0.1:5000" in (err.value.details() or "")
    again = await registry.Register(pb.RegisterRequest(instance=instance(address="10.0.0.1:5000")))
    assert again.lease.lease_id


async def test_re_register_replaces_the_lease(registry: Any) -> None:
    """Registering again from the same address returns a fresh lease; the old one stops working."""
    old = await registry.Register(pb.RegisterRequest(instance=instance()))
    await registry.Register(pb.RegisterRequest(instance=instance()))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.Heartbeat(pb.HeartbeatRequest(lease_id=old.lease.lease_id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (instance(address="no-port"), "address"),
        (instance(address="host:99999"), "address"),
        (instance(address="bad host:80"), "address"),
        (instance(address="[::1:80"), "address"),
        (instance(iid="has space"), "instance_id"),
        (instance(service="bad{tag}"), "service_name"),
        (instance(service=""), "service_name"),
        (instance(iid="x" * 201), "instance_id"),
        (instance(service="0\n"), "service_name"),  # "$" matched before a trailing newline
        (instance(iid="i1\n"), "instance_id"),
        (instance(address="host\n:80"), "address"),
        (instance(address="host:80\n"), "address"),
        (instance(address="host:²"), "address"),  # str.isdigit() is true, int() refuses it
        (instance(address="host:٣"), "address"),  # Arabic-Indic 3: was accepted as port 3
        (instance(address="host:0"), "address"),
        (instance(address="[fe80::1%a b]:80"), "address"),
        (pb.ServiceInstance(service_name="s", instance_id="i", address="h:1", version="v" * 129), "version"),
        (
            pb.ServiceInstance(service_name="s", instance_id="i", address="h:1", metadata={"k": "v" * 2000}),
            "metadata",
        ),
    ],
)
async def test_invalid_registration_is_rejected(registry: Any, bad: pb.ServiceInstance, field: str) -> None:
    """Malformed names, addresses and oversized fields answer INVALID_ARGUMENT naming the field."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await registry.Register(pb.RegisterRequest(instance=bad))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")


async def test_refused_names_leave_nothing_in_redis(registry: Any, redis_client: AnyRedis) -> None:
    """A name refused by validation writes nothing: not even the service index entry."""
    for bad in (instance(service="0\n"), instance(iid="i1\n"), instance(service="svc-a\n", iid="i1\n")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry.Register(pb.RegisterRequest(instance=bad))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "letters, digits" in (err.value.details() or "")
    assert await redis_client.smembers(registry_global_key("services")) == set()
    assert await ids(registry) == []


async def test_a_garbage_service_index_entry_does_not_stop_health_checks(
    registry: Any, redis_client: AnyRedis, start_sink: Any
) -> None:
    """Entries in the service index that no key can be built from are skipped, not fatal.

    Such an entry used to make every checker tick raise, so no instance was ever checked
    (new ones stayed UNKNOWN) and a Watch with the initial state failed with INTERNAL.
    """
    await redis_client.sadd(registry_global_key("services"), "0\n", "bad{tag}", b"\xff\xfe", "a b")
    await start_sink("svc-a", RecordingSink(), "s1")

    async def healthy() -> bool:
        reply = await registry.Discover(pb.DiscoverRequest(service_name="svc-a", healthy_only=True))
        return [d.instance.instance_id for d in reply.instances] == ["s1"]

    await wait_for(healthy, what="s1 checked and HEALTHY despite garbage in the service index")
    w = Watcher(registry, pb.WatchRequest(send_initial_state=True))
    try:
        await wait_for(lambda: w.saw(pb.WATCH_EVENT_TYPE_REGISTERED, "s1"), what="initial s1")
        assert {e.instance.service_name for e in w.events} == {"svc-a"}
        assert not w.task.done()  # the stream is still open, not failed
    finally:
        w.close()


async def test_ipv6_and_hostname_addresses_are_accepted(registry: Any) -> None:
    """Bracketed IPv6 and DNS names are valid addresses."""
    await registry.Register(pb.RegisterRequest(instance=instance("a", "[::1]:7000")))
    await registry.Register(pb.RegisterRequest(instance=instance("b", "sink-0.sinks.svc.cluster.local:7000")))
    await registry.Register(pb.RegisterRequest(instance=instance("c", "[fe80::1%eth0]:65535")))
    assert await ids(registry) == ["a", "b", "c"]


async def test_discover_of_an_unknown_service_is_empty(registry: Any) -> None:
    """Discover on a service nobody registered yields no instances, not NOT_FOUND."""
    assert await ids(registry, "nobody") == []


async def test_watch_initial_state_and_service_filter(registry: Any) -> None:
    """Watch with send_initial_state first lists current instances, then only watched services."""
    await registry.Register(pb.RegisterRequest(instance=instance("a1", service="svc-a")))
    await registry.Register(pb.RegisterRequest(instance=instance("b1", service="svc-b")))
    w = Watcher(registry, pb.WatchRequest(service_names=["svc-a"], send_initial_state=True))
    try:
        await wait_for(lambda: w.saw(pb.WATCH_EVENT_TYPE_REGISTERED, "a1"), what="initial a1")
        assert w.events[0].initial
        await registry.Register(pb.RegisterRequest(instance=instance("b2", service="svc-b")))
        await registry.Register(pb.RegisterRequest(instance=instance("a2", service="svc-a")))
        await wait_for(lambda: w.saw(pb.WATCH_EVENT_TYPE_REGISTERED, "a2"), what="a2")
        assert {e.instance.service_name for e in w.events} == {"svc-a"}
    finally:
        w.close()


async def test_two_replicas_agree_and_both_watches_see_a_change(
    start_service: Any, fast_config: MeshConfig
) -> None:
    """Two registry replicas on one Redis answer the same Discover and both Watch streams see a change."""
    a = await start_service("registry", fast_config)
    b = await start_service("registry", with_overrides(fast_config, {"registry.port": free_port()}))
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") as ca,
        grpc.aio.insecure_channel(f"127.0.0.1:{b.port}") as cb,
    ):
        ra, rb = registry_pb2_grpc.RegistryServiceStub(ca), registry_pb2_grpc.RegistryServiceStub(cb)
        wa, wb = Watcher(ra, pb.WatchRequest()), Watcher(rb, pb.WatchRequest())
        try:
            await wa.live()
            await wb.live()
            reply = await ra.Register(pb.RegisterRequest(instance=instance("x1")))
            for w in (wa, wb):
                await wait_for(lambda w=w: w.saw(pb.WATCH_EVENT_TYPE_REGISTERED, "x1"), what="REGISTERED")
            assert await ids(ra) == await ids(rb) == ["x1"]
            await rb.Deregister(pb.DeregisterRequest(lease_id=reply.lease.lease_id))
            for w in (wa, wb):
                await wait_for(lambda w=w: w.saw(pb.WATCH_EVENT_TYPE_DEREGISTERED, "x1"), what="DEREGISTERED")
            assert await ids(ra) == await ids(rb) == []
        finally:
            wa.close()
            wb.close()


async def test_unreachable_instance_turns_unhealthy_but_opted_out_one_is_not_probed(registry: Any) -> None:
    """The checker marks an instance that does not answer UNHEALTHY; metadata health=none is left UNKNOWN."""
    dead = instance("dead", "127.0.0.1:1")
    opted_out = pb.ServiceInstance(
        service_name="svc-a", instance_id="http", address="127.0.0.1:2", metadata={"health": "none"}
    )
    await registry.Register(pb.RegisterRequest(instance=opted_out))
    await registry.Register(pb.RegisterRequest(instance=dead))

    async def dead_is_unhealthy() -> bool:
        reply = await registry.Discover(pb.DiscoverRequest(service_name="svc-a"))
        return any(d.health.status == pb.HEALTH_STATUS_UNHEALTHY for d in reply.instances)

    await wait_for(dead_is_unhealthy, what="dead instance unhealthy")
    reply = await registry.Discover(pb.DiscoverRequest(service_name="svc-a"))
    health = {d.instance.instance_id: d.health for d in reply.instances}
    assert health["dead"].consecutive_failures >= 1 and health["dead"].last_error
    assert health["http"].status == pb.HEALTH_STATUS_UNKNOWN
    healthy = await registry.Discover(pb.DiscoverRequest(service_name="svc-a", healthy_only=True))
    assert not healthy.instances
