"""Breakers per instance, failover, load balancing and the health the gateway reports."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from services.core import probe
from services.core.config import with_overrides
from services.core.local_redis import RedisServer
from tests.gateway.conftest import invoke, upstream_table
from tests.redis_mode import start_server
from tests.waiting import wait_for
from wedsync.gateway.v1 import gateway_pb2, gateway_pb2_grpc


async def get_health(stub, service_id: str = "svc") -> gateway_pb2.ServiceHealth:
    reply = await stub.GetServiceHealth(gateway_pb2.GetServiceHealthRequest(service_id=service_id), timeout=5)
    return reply.health


def probe_code(stub, service_id: str) -> int:
    return probe.probe(f"127.0.0.1:{stub.host.port}", service_id, connect_timeout=2, rpc_timeout=2).code


async def test_breaker_opens_fails_fast_and_recovers(make_upstream, gateway) -> None:
    """5xx trips the breaker → UNAVAILABLE without calling the upstream → recovers after reset + one trial."""
    up = await make_upstream(fail_first=1000, fail_status=500)
    stub = await gateway(
        {"svc": upstream_table([up.url], breaker={"failure_threshold": 3, "reset_timeout_s": 1.0})}
    )
    for _ in range(3):
        assert (await stub.Invoke(invoke("svc"), timeout=10)).status_code == 500
    health = await get_health(stub)
    assert health.status == gateway_pb2.SERVICE_STATUS_DOWN
    assert health.breaker_state == gateway_pb2.BREAKER_STATE_OPEN
    assert health.instances[0].breaker_state == gateway_pb2.BREAKER_STATE_OPEN
    assert health.instances[0].HasField("ejected_until")
    assert health.consecutive_failures == 3
    await wait_for(lambda: _probe_is(stub, "svc", probe.NOT_SERVING), what="svc NOT_SERVING (wedmesh probe)")
    seen = len(up.requests)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc"), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "svc" in err.value.details() and "breaker" in err.value.details()
    assert len(up.requests) == seen  # failed fast
    up.fail_first = 0  # the upstream recovers

    async def recovered() -> bool:
        try:
            return (await stub.Invoke(invoke("svc"), timeout=10)).status_code == 200
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
            return False

    await wait_for(recovered, timeout=10, interval=0.05, what="calls succeed again")
    assert len(up.requests) == seen + 1  # exactly one trial call reopened the circuit
    health = await get_health(stub)
    assert health.breaker_state == gateway_pb2.BREAKER_STATE_CLOSED
    assert health.status in (gateway_pb2.SERVICE_STATUS_HEALTHY, gateway_pb2.SERVICE_STATUS_DEGRADED)
    await wait_for(lambda: _probe_is(stub, "svc", probe.OK), what="svc SERVING again")


async def _probe_is(stub, service_id: str, code: int) -> bool:
    return await asyncio.to_thread(probe_code, stub, service_id) == code


async def test_failover_when_an_instance_is_killed(make_upstream, gateway) -> None:
    """With one of two instances killed, every call still succeeds, served by the survivor."""
    a = await make_upstream()
    b = await make_upstream()
    stub = await gateway({"svc": upstream_table([a.url, b.url], breaker={"failure_threshold": 2})})
    replies = await asyncio.gather(*(stub.Invoke(invoke("svc"), timeout=10) for _ in range(20)))
    assert {r.instance for r in replies} == {a.url, b.url}
    await a.stop()
    for _ in range(20):
        reply = await stub.Invoke(invoke("svc", method="POST", body=b"{}"), timeout=10)
        assert reply.status_code == 200
        assert reply.instance == b.url
    health = await get_health(stub)
    by_url = {i.instance: i for i in health.instances}
    assert by_url[a.url].breaker_state == gateway_pb2.BREAKER_STATE_OPEN
    assert by_url[a.url].status == gateway_pb2.SERVICE_STATUS_DOWN
    assert by_url[b.url].breaker_state == gateway_pb2.BREAKER_STATE_CLOSED
    assert health.status == gateway_pb2.SERVICE_STATUS_DEGRADED


async def test_all_instances_down_is_unavailable(make_upstream, gateway) -> None:
    """When every instance refuses connections the call is UNAVAILABLE, naming the service."""
    a = await make_upstream()
    stub = await gateway({"svc": upstream_table([a.url])})
    await a.stop()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc"), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "svc" in err.value.details()


async def test_least_outstanding_prefers_the_idle_instance(make_upstream, gateway) -> None:
    """While one instance holds a call in flight, the next calls go to the idle one."""
    release = asyncio.Event()
    slow = await make_upstream(gate=release)
    fast = await make_upstream()
    stub = await gateway({"svc": upstream_table([slow.url, fast.url])})
    pending = []
    while not slow.requests:  # idle instances tie: a call lands on either, at random
        call = asyncio.ensure_future(stub.Invoke(invoke("svc"), timeout=30))
        pending.append(call)
        await wait_for(lambda call=call: slow.requests or call.done(), what="a call placed")
        assert len(pending) < 30
    fast.requests.clear()
    health = await get_health(stub)
    assert {i.instance: i.outstanding_requests for i in health.instances}[slow.url] == 1
    for _ in range(5):
        assert (await stub.Invoke(invoke("svc"), timeout=10)).instance == fast.url
    release.set()
    await asyncio.gather(*pending)


async def test_list_services_and_health_detail(make_upstream, gateway) -> None:
    """ListServices lists upstreams sorted with limits; health has rate, counts and percentiles."""
    up = await make_upstream()
    stub = await gateway(
        {
            "b_svc": upstream_table([up.url], kind="payment", normalizer="stripe", display_name="B"),
            "a_svc": upstream_table([up.url], rate_limit={"requests": 120, "window_s": 60}),
        }
    )
    for _ in range(4):
        await stub.Invoke(invoke("a_svc"), timeout=10)
    services = (await stub.ListServices(gateway_pb2.ListServicesRequest(), timeout=5)).services
    assert [s.service_id for s in services] == ["a_svc", "b_svc"]
    assert services[0].rate_limit.requests_per_second == 2.0 and services[0].rate_limit.burst == 120
    assert not services[1].HasField("rate_limit")
    assert services[1].kind == "payment" and services[1].normalizer == "stripe"
    assert services[1].display_name == "B" and list(services[1].instances) == [up.url]
    health = await get_health(stub, "a_svc")
    assert health.request_count == 4 and health.error_rate == 0.0
    assert health.latency_p50.ToTimedelta().total_seconds() > 0
    assert health.latency_p99.ToTimedelta() >= health.latency_p50.ToTimedelta()
    assert health.HasField("last_success") and health.HasField("last_check")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetServiceHealth(gateway_pb2.GetServiceHealthRequest(service_id="zzz"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_error_rate_makes_service_degraded(make_upstream, gateway) -> None:
    """A rolling error rate above the threshold (breaker still closed) reports DEGRADED."""
    up = await make_upstream()
    stub = await gateway(
        {"svc": upstream_table([up.url], breaker={"failure_threshold": 100}, retry={"attempts": 1})}
    )
    for _ in range(5):
        await stub.Invoke(invoke("svc"), timeout=10)
    up.fail_first, up.fail_status = 3, 500
    for _ in range(3):
        await stub.Invoke(invoke("svc"), timeout=10)
    health = await get_health(stub)
    assert health.breaker_state == gateway_pb2.BREAKER_STATE_CLOSED
    assert health.error_rate == pytest.approx(3 / 8)
    assert health.status == gateway_pb2.SERVICE_STATUS_DEGRADED
    assert "HTTP 500" in health.last_error


@pytest.mark.slow
async def test_cli_lists_services_and_health(make_upstream, gateway) -> None:
    """`wedmesh gateway services` and `wedmesh gateway health <id>` print the upstreams as JSON."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url])})
    address = f"127.0.0.1:{stub.host.port}"

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.cli", "gateway", *argv, "--address", address],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=Path(__file__).resolve().parents[2],
        )

    listed = await asyncio.to_thread(cli, "services")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout.splitlines()[0])["service_id"] == "svc"
    detail = await asyncio.to_thread(cli, "health", "svc")
    assert json.loads(detail.stdout)["instances"][0]["instance"] == up.url
    missing = await asyncio.to_thread(cli, "health", "nope")
    assert missing.returncode == 2 and "NOT_FOUND" in missing.stderr


