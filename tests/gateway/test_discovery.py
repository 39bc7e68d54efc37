"""Upstream instances resolved through the registry (Registry.Discover)."""

from __future__ import annotations

import grpc
import pytest

from services.core.local_redis import free_port
from services.gateway.discovery import base_urls
from tests.gateway.conftest import invoke
from tests.waiting import wait_for
from wedsync.gateway.v1 import gateway_pb2
from wedsync.registry.v1 import registry_pb2, registry_pb2_grpc


def registered(name: str, instance_id: str, url: str) -> registry_pb2.RegisterRequest:
    """An HTTP upstream's registration: its URL in metadata, no gRPC health (its gRPC address is unused)."""
    return registry_pb2.RegisterRequest(
        instance=registry_pb2.ServiceInstance(
            service_name=name,
            instance_id=instance_id,
            address=f"127.0.0.1:{free_port()}",
            metadata={"base_url": url, "health": "none"},
        )
    )


async def test_instances_follow_the_registry(make_upstream, gateway, start_service, mesh_config) -> None:
    """Instances registered under registry_service are called; deregistered ones are dropped."""
    registry = await start_service("registry")
    a = await make_upstream()
    b = await make_upstream()
    table = {"registry_service": "supplier-http", "registry_refresh_s": 0.1, "retry": {"backoff_s": 0.01}}
    stub = await gateway({"sup": table})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("sup"), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "registry" in err.value.details()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{registry.port}") as channel:
        reg = registry_pb2_grpc.RegistryServiceStub(channel)
        await reg.Register(registered("supplier-http", "a", a.url), timeout=10)
        await reg.Register(registered("supplier-http", "b", b.url), timeout=10)

        async def both_listed() -> bool:
            reply = await stub.ListServices(gateway_pb2.ListServicesRequest(), timeout=5)
            return sorted(reply.services[0].instances) == sorted([a.url, b.url])

        await wait_for(both_listed, timeout=20, what="both instances discovered")
        replies = [await stub.Invoke(invoke("sup"), timeout=10) for _ in range(10)]
        assert all(r.status_code == 200 for r in replies)
        await reg.Deregister(registry_pb2.DeregisterRequest(service_name="supplier-http", instance_id="a"))

        async def only_b() -> bool:
            reply = await stub.ListServices(gateway_pb2.ListServicesRequest(), timeout=5)
            return list(reply.services[0].instances) == [b.url]

        await wait_for(only_b, timeout=20, what="a dropped")
        for _ in range(5):
            assert (await stub.Invoke(invoke("sup"), timeout=10)).instance == b.url


def test_base_urls_from_discover_answer() -> None:
    """base_url metadata wins, else http://address; gRPC-checked instances marked UNHEALTHY are skipped."""

    def found(iid: str, status: int, **meta: str) -> registry_pb2.DiscoveredInstance:
        return registry_pb2.DiscoveredInstance(
            instance=registry_pb2.ServiceInstance(
                service_name="s", instance_id=iid, address=f"10.0.0.{iid}:8080", metadata=meta
            ),
            health=registry_pb2.InstanceHealth(status=status),
        )

    healthy, unhealthy = registry_pb2.HEALTH_STATUS_HEALTHY, registry_pb2.HEALTH_STATUS_UNHEALTHY
    reply = registry_pb2.DiscoverResponse(
        instances=[
            found("1", healthy, base_url="https://sup.example/api/"),
            found("2", healthy),
            found("3", unhealthy),
            found("4", unhealthy, health="none", base_url="http://10.0.0.4:9000"),
            found("5", healthy, base_url="ftp://nope"),
        ]
    )
    assert base_urls(reply) == ["http://10.0.0.2:8080", "http://10.0.0.4:9000", "https://sup.example/api"]
