"""Latency the gateway adds, and its throughput, vs calling the upstream directly.

    .venv/bin/python bench/gateway.py [--calls 1500] [--seconds 6]

Everything on loopback, measured in the same run: a private redis-server, a stand-in
upstream (a bare ASGI app under uvicorn + httptools, its own process), and one gateway
process (``python -m services.cli serve gateway``) whose upstream has auth (bearer), a
per-service and per-client rate limit (one Redis script per call, limits set high so
nothing is refused) and a breaker — the full production path. The client is this
process: ``httpx.AsyncClient`` for the direct calls, a ``grpc.aio`` stub for the gateway.

Printed: p50/p99 of each path at concurrency 1 and 64, the gateway-added p50/p99
(gateway minus direct), and calls/s at concurrency 64. Only same-run ratios are
meaningful on a shared, noisy machine. Bounded to well under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BODY = b'{"object":"thing","id":"th_1","ok":true}'


async def upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The stand-in upstream: a fixed small JSON answer, as cheap as uvicorn allows."""
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": BODY})


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=out)


async def _measure(
    call: Callable[[], Awaitable[Any]], *, concurrency: int, calls: int, seconds: float
) -> tuple[list[float], float]:
    """Run ``calls`` calls (or until ``seconds``) with ``concurrency`` workers; latencies, calls/s."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0 and time.perf_counter() < stop_at:
            remaining -= 1
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, len(latencies) / (time.perf_counter() - started)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def client_worker(path: str, target: str, concurrency: int, calls: int, seconds: float) -> None:
    """One load generator (its own process, so gRPC and httpx never share a client loop)."""
    import grpc
    import httpx

    from wedsync.gateway.v1 import gateway_pb2, gateway_pb2_grpc

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client, grpc.aio.insecure_channel(target) as channel:
        stub = gateway_pb2_grpc.IntegrationGatewayServiceStub(channel)
        request = gateway_pb2.InvokeRequest(service_id="bench", path="/v1/things/th_1", client_id="bench")
        url = f"{target}/v1/things/th_1"

        async def direct() -> None:
            response = await client.get(url, headers={"authorization": "Bearer sk_bench"})
            assert response.status_code == 200

        async def via_gateway() -> None:
            reply = await stub.Invoke(request, timeout=10)
            assert reply.status_code == 200

        fn = direct if path == "direct" else via_gateway
        await _measure(fn, concurrency=min(concurrency, 8), calls=300, seconds=2)  # warm up
        latencies, rate = await _measure(fn, concurrency=concurrency, calls=calls, seconds=seconds)
    print(json.dumps({"latencies": latencies, "rate": rate}))


def _load(path: str, target: str, concurrency: int, calls: int, seconds: float) -> tuple[list[float], float]:
    args = [
        sys.executable,
        __file__,
        "--worker",
        path,
        "--target",
        target,
        "--concurrency",
        str(concurrency),
        "--calls",
        str(calls),
        "--seconds",
        str(seconds),
    ]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, check=True, timeout=seconds + 30)
    data = json.loads(out.stdout)
    return data["latencies"], data["rate"]


def run(calls: int, seconds: float, rate_limit: bool) -> None:
    import grpc

    from services.core.local_redis import free_port, start_redis_server
    from tests.waiting import wait_for_sync
    from wedsync.gateway.v1 import gateway_pb2, gateway_pb2_grpc

    tmp = Path(tempfile.mkdtemp(prefix="wm-bench-gw-"))
    redis = start_redis_server(tmp / "redis")
    up_port, gw_port = free_port(), free_port()
    limits = "rate_limit = { requests = 100000000, per_client_requests = 100000000, window_s = 1.0 }"
    config = tmp / "mesh.toml"
    config.write_text(
        (ROOT / "wedmesh.example.toml").read_text()
        + f"""
[gateway.upstreams.bench]
base_urls = ["http://127.0.0.1:{up_port}"]
auth = {{ type = "bearer", token_env = "BENCH_TOKEN" }}
timeout_s = 10.0
{limits if rate_limit else ""}
"""
    )
    env = {
        **os.environ,
        "WEDMESH_CONFIG": str(config),
        "REDIS_URL": redis.url,
        "WEDMESH_GATEWAY__PORT": str(gw_port),
        "WEDMESH_GATEWAY__METRICS_PORT": "0",
        "WEDMESH_LOGGING__LEVEL": "WARNING",
        "BENCH_TOKEN": "sk_bench",
    }
    procs = [
        _spawn(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(ROOT / "bench"),
                "gateway:upstream_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(up_port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--http",
                "httptools",
                "--lifespan",
                "off",
            ],
            env,
            tmp / "upstream.log",
        ),
        _spawn([sys.executable, "-m", "services.cli", "serve", "gateway"], env, tmp / "gateway.log"),
    ]
    upstream, gateway = f"http://127.0.0.1:{up_port}", f"127.0.0.1:{gw_port}"
    try:

        def gateway_ok() -> bool:
            with grpc.insecure_channel(gateway) as channel:
                stub = gateway_pb2_grpc.IntegrationGatewayServiceStub(channel)
                reply = stub.Invoke(gateway_pb2.InvokeRequest(service_id="bench", path="/"), timeout=2)
                return reply.status_code == 200

        wait_for_sync(gateway_ok, timeout=30, what="gateway and upstream up")
        rows = []
        for concurrency in (1, 64):
            n = calls if concurrency == 1 else calls * 3
            d_lat, d_rate = _load("direct", upstream, concurrency, n, seconds)
            g_lat, g_rate = _load("gateway", gateway, concurrency, n, seconds)
            rows.append((concurrency, d_lat, d_rate, g_lat, g_rate))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis.stop()

    print(f"rate limit {'on (one Redis script per call)' if rate_limit else 'off'}")
    print(f"{'conc':>4} {'path':>8} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>9}")
    for concurrency, d_lat, d_rate, g_lat, g_rate in rows:
        for name, lat, rate in (("direct", d_lat, d_rate), ("gateway", g_lat, g_rate)):
            p50, p99 = _pct(lat, 0.5), _pct(lat, 0.99)
            print(f"{concurrency:>4} {name:>8} {len(lat):>6} {p50:>8.3f} {p99:>8.3f} {rate:>9.0f}")
        added50 = _pct(g_lat, 0.5) - _pct(d_lat, 0.5)
        added99 = _pct(g_lat, 0.99) - _pct(d_lat, 0.99)
        print(
            f"{concurrency:>4}    added p50 {added50:.3f} ms, p99 {added99:.3f} ms; "
            f"gateway throughput {g_rate / d_rate:.0%} of direct"
        )
    c1, c64 = rows
    latency_ok = _pct(c1[3], 0.5) - _pct(c1[1], 0.5) <= 1.0
    print(
        f"targets: added p50 at c=1 <= 1 ms: {'PASS' if latency_ok else 'MISS'}; "
        f"throughput at c=64 >= 50% of direct: {'PASS' if c64[4] >= 0.5 * c64[2] else 'MISS'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1500, help="calls per path at concurrency 1 (x3 at 64)")
    parser.add_argument("--seconds", type=float, default=5.0, help="cap per measurement")
    parser.add_argument("--no-rate-limit", action="store_true", help="configure the upstream without limits")
    parser.add_argument("--worker", choices=["direct", "gateway"], help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(client_worker(args.worker, args.target, args.concurrency, args.calls, args.seconds))
    else:
        run(args.calls, args.seconds, rate_limit=not args.no_rate_limit)


if __name__ == "__main__":
    main()
