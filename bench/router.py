"""Send → Deliver through one router process to two sink processes, against arq, same run.

    .venv/bin/python bench/router.py [--messages 8000] [--rate 500] [--seconds 6]

Starts a private redis-server (AOF everysec, as in production), one registry/router
process (``wedmesh serve registry``), two SDK sink processes with a no-op handler, then:

1. throughput: ``--messages`` Sends with 64 in flight; messages/s from the first Send to
   the last Deliver; then the same count again as ``SendBatch`` calls of 100 messages,
   4 calls in flight;
2. latency: an open loop at ``--rate`` messages/s for ``--seconds`` (each message is sent
   at its scheduled time whether or not earlier ones finished; latency is counted from
   that scheduled time, so a stalled sender cannot hide queueing);

and the same two measurements with arq (one worker process, no-op job, tuned: see
``ARQ_SETTINGS``) on the same Redis. Prints the figures and the ratio. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVICE = "bench-sink"
CONCURRENCY = 64
BATCH = 100
BATCH_CONCURRENCY = 4
ARQ_SETTINGS = {"max_jobs": 1000, "poll_delay": 0.002, "keep_result": 0, "max_burst_jobs": -1}
ROUTER_ENV = {
    "WEDMESH_LOGGING__LEVEL": "WARNING",
    "WEDMESH_REGISTRY__HEALTH_INTERVAL_S": "1.0",
    "WEDMESH_REGISTRY__MAX_IN_FLIGHT": "256",
}


# ---------------------------------------------------------------- child roles


class Tally:
    """What one receiving process saw: count, first/last receipt, latencies."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.latencies: list[float] = []

    def note(self, sent_at: float) -> None:
        now = time.time()
        if not self.count:
            self.first = now
        self.count += 1
        self.last = now
        self.latencies.append(now - sent_at)

    def dump(self) -> None:
        out = {"count": self.count, "first": self.first, "last": self.last, "lat": self.latencies}
        print(json.dumps(out), flush=True)
        self.reset()


async def run_sink(registry: str, instance: str) -> None:
    from services.registry.sdk import MeshInstance, Message

    tally = Tally()

    async def handle(message: Message) -> None:
        tally.note(message.created_at.ToMicroseconds() / 1e6)

    async with MeshInstance(SERVICE, handle, registry=registry, instance_id=instance, ttl=10.0):
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, tally.dump)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        await stop.wait()


async def run_arq_worker(redis_url: str) -> None:
    from arq.connections import RedisSettings
    from arq.worker import Worker

    tally = Tally()

    async def noop(ctx: dict[str, Any], sent_at: float) -> None:
        tally.note(sent_at)

    noop.__qualname__ = "noop"
    worker = Worker(
        functions=[noop],  # type: ignore[list-item]
        redis_settings=RedisSettings.from_dsn(redis_url),
        handle_signals=False,
        **ARQ_SETTINGS,  # type: ignore[arg-type]
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, tally.dump)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(worker.async_run())
    print("ready", flush=True)
    await stop.wait()
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    await worker.close()


# ---------------------------------------------------------------- driver


