"""Latency the gateway adds, and its throughput, vs calling the upstream directly.

    .venv/bin/python bench/gateway.py [--calls 1500] [--seconds 6]

Everything on loopback, measured in the same run: a private redis-server, a stand-in
upstream (a bare ASGI app under uvicorn + httptools, its own process), and one gateway
process (``python -m services.cli serve gateway``) whose upstream has auth (bearer), a
per-service and per-client rate limit (one Redis script per call, limits set high so
nothing is refused) and a breaker — the full production path. The client is this
process: ``httpx.AsyncClient`` for the direct calls, a ``grpc.aio`` stub for the gateway.

Printed: p50/p99 of each path at concurrency 1 and 64, the gateway-added p50/p99
(gateway minus direct), calls/s, and the serving process's CPU per call (from /proc,
so it holds up better than latency while other work loads the machine). Three more
lines at concurrency 1, measured in the same run, show the floor: ``echo`` is a bare
``grpc.aio`` server (uvloop, one generic bytes-in/bytes-out handler, no interceptor)
answering the same request; ``floor`` is that server running the rate-limit script
once by EVALSHA per call — what any gateway on this stack pays before its upstream
call; ``same`` calls the upstream directly through the connection pool the gateway
uses (``services.gateway.netbackend.pooled_transport``, no ``httpx.AsyncClient`` around
it). So "gateway minus floor" is the gateway's policy plus its upstream exchange; the
added latency is printed twice: over direct default httpx (issue #3's baseline) and over
the gateway's own pool used directly (the strictest baseline). Only same-run ratios are
meaningful on a shared, noisy machine. Bounded to about a minute and a half.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BODY = b'{"object":"thing","id":"th_1","ok":true}'
TIMEOUTS = {"connect": 10.0, "read": 10.0, "write": 10.0, "pool": 10.0}


async def upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The stand-in upstream: a fixed small JSON answer, as cheap as uvicorn allows."""
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": BODY})


FLOOR_METHOD = "/bench.Floor/Evalsha"
ECHO_METHOD = "/bench.Floor/Echo"


def serve_floor(port: int, redis_url: str) -> None:
    """The floor: a bare grpc.aio hop (uvloop like the gateway), optionally one EVALSHA."""
    import grpc
    import redis.asyncio as aioredis
    import uvloop

    from services.core.keys import gateway_key
    from services.core.lua import lua_source

    async def main() -> None:
        client = aioredis.Redis.from_url(redis_url)
        sha = await client.script_load(lua_source("services.core", "ratelimit"))
        keys = [gateway_key("floor", "rl", "service"), gateway_key("floor", "rl", "client", "bench")]

        async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return request

        async def evalsha(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            await client.evalsha(sha, 2, *keys, 1_000_000, os.urandom(16).hex(), 100_000_000, 100_000_000)
            return request

        handlers = {
            name: grpc.unary_unary_rpc_method_handler(fn)
            for name, fn in (("Echo", echo), ("Evalsha", evalsha))
        }
        server = grpc.aio.server()
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.Floor", handlers)])
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    uvloop.run(main())


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU of ``pid`` so far (Linux /proc), or None where unavailable."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


async def client_worker(
    path: str, target: str, concurrency: int, calls: int, seconds: float, cpu_pid: int | None
) -> None:
    """One load generator (its own process, so gRPC and httpx never share a client loop)."""
    import grpc
    import httpx

    from services.gateway.netbackend import pooled_transport
    from wedsync.gateway.v1 import gateway_pb2, gateway_pb2_grpc

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client, grpc.aio.insecure_channel(target) as channel:
        stub = gateway_pb2_grpc.IntegrationGatewayServiceStub(channel)
        request = gateway_pb2.InvokeRequest(service_id="bench", path="/v1/things/th_1", client_id="bench")
        url = f"{target}/v1/things/th_1"

        async def direct() -> None:
            response = await client.get(url, headers={"authorization": "Bearer sk_bench"})
            assert response.status_code == 200

        same_pool = pooled_transport(limits=limits, http2=True, verify=True)  # the gateway's default
        same_url = httpx.URL(url)

        async def direct_same() -> None:
            same_request = httpx.Request(
                "GET",
                same_url,
                headers={"authorization": "Bearer sk_bench"},
                extensions={"timeout": TIMEOUTS},
            )
            response = await same_pool.handle_async_request(same_request)
            await response.aread()
            assert response.status_code == 200

        async def via_gateway() -> None:
            reply = await stub.Invoke(request, timeout=10)
            assert reply.status_code == 200

        payload = request.SerializeToString()
        bare = channel.unary_unary(ECHO_METHOD if path == "echo" else FLOOR_METHOD)

        async def via_floor() -> None:
            assert await bare(payload, timeout=10) == payload

        fn = {"direct": direct, "same": direct_same, "gateway": via_gateway}.get(path, via_floor)
        await _measure(fn, concurrency=min(concurrency, 8), calls=300, seconds=2)  # warm up
        cpu_before = _cpu_seconds(cpu_pid)
        latencies, rate = await _measure(fn, concurrency=concurrency, calls=calls, seconds=seconds)
        cpu_after = _cpu_seconds(cpu_pid)
        await same_pool.aclose()
    cpu_ms = None
    if cpu_before is not None and cpu_after is not None and latencies:
        cpu_ms = (cpu_after - cpu_before) * 1000 / len(latencies)
    print(json.dumps({"latencies": latencies, "rate": rate, "cpu_ms": cpu_ms}))


@dataclass
class Load:
    """One measured run: latencies (s), calls/s, and the server's CPU ms per call if known."""

    latencies: list[float]
    rate: float
    cpu_ms: float | None


def _load(path: str, target: str, concurrency: int, calls: int, seconds: float, cpu_pid: int | None) -> Load:
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
        *(["--cpu-pid", str(cpu_pid)] if cpu_pid else []),
    ]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, check=True, timeout=seconds + 30)
    data = json.loads(out.stdout)
    return Load(data["latencies"], data["rate"], data["cpu_ms"])


