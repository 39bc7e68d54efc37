"""With auth on, Register is limited to the caller's own service; deregistering others needs admin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from pydantic import SecretStr

from services.core.auth import Authenticator
from services.core.channels import open_channel
from services.core.config import MeshConfig, with_overrides
from wedsync.registry.v1 import registry_pb2 as pb
from wedsync.registry.v1 import registry_pb2_grpc

SECRET = "registry-auth-test-secret-0123456789"


def instance(service: str) -> pb.ServiceInstance:
    return pb.ServiceInstance(service_name=service, instance_id=f"{service}-1", address="127.0.0.1:1")


@pytest.fixture
async def registry_port(
    start_service: Callable[..., Awaitable[Any]], fast_config: MeshConfig, monkeypatch: pytest.MonkeyPatch
) -> int:
    monkeypatch.setenv("WEDMESH_AUTH_SECRETS", SECRET)
    host = await start_service("registry", with_overrides(fast_config, {"auth.enabled": True}))
    return int(host.port)


async def register(port: int, token: str, service: str) -> pb.RegisterResponse:
    async with open_channel(f"127.0.0.1:{port}", token=SecretStr(token)) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        reply: pb.RegisterResponse = await stub.Register(
            pb.RegisterRequest(instance=instance(service)), timeout=5
        )
        return reply


async def test_register_only_the_callers_own_service(registry_port: int) -> None:
    """notification-service may register itself, not billing-service (PERMISSION_DENIED naming both)."""
    token = Authenticator([SECRET.encode()]).issue("notification-service")
    assert (await register(registry_port, token, "notification-service")).lease.lease_id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await register(registry_port, token, "billing-service")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "notification-service" in (err.value.details() or "") and "billing-service" in (
        err.value.details() or ""
    )


async def test_deregistering_another_service_needs_admin(registry_port: int) -> None:
    """Removing another service's instance is PERMISSION_DENIED without 'admin' and allowed with it."""
    auth = Authenticator([SECRET.encode()])
    await register(registry_port, auth.issue("billing-service"), "billing-service")
    request = pb.DeregisterRequest(service_name="billing-service", instance_id="billing-service-1")
    async with open_channel(
        f"127.0.0.1:{registry_port}", token=SecretStr(auth.issue("notification-service"))
    ) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry_pb2_grpc.RegistryServiceStub(ch).Deregister(request, timeout=5)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    async with open_channel(
        f"127.0.0.1:{registry_port}", token=SecretStr(auth.issue("ops", ["admin"]))
    ) as ch:
        reply = await registry_pb2_grpc.RegistryServiceStub(ch).Deregister(request, timeout=5)
    assert reply.found


async def test_without_a_token_register_is_unauthenticated(registry_port: int) -> None:
    """Auth on and no token: UNAUTHENTICATED saying a bearer token is needed."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{registry_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await registry_pb2_grpc.RegistryServiceStub(channel).Register(
                pb.RegisterRequest(instance=instance("x")), timeout=5
            )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "bearer token" in (err.value.details() or "")
