"""Network faults between the gateway and an upstream: the breaker opens, fails fast, and
calls succeed again within reset timeout + one trial once the network heals — no restart."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from tests.faultproxy import FaultProxy
from tests.gateway.conftest import gateway, gateway_config, invoke, make_upstream, upstream_table
from tests.gateway.upstreams import FakeUpstream
from tests.waiting import wait_for
from wedsync.gateway.v1 import gateway_pb2_grpc

__all__ = ["gateway", "gateway_config", "make_upstream"]  # fixtures used from the gateway suite

RESET_S = 1.0
TIMEOUT_S = 0.3
Stub = gateway_pb2_grpc.IntegrationGatewayServiceStub


async def call(stub: Stub) -> grpc.StatusCode:
    try:
        reply = await stub.Invoke(invoke("svc"), timeout=5)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK if reply.status_code == 200 else grpc.StatusCode.UNKNOWN


@pytest.mark.parametrize("fault", ["blackhole", "refuse", "latency"])
async def test_breaker_opens_on_a_network_fault_and_recovers_after_heal(
    make_upstream: Callable[..., Awaitable[FakeUpstream]],
    gateway: Callable[[dict[str, Any]], Awaitable[Stub]],
    fault: str,
    record_property: pytest.RecordProperty,
) -> None:
    """Partition, refusal or latency past the timeout: UNAVAILABLE fast while open, then OK again."""
    upstream = await make_upstream()
    proxy = FaultProxy("127.0.0.1", upstream.port)
    await proxy.start()
    try:
        table = upstream_table(
            [f"http://127.0.0.1:{proxy.port}"],
            timeout_s=TIMEOUT_S,
            retry={"attempts": 1, "backoff_s": 0.01, "max_backoff_s": 0.01},
            breaker={"failure_threshold": 3, "reset_timeout_s": RESET_S, "half_open_max_calls": 1},
        )
        stub = await gateway({"svc": table})
        assert await call(stub) == grpc.StatusCode.OK
        if fault == "blackhole":
            proxy.blackhole()
        elif fault == "refuse":
            proxy.refuse()
            await proxy.reset_all()
        else:
            proxy.add_latency(TIMEOUT_S * 3)
        failures = [await call(stub) for _ in range(3)]
        assert grpc.StatusCode.OK not in failures
        started = time.monotonic()
        assert await call(stub) == grpc.StatusCode.UNAVAILABLE  # open: fails fast, no upstream wait
        assert time.monotonic() - started < TIMEOUT_S
        proxy.heal()
        await proxy.reset_all()
        healed = time.monotonic()
        await wait_for(lambda: _ok(call(stub)), timeout=30, interval=0.05, what="calls succeed after heal")
        recovery = time.monotonic() - healed
    finally:
        await proxy.stop()
    record_property("recovery_s", round(recovery, 3))
    print(f"{fault}: recovered {recovery:.2f} s after heal (reset timeout {RESET_S} s)")
    assert recovery <= RESET_S + TIMEOUT_S + 1.0  # reset timeout + one trial call, plus scheduling slack


async def _ok(code: Awaitable[grpc.StatusCode]) -> bool:
    return await code == grpc.StatusCode.OK