def run(calls: int, seconds: float, rate_limit: bool) -> None:
    import grpc

    from services.core.local_redis import free_port, start_redis_server
    from tests.waiting import wait_for_sync
    from wedsync.gateway.v1 import gateway_pb2, gateway_pb2_grpc

    tmp = Path(tempfile.mkdtemp(prefix="wm-bench-gw-"))
    redis = start_redis_server(tmp / "redis")
    up_port, gw_port, floor_port = free_port(), free_port(), free_port()
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
        _spawn(
            [sys.executable, __file__, "--serve-floor", str(floor_port), redis.url], env, tmp / "floor.log"
        ),
    ]
    gateway_pid = procs[1].pid
    upstream, gateway = f"http://127.0.0.1:{up_port}", f"127.0.0.1:{gw_port}"
    floor = f"127.0.0.1:{floor_port}"
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
            direct = _load("direct", upstream, concurrency, n, seconds, procs[0].pid)
            via = _load("gateway", gateway, concurrency, n, seconds, gateway_pid)
            rows.append((concurrency, direct, via))
        floors = [(name, _load(name, floor, 1, calls, seconds, procs[2].pid)) for name in ("echo", "floor")]
        floors.append(("same", _load("same", upstream, 1, calls, seconds, procs[0].pid)))
        same64 = _load("same", upstream, 64, calls * 3, seconds, procs[0].pid)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis.stop()

    _report(rows, floors, same64, rate_limit)


def _report(
    rows: list[tuple[int, Load, Load]], floors: list[tuple[str, Load]], same64: Load, rate_limit: bool
) -> None:
    print(f"rate limit {'on (one Redis script per call)' if rate_limit else 'off'}")
    print(
        f"{'conc':>4} {'path':>8} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>9} {'CPU ms/call':>12}"
    )

    def line(concurrency: int, name: str, load: Load) -> None:
        p50, p99 = _pct(load.latencies, 0.5), _pct(load.latencies, 0.99)
        cpu = f"{load.cpu_ms:12.3f}" if load.cpu_ms is not None else f"{'-':>12}"
        count = len(load.latencies)
        print(f"{concurrency:>4} {name:>8} {count:>6} {p50:>8.3f} {p99:>8.3f} {load.rate:>9.0f} {cpu}")

    for concurrency, direct, via in rows:
        line(concurrency, "direct", direct)
        line(concurrency, "gateway", via)
        added50 = _pct(via.latencies, 0.5) - _pct(direct.latencies, 0.5)
        added99 = _pct(via.latencies, 0.99) - _pct(direct.latencies, 0.99)
        print(
            f"{concurrency:>4}    added p50 {added50:.3f} ms, p99 {added99:.3f} ms; "
            f"gateway throughput {via.rate / direct.rate:.0%} of direct"
        )
    for name, load in floors:
        line(1, name, load)
    line(64, "same", same64)
    (_, c1_direct, c1_via), (_, c64_direct, c64_via) = rows
    via50, direct50, floor50, same50 = (
        _pct(load.latencies, 0.5) for load in (c1_via, c1_direct, floors[1][1], floors[2][1])
    )
    print(
        f"   1    floor (bare grpc.aio hop + one EVALSHA) p50 {floor50:.3f} ms; gateway minus floor "
        f"{via50 - floor50:.3f} ms"
    )
    print(
        f"   1    added p50 over direct default httpx {via50 - direct50:.3f} ms; over the gateway's "
        f"own pool used directly {via50 - same50:.3f} ms"
    )
    print(
        f"  64    gateway throughput {c64_via.rate / c64_direct.rate:.0%} of direct default httpx, "
        f"{c64_via.rate / same64.rate:.0%} of the gateway's own pool used directly"
    )
    latency_ok = _pct(c1_via.latencies, 0.5) - _pct(c1_direct.latencies, 0.5) <= 1.0
    print(
        f"targets: added p50 at c=1 <= 1 ms: {'PASS' if latency_ok else 'MISS'}; "
        f"throughput at c=64 >= 50% of direct: {'PASS' if c64_via.rate >= 0.5 * c64_direct.rate else 'MISS'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1500, help="calls per path at concurrency 1 (x3 at 64)")
    parser.add_argument("--seconds", type=float, default=5.0, help="cap per measurement")
    parser.add_argument("--no-rate-limit", action="store_true", help="configure the upstream without limits")
    parser.add_argument(
        "--worker", choices=["direct", "same", "gateway", "echo", "floor"], help=argparse.SUPPRESS
    )
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--cpu-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", nargs=2, metavar=("PORT", "REDIS_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        serve_floor(int(args.serve_floor[0]), args.serve_floor[1])
    elif args.worker:
        asyncio.run(
            client_worker(args.worker, args.target, args.concurrency, args.calls, args.seconds, args.cpu_pid)
        )
    else:
        run(args.calls, args.seconds, rate_limit=not args.no_rate_limit)


if __name__ == "__main__":
    main()
