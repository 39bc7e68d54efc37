"""The gRPC bootstrap: health names, reflection, errors, deadlines, graceful shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from services.core import deadlines, errors
from services.core.config import GrpcServerConfig, MeshConfig, RedisConfig, ShutdownConfig
from services.core.local_redis import free_port
from services.core.redis_client import connect
from services.core.server import LIVENESS, ServiceDef, ServiceHost
from tests.redis_mode import start_server
from tests.waiting import wait_for

TEST_SERVICE = "wedmesh.test.Probe"
Handler = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


def raw_service(methods: dict[str, Handler]) -> ServiceDef:
    """A bytes-in/bytes-out service, so the bootstrap is tested without extra protos."""
    handlers = {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in methods.items()}
    generic = grpc.method_handlers_generic_handler(TEST_SERVICE, handlers)
    return ServiceDef(TEST_SERVICE, lambda server: server.add_generic_rpc_handlers((generic,)))


async def start_host(methods: dict[str, Handler], **shutdown: float) -> ServiceHost:
    host = ServiceHost(
        [raw_service(methods)],
        GrpcServerConfig(host="127.0.0.1", port=free_port()),
        ShutdownConfig(**{"drain_delay_s": 0.3, "grace_s": 5.0, **shutdown}),
    )
    await host.start()
    return host


def call(channel: grpc.aio.Channel, method: str) -> Any:
    return channel.unary_unary(f"/{TEST_SERVICE}/{method}")


async def check(channel: grpc.aio.Channel, service: str = "") -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=2
    )
    return int(reply.status)


@pytest.mark.parametrize(
    ("process", "names"),
    [
        ("registry", ["wedsync.registry.v1.RegistryService", "wedsync.registry.v1.RouterService"]),
        ("gateway", ["wedsync.gateway.v1.IntegrationGatewayService"]),
        ("webhooks", ["wedsync.webhooks.v1.WebhookIntakeService"]),
    ],
)
async def test_each_service_answers_health_for_empty_and_full_names(
    start_service: Callable[..., Awaitable[ServiceHost]], process: str, names: list[str]
) -> None:
    """Health answers SERVING for "" and every full service name; reflection lists them."""
    host = await start_service(process)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        for name in ["", *names]:
            assert await check(channel, name) == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await check(channel, "wedsync.nope.v1.NopeService")
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        listed = {s.name async for r in stream for s in r.list_services_response.service}
    assert set(names) | {"grpc.health.v1.Health"} <= listed


async def test_rpcs_not_yet_built_answer_unimplemented_with_a_clear_message() -> None:
    """An RPC whose issue has not landed says so, naming the RPC and the issue."""
    from services.core.unimplemented import unimplemented_servicer
    from wedsync.gateway.v1 import gateway_pb2, gateway_pb2_grpc

    name = "wedsync.gateway.v1.IntegrationGatewayService"
    servicer = unimplemented_servicer(
        gateway_pb2_grpc.IntegrationGatewayServiceServicer, name, "the gateway issue (#3)"
    )
    host = ServiceHost(
        [
            ServiceDef(
                name, lambda s: gateway_pb2_grpc.add_IntegrationGatewayServiceServicer_to_server(servicer, s)
            )
        ],
        GrpcServerConfig(host="127.0.0.1", port=free_port()),
        ShutdownConfig(drain_delay_s=0),
    )
    await host.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            stub = gateway_pb2_grpc.IntegrationGatewayServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ListServices(gateway_pb2.ListServicesRequest(), timeout=2)
    finally:
        await host.stop()
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "ListServices is not implemented yet" in (err.value.details() or "")
    assert "#3" in (err.value.details() or "")


async def test_mesh_errors_map_to_their_status_with_retry_info() -> None:
    """A MeshError becomes its code and message; retry_after becomes google.rpc.RetryInfo."""

    async def limited(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise errors.ResourceExhausted("rate limit of 100/min for stripe_payments", retry_after=2.5)

    async def missing(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise errors.NotFound("no service 'x'")

    host = await start_host({"Limited": limited, "Missing": missing})
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(channel, "Limited")(b"", timeout=2)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert err.value.details() == "rate limit of 100/min for stripe_payments"
            status = rpc_status.from_call(err.value)
            assert status is not None
            info = error_details_pb2.RetryInfo()
            assert status.details[0].Unpack(info)
            assert info.retry_delay.ToTimedelta().total_seconds() == 2.5
            with pytest.raises(grpc.aio.AioRpcError) as err2:
                await call(channel, "Missing")(b"", timeout=2)
            assert err2.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await host.stop()


async def test_unexpected_exception_is_internal_with_request_id_and_no_traceback() -> None:
    """A bug answers INTERNAL naming the request id; the caller never sees a stack trace."""

    async def broken(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise ZeroDivisionError("secret internals")

    host = await start_host({"Broken": broken})
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(channel, "Broken")(b"", timeout=2, metadata=(("x-request-id", "req-42"),))
    finally:
        await host.stop()
    assert err.value.code() == grpc.StatusCode.INTERNAL
    details = err.value.details() or ""
    assert "req-42" in details
    assert "Traceback" not in details and "secret internals" not in details


async def test_callers_deadline_is_visible_to_outgoing_work() -> None:
    """deadlines.time_left() inside a handler reflects the caller's timeout."""
    seen: list[float | None] = []

    async def remember(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen.append(deadlines.time_left())
        return b"ok"

    host = await start_host({"Remember": remember})
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            assert await call(channel, "Remember")(b"", timeout=30) == b"ok"
    finally:
        await host.stop()
    assert seen[0] is not None and 20.0 < seen[0] <= 30.1  # clocks differ by microseconds


async def test_shutdown_goes_not_serving_then_drains_in_flight_then_closes() -> None:
    """SIGTERM path: Watch sees SERVING → NOT_SERVING, in-flight finishes, then the port closes."""
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        entered.set()
        await release.wait()
        return b"finished"

    host = await start_host({"Slow": slow}, drain_delay_s=0.3, grace_s=5.0)
    address = f"127.0.0.1:{host.port}"
    async with grpc.aio.insecure_channel(address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        statuses = [(await watch.read()).status]
        in_flight = asyncio.ensure_future(call(channel, "Slow")(b"", timeout=10))
        await asyncio.wait_for(entered.wait(), 5)
        stopping = asyncio.create_task(host.stop())
        statuses.append((await asyncio.wait_for(watch.read(), 5)).status)
        assert statuses == [
            health_pb2.HealthCheckResponse.SERVING,
            health_pb2.HealthCheckResponse.NOT_SERVING,
        ]
        assert not stopping.done()  # still draining: the slow call is in flight
        release.set()
        assert await in_flight == b"finished"
        await asyncio.wait_for(stopping, 10)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await watch.read()
        assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    async with grpc.aio.insecure_channel(address) as fresh:
        with pytest.raises(grpc.aio.AioRpcError) as closed:
            await check(fresh)
    assert closed.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_taken_port_fails_loudly() -> None:
    """A second server on the same port is an error, not a silent SO_REUSEPORT share."""
    first = await start_host({})
    try:
        clash = ServiceHost(
            [raw_service({})],
            GrpcServerConfig(host="127.0.0.1", port=first.port),
            ShutdownConfig(),
        )
        with pytest.raises(Exception, match=str(first.port)):
            await clash.start()
    finally:
        await first.stop()


async def test_readiness_follows_redis(tmp_path: Path) -> None:
    """NOT_SERVING while Redis is unreachable (liveness stays SERVING), SERVING once it answers."""
    port = free_port()
    client = connect(RedisConfig(url=f"redis://127.0.0.1:{port}/0", socket_timeout_s=0.5))
    host = ServiceHost(
        [raw_service({})],
        GrpcServerConfig(host="127.0.0.1", port=free_port()),
        ShutdownConfig(drain_delay_s=0),
        redis=client,
    )
    await host.start()
    redis_server = None
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            assert await check(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert await check(channel, LIVENESS) == health_pb2.HealthCheckResponse.SERVING
            redis_server = start_server(tmp_path, port=port, appendonly=False)
            await wait_for(
                lambda: _is(check(channel, TEST_SERVICE), health_pb2.HealthCheckResponse.SERVING),
                what="SERVING after Redis starts",
            )
            redis_server.kill()
            await wait_for(
                lambda: _is(check(channel), health_pb2.HealthCheckResponse.NOT_SERVING),
                what="NOT_SERVING after Redis dies",
            )
    finally:
        await host.stop()
        await client.aclose()
        if redis_server:
            redis_server.stop()


async def _is(status: Awaitable[int], expected: int) -> bool:
    return await status == expected


def test_mesh_config_fixture_uses_loopback_only(mesh_config: MeshConfig) -> None:
    """Tests bind loopback and never the shared Redis on 6379."""
    assert mesh_config.gateway.host == "127.0.0.1"
    assert mesh_config.redis.url and ":6379/" not in mesh_config.redis.url