class Child:
    def __init__(
        self, *args: str, env: dict[str, str] | None = None, wait_ready: bool = True, log: Any = None
    ) -> None:
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=full_env,
            stdout=log or subprocess.PIPE,
            stderr=log,
            text=True,
        )
        if wait_ready:
            assert self.process.stdout is not None
            line = self.process.stdout.readline()
            assert line.strip() == "ready", f"child {args} did not start: {line!r}"

    def cpu(self) -> float:
        """CPU seconds (user + system) the child used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def collect(self) -> dict[str, Any]:
        """Ask for the tally (SIGUSR1) and read it."""
        assert self.process.stdout is not None
        self.process.send_signal(signal.SIGUSR1)
        return dict(json.loads(self.process.stdout.readline()))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.process.stdout is not None:
            self.process.stdout.close()


def summary(tallies: list[dict[str, Any]], started: float) -> dict[str, float]:
    count = sum(t["count"] for t in tallies)
    last = max(t["last"] for t in tallies)
    lat = sorted(x for t in tallies for x in t["lat"])
    return {
        "count": count,
        "rate": count / max(1e-9, last - started),
        "p50_ms": 1000 * lat[len(lat) // 2] if lat else float("nan"),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
        "mean_ms": 1000 * statistics.fmean(lat) if lat else float("nan"),
    }


async def closed_loop(send: Any, n: int, concurrency: int) -> float:
    """Send n as fast as possible with ``concurrency`` in flight; returns the start time."""
    started = time.time()
    next_index = 0

    async def lane() -> None:
        nonlocal next_index
        while next_index < n:
            next_index += 1
            await send(time.time())

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return started


async def open_loop(send: Any, rate: float, seconds: float) -> tuple[float, int]:
    """Start one send every 1/rate s (not waiting for earlier ones); returns (start, count).

    At most ``CONCURRENCY`` sends are outstanding (a send waiting for a slot still counts
    its latency from its scheduled time), so a slow side cannot open unbounded connections.
    """
    n = int(rate * seconds)
    started = time.time() + 0.05
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(at: float) -> None:
        async with slots:
            await send(at)

    tasks = []
    for i in range(n):
        at = started + i / rate
        delay = at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(at)))
    await asyncio.gather(*tasks)
    return started, n


async def wait_count(children: list[Child], expected: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Collect tallies until they add up to ``expected`` (tallies reset on collect, so merge)."""
    merged = [{"count": 0, "first": 0.0, "last": 0.0, "lat": []} for _ in children]
    deadline = time.monotonic() + timeout
    while sum(m["count"] for m in merged) < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {sum(m['count'] for m in merged)} of {expected} arrived")
        await asyncio.sleep(0.25)
        for m, child in zip(merged, children, strict=True):
            t = await asyncio.to_thread(child.collect)
            if t["count"]:
                m["count"] += t["count"]
                m["last"] = max(m["last"], t["last"])
                m["lat"] += t["lat"]
    return merged


