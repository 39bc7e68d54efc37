"""The shared rate limiter (services.core.ratelimit) and the gateway's use of it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.core.auth import Authenticator
from services.core.config import with_overrides
from services.core.keys import gateway_key
from services.core.local_redis import free_port
from services.core.ratelimit import Limit, RateLimiter
from tests.gateway.conftest import invoke, upstream_table
from tests.redis_mode import service_env
from tests.waiting import wait_for
from wedsync.gateway.v1 import gateway_pb2, gateway_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]


async def test_limiter_admits_exactly_the_limit_under_concurrency(redis_client) -> None:
    """200 concurrent acquires against a limit of 37 per minute admit exactly 37."""
    limiter = RateLimiter(redis_client, window_s=60)
    key = gateway_key("t", "rl", "service")
    decisions = await asyncio.gather(*(limiter.acquire([Limit(key, 37)]) for _ in range(200)))
    assert sum(d.allowed for d in decisions) == 37
    denied = [d for d in decisions if not d.allowed]
    assert all(0 < d.retry_after <= 60 for d in denied)


async def test_limiter_window_slides(redis_client) -> None:
    """Once the window has passed, calls are admitted again, and not before retry_after."""
    limiter = RateLimiter(redis_client, window_s=0.5)
    key = gateway_key("t", "rl", "slide")
    assert (await limiter.acquire([Limit(key, 2)])).allowed
    assert (await limiter.acquire([Limit(key, 2)])).allowed
    denied = await limiter.acquire([Limit(key, 2)])
    assert not denied.allowed and 0 < denied.retry_after <= 0.5
    await asyncio.sleep(denied.retry_after + 0.05)
    assert (await limiter.acquire([Limit(key, 2)])).allowed


async def test_all_limits_must_have_room_and_denied_calls_are_not_recorded(redis_client) -> None:
    """A call denied by the per-client limit does not use up the per-service budget."""
    limiter = RateLimiter(redis_client, window_s=60)
    service = gateway_key("t", "rl", "service")
    a, b = gateway_key("t", "rl", "client", "a"), gateway_key("t", "rl", "client", "b")
    results_a = [await limiter.acquire([Limit(service, 5), Limit(a, 2)]) for _ in range(4)]
    assert [r.allowed for r in results_a] == [True, True, False, False]
    results_b = [await limiter.acquire([Limit(service, 5), Limit(b, 10)]) for _ in range(4)]
    assert [r.allowed for r in results_b] == [True, True, True, False]
    assert await redis_client.zcard(service) == 5


async def test_invoke_rate_limited_carries_retry_info(make_upstream, gateway) -> None:
    """Over the per-client limit: RESOURCE_EXHAUSTED + RetryInfo + retry-after-ms; other clients pass."""
    up = await make_upstream()
    stub = await gateway(
        {
            "svc": upstream_table(
                [up.url], rate_limit={"requests": 10, "per_client_requests": 2, "window_s": 60}
            )
        }
    )
    for _ in range(2):
        assert (await stub.Invoke(invoke("svc", client_id="a"), timeout=10)).status_code == 200
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc", client_id="a"), timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(err.value)
    assert status is not None
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert 0 < info.retry_delay.ToTimedelta().total_seconds() <= 60
    trailers = dict(err.value.trailing_metadata())
    assert 0 < int(trailers["retry-after-ms"]) <= 60_000
    assert (await stub.Invoke(invoke("svc", client_id="b"), timeout=10)).status_code == 200
    assert len(up.requests) == 3


def _gateway_process(config_file: Path, redis_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WEDMESH_CONFIG": str(config_file),
        "REDIS_URL": redis_url,
        **service_env(),
        "WEDMESH_GATEWAY__PORT": str(port),
        "WEDMESH_GATEWAY__METRICS_PORT": "0",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", "gateway"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )


@pytest.mark.slow
async def test_two_gateway_processes_share_one_exact_limit(make_upstream, redis_url, tmp_path) -> None:
    """Two gateway processes hammering one limit of L per window admit exactly L between them."""
    limit = 25
    up = await make_upstream()
    config = tmp_path / "gw.toml"
    config.write_text(
        (ROOT / "wedmesh.example.toml").read_text()
        + f"""
[gateway.upstreams.svc]
base_urls = ["{up.url}"]
rate_limit = {{ requests = {limit}, window_s = 60.0 }}
"""
    )
    ports = [free_port(), free_port()]
    procs = [_gateway_process(config, redis_url, p, tmp_path / f"gw{p}.log") for p in ports]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{p}") for p in ports]
    try:
        stubs = [gateway_pb2_grpc.IntegrationGatewayServiceStub(c) for c in channels]

        async def ready(stub: gateway_pb2_grpc.IntegrationGatewayServiceStub) -> bool:
            await stub.ListServices(gateway_pb2.ListServicesRequest(), timeout=1)
            return True

        for stub in stubs:
            await wait_for(lambda stub=stub: ready(stub), timeout=30, what="gateway process up")

        async def one(stub: gateway_pb2_grpc.IntegrationGatewayServiceStub) -> bool:
            try:
                await stub.Invoke(invoke("svc", client_id="hammer"), timeout=20)
                return True
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc.details()
                return False

        results = await asyncio.gather(*(one(stubs[i % 2]) for i in range(160)))
        assert sum(results) == limit
        assert len(up.requests) == limit
    finally:
        for channel in channels:
            await channel.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)


async def test_calls_without_client_id_share_the_anonymous_budget(
    make_upstream, gateway, redis_client
) -> None:
    """Calls with no client_id (and no mTLS identity) are limited together as "anonymous"."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url], rate_limit={"per_client_requests": 1})})
    assert (await stub.Invoke(invoke("svc"), timeout=10)).status_code == 200
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc"), timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await redis_client.zcard(gateway_key("svc", "rl", "client", "anonymous")) == 1


async def test_unusable_client_id_is_invalid_argument(make_upstream, gateway) -> None:
    """A client_id that cannot name a rate-limit key is refused with INVALID_ARGUMENT, not INTERNAL."""
    up = await make_upstream()
    stub = await gateway({"svc": upstream_table([up.url], rate_limit={"per_client_requests": 5})})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Invoke(invoke("svc", client_id="bad {id}"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "client_id" in err.value.details()
    assert up.requests == []


async def test_authenticated_caller_is_the_default_client(
    make_upstream, start_service, gateway_config, redis_client, monkeypatch
) -> None:
    """With mesh auth on, a call without client_id is limited as the token's service."""
    secret = "gateway-test-secret-0123456789abcdef"
    monkeypatch.setenv("WEDMESH_AUTH_SECRETS", secret)
    up = await make_upstream()
    config = with_overrides(
        gateway_config({"svc": upstream_table([up.url], rate_limit={"per_client_requests": 1})}),
        {"auth.enabled": True},
    )
    host = await start_service("gateway", config)
    token = Authenticator([secret.encode()]).issue("notification-service")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        stub = gateway_pb2_grpc.IntegrationGatewayServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),)
        assert (await stub.Invoke(invoke("svc"), metadata=metadata, timeout=10)).status_code == 200
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Invoke(invoke("svc"), metadata=metadata, timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    key = gateway_key("svc", "rl", "client", "notification-service")
    assert await redis_client.zcard(key) == 1
    assert up.requests[0].headers.get("authorization") is None  # the mesh token never goes upstream