@pytest.mark.single_redis  # kills and restarts the session's one Redis
async def test_redis_down_is_unavailable_and_not_serving(make_upstream, gateway, redis_server) -> None:
    """With Redis down, Invoke is UNAVAILABLE (no limit check) and the id NOT_SERVING; both recover."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url], rate_limit={"requests": 1000})})
    await wait_for(lambda: _probe_is(stub, "svc", probe.OK), what="svc SERVING")
    redis_server.kill()
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Invoke(invoke("svc"), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "Redis" in err.value.details()
        await wait_for(lambda: _probe_is(stub, "svc", probe.NOT_SERVING), timeout=20, what="svc NOT_SERVING")
    finally:
        redis_server.restart()
    await wait_for(lambda: _probe_is(stub, "svc", probe.OK), timeout=20, what="svc SERVING again")
    assert (await stub.Invoke(invoke("svc"), timeout=10)).status_code == 200


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, stopped last (after the gateway using it)."""
    server = start_server(tmp_path / "redis", appendonly=False)
    yield server
    server.stop()


async def test_list_services_is_unavailable_while_redis_is_down(
    private_redis, make_upstream, start_service, gateway_config
) -> None:
    """ListServices is UNAVAILABLE naming Redis while it is stopped (the proto's contract), then lists."""
    up = await make_upstream()
    config = with_overrides(
        gateway_config({"svc": upstream_table([up.url])}),
        {"redis.url": private_redis.url, "redis.cluster": False},
    )
    host = await start_service("gateway", config)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        stub = gateway_pb2_grpc.IntegrationGatewayServiceStub(channel)
        listed = await stub.ListServices(gateway_pb2.ListServicesRequest(), timeout=5)
        assert [s.service_id for s in listed.services] == ["svc"]
        private_redis.stop()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListServices(gateway_pb2.ListServicesRequest(), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "Redis" in err.value.details()
        private_redis.restart()

        async def listed_again() -> bool:
            reply = await stub.ListServices(gateway_pb2.ListServicesRequest(), timeout=5)
            return [s.service_id for s in reply.services] == ["svc"]

        await wait_for(listed_again, timeout=20, what="ListServices answering again")