async def bench_router(
    redis_url: str, args: argparse.Namespace
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    import grpc

    from services.core.local_redis import free_port
    from wedsync.registry.v1 import message_pb2, registry_pb2, registry_pb2_grpc, router_pb2, router_pb2_grpc

    port = free_port()
    profile = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
    router_proc = Child(
        *profile, "-m", "services.cli", "serve", "registry", "--port", str(port), "--metrics-port", "0",
        "--redis-url", redis_url, env=ROUTER_ENV, wait_ready=False, log=args.router_log,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    channel = grpc.aio.insecure_channel(address)
    await asyncio.wait_for(channel.channel_ready(), 30)
    await asyncio.sleep(0.5)  # let the router finish starting its background tasks
    sinks = [Child(__file__, "--role", "sink", "--registry", address, "--instance", f"s{i}") for i in (1, 2)]
    registry = registry_pb2_grpc.RegistryServiceStub(channel)
    router = router_pb2_grpc.RouterServiceStub(channel)
    deadline = time.monotonic() + 30
    while True:
        found = await registry.Discover(registry_pb2.DiscoverRequest(service_name=SERVICE, healthy_only=True))
        if len(found.instances) == 2:
            break
        if time.monotonic() > deadline:
            raise SystemExit("sinks never became healthy")
        await asyncio.sleep(0.1)

    def make(at: float) -> Any:
        message = message_pb2.Message(to_service=SERVICE, event_type="bench", payload=b"x" * 128)
        message.created_at.FromMicroseconds(int(at * 1e6))
        return message

    async def send(at: float) -> None:
        await router.Send(router_pb2.SendRequest(message=make(at)))

    async def send_batch(at: float) -> None:
        messages = [make(time.time()) for _ in range(BATCH)]
        reply = await router.SendBatch(router_pb2.SendBatchRequest(messages=messages))
        assert all(r.error_code == 0 for r in reply.results)

    try:
        await closed_loop(send, 200, 16)  # warm-up
        await wait_count(sinks, 200)
        cpu0 = [c.cpu() for c in (router_proc, *sinks)] + [time.process_time()]
        started = await closed_loop(send, args.messages, CONCURRENCY)
        throughput = summary(await wait_count(sinks, args.messages), started)
        cpu1 = [c.cpu() for c in (router_proc, *sinks)] + [time.process_time()]
        per = [round(1000 * (b - a) / args.messages, 3) for a, b in zip(cpu0, cpu1, strict=True)]
        print(f"router CPU ms/msg (Send): router {per[0]}, sinks {per[1]} + {per[2]}, sender {per[3]}")
        cpu0 = [c.cpu() for c in (router_proc, *sinks)] + [time.process_time()]
        started = await closed_loop(send_batch, args.messages // BATCH, BATCH_CONCURRENCY)
        batched = summary(await wait_count(sinks, args.messages // BATCH * BATCH), started)
        cpu1 = [c.cpu() for c in (router_proc, *sinks)] + [time.process_time()]
        per = [round(1000 * (b - a) / args.messages, 3) for a, b in zip(cpu0, cpu1, strict=True)]
        print(f"router CPU ms/msg (SendBatch): router {per[0]}, sinks {per[1]} + {per[2]}, sender {per[3]}")
        started, n = await open_loop(send, args.rate, args.seconds)
        latency = summary(await wait_count(sinks, n), started)
    finally:
        await channel.close()
        for child in [*sinks, router_proc]:
            child.stop()
    return throughput, batched, latency


async def bench_arq(redis_url: str, args: argparse.Namespace) -> tuple[dict[str, float], dict[str, float]]:
    from arq import create_pool
    from arq.connections import RedisSettings

    worker = Child(__file__, "--role", "arq-worker", "--redis-url", redis_url)
    settings = RedisSettings.from_dsn(redis_url)
    settings.max_connections = 1024
    pool = await create_pool(settings)

    async def send(at: float) -> None:
        await pool.enqueue_job("noop", at)

    try:
        await closed_loop(send, 200, 16)
        await wait_count([worker], 200)
        cpu0 = [worker.cpu(), time.process_time()]
        started = await closed_loop(send, args.messages, CONCURRENCY)
        throughput = summary(await wait_count([worker], args.messages), started)
        cpu1 = [worker.cpu(), time.process_time()]
        per = [round(1000 * (b - a) / args.messages, 3) for a, b in zip(cpu0, cpu1, strict=True)]
        print(f"arq CPU ms/msg: worker {per[0]}, enqueuer {per[1]}")
        started, n = await open_loop(send, args.rate, args.seconds)
        latency = summary(await wait_count([worker], n), started)
    finally:
        await pool.aclose()
        worker.stop()
    return throughput, latency


def show(name: str, throughput: dict[str, float], latency: dict[str, float], rate: float) -> None:
    print(
        f"{name:7s} throughput {throughput['rate']:7.0f} msg/s ({throughput['count']} msgs)   "
        f"at {rate:.0f}/s open loop: p50 {latency['p50_ms']:6.2f} ms  p99 {latency['p99_ms']:6.2f} ms  "
        f"mean {latency['mean_ms']:6.2f} ms"
    )


async def drive(args: argparse.Namespace) -> None:
    import arq

    from services.core.local_redis import start_redis_server

    with tempfile.TemporaryDirectory() as tmp:
        server = start_redis_server(Path(tmp))
        try:
            router_t, router_b, router_l = await bench_router(server.url, args)
            if args.router_only:
                show("router", router_t, router_l, args.rate)
                return
            arq_t, arq_l = await bench_arq(server.url, args)
        finally:
            server.stop()
    print(f"arq {arq.VERSION} settings: {ARQ_SETTINGS}")
    show("router", router_t, router_l, args.rate)
    batched = f"{router_b['rate']:7.0f} msg/s ({router_b['count']} msgs)"
    print(f"router  throughput {batched} with SendBatch of {BATCH}")
    show("arq", arq_t, arq_l, args.rate)
    print(f"throughput ratio router/arq: {router_t['rate'] / arq_t['rate']:.2f}x (Send)")
    print(f"throughput ratio router/arq: {router_b['rate'] / arq_t['rate']:.2f}x (SendBatch)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--role", default="driver", choices=["driver", "sink", "arq-worker"])
    parser.add_argument("--registry", help=argparse.SUPPRESS)
    parser.add_argument("--instance", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--messages", type=int, default=8000, help="throughput phase size")
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop rate, messages/s")
    parser.add_argument("--seconds", type=float, default=6.0, help="open-loop duration")
    parser.add_argument("--router-only", action="store_true", help="skip arq (for quick iterations)")
    args = parser.parse_args()
    args.router_log = open(os.devnull, "w") if args.role == "driver" else None
    if os.environ.get("BENCH_ROUTER_LOG"):
        args.router_log = open(os.environ["BENCH_ROUTER_LOG"], "w")
    if args.role == "sink":
        asyncio.run(run_sink(args.registry, args.instance))
    elif args.role == "arq-worker":
        asyncio.run(run_arq_worker(args.redis_url))
    else:
        asyncio.run(drive(args))


if __name__ == "__main__":
    main()
