"""Peak load (#7): 10,000 concurrent signed webhooks through the whole mesh, 1 and 2 replicas.

    .venv/bin/python bench/peak.py [--replicas 1,2] [--webhooks 10000] [--clients 4]
        [--in-flight N] [--sinks-late S] [--timeout 90] [--drain 90] [--no-baseline] [--keep]

Loopback only; everything is started here and stopped on exit, Ctrl-C or SIGTERM (children
run in their own sessions under ``setpriv --pdeathsig``, so even a SIGKILLed driver leaves
nothing behind):

- a private redis-server on a free port (AOF everysec, as ``wedmesh up`` runs it), one per
  phase, so phases do not share a backlog;
- per replica, every service its own process, started as a user would: ``wedmesh serve
  registry``, ``wedmesh serve webhooks`` (intake + worker, publishing to its router),
  ``wedmesh serve shim`` (each shim replica on its own port, in front of its own intake),
  and two SDK sink services, ``notification-service`` and ``analytics-service``
  (bench/peak_sink.py), that the example config's ``payment.*`` route fans the events out to
  (booking-service is left out of the route: two sinks per replica are enough on 2 cores);
- ``--clients`` load-generator processes (bench/peak_load.py), released together, that post
  ``--webhooks`` Stripe ``payment_intent.succeeded`` webhooks all at once (``--in-flight``
  caps that), one connection each, spread over the shim ports; refused attempts (503,
  connection errors) are retried with exponential backoff until ``--timeout``, as a
  provider would.

Figures: every attempt's outcome (200, the shim's connection-limit 503, intake's 503s,
errors); accepted/s; time to 200 (first send → 200, retries included, and the successful
attempt alone); delivered/accepted per sink service (unique ids), duplicates, dead letters;
end to end (first send, carried in the event id → sink receipt); peak memory (VmHWM) and CPU
of each process; and a timeline of each service's RSS next to the backlog in Redis (queue
stream lengths), to show that memory does not follow the backlog (``--sinks-late S`` stops
the sinks for the first S seconds so that a large backlog builds up). The baseline, same
run: the same webhooks against the shim's own HTTP app with intake replaced by one XADD
(bench/peak_bare.py). The box has 2 cores shared by the load generators and every service:
only same-run comparisons mean much.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import grpc  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from peak_load import ATTEMPT_TIMEOUT_S, SECRET, raise_fd_limit, send_time  # noqa: E402
from peak_procs import Child, Children  # noqa: E402

from services.core.config import EXAMPLE_CONFIG  # noqa: E402
from services.core.keys import QueueKeys  # noqa: E402
from services.core.local_redis import RedisServer, free_port, start_redis_server  # noqa: E402
from services.registry.codec import queue_name as router_queue  # noqa: E402
from services.webhooks.providers import queue_name as webhook_queue  # noqa: E402
from wedsync.registry.v1 import registry_pb2, registry_pb2_grpc  # noqa: E402

SINKS = ("notification-service", "analytics-service")
# The example config's payment.* route without booking-service (no third sink process).
ROUTES = [
    {
        "pattern": "payment.*",
        "targets": [
            {"service": "notification-service", "priority": "HIGH", "max_retries": 5},
            {"service": "analytics-service", "priority": "LOW", "max_retries": 1},
        ],
    }
]
KINDS = ("shim", "webhooks", "registry", "notification-service", "analytics-service")
SAMPLE_S = 0.5
START_TIMEOUT_S = 90.0
WARM_UP = 20


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def ms(values: list[float]) -> str:
    return f"p50 {pct(values, 0.5) * 1000:,.0f} ms, p99 {pct(values, 0.99) * 1000:,.0f} ms"


# ---------------------------------------------------------------- load


@dataclass
class LoadResult:
    """What the load processes saw: their rows (see bench/peak_load.py) and attempt tally."""

    rows: list[list[Any]]
    outcomes: dict[str, int]
    max_in_flight: int
    started: float
    cpu_s: float
    accepted: dict[str, tuple[float, float]] = field(default_factory=dict)  # id -> (first send, 200)

    def __post_init__(self) -> None:
        self.accepted = {r[0]: (r[1], r[2]) for r in self.rows if r[2] is not None}

    @property
    def answer(self) -> list[float]:
        """How long the successful attempt itself took (connect → 200), without earlier refusals."""
        return [r[2] - r[6] for r in self.rows if r[2] is not None]

    @property
    def rate(self) -> float:
        if not self.accepted:
            return 0.0
        last = max(done for _, done in self.accepted.values())
        return len(self.accepted) / max(1e-9, last - self.started)

    @property
    def to_200(self) -> list[float]:
        return [done - sent for sent, done in self.accepted.values()]

    @property
    def first_try(self) -> int:
        return sum(1 for r in self.rows if r[5] == "200")


async def run_load(
    children: Children, ports: list[int], path: str, run: str, count: int, args: argparse.Namespace
) -> LoadResult:
    """Start the load processes, release them together, wait (bounded) and read what they saw."""
    clients = min(args.clients, count)
    share = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]
    loads: list[tuple[Child, Path]] = []
    first = 0
    for i, n in enumerate(share):
        out = children.folder / f"load-{run}-{i}.jsonl"
        cmd = ["bench/peak_load.py", "--ports", ",".join(map(str, ports)), "--path", path]
        cmd += ["--first", str(first), "--count", str(n), "--run", run, "--timeout", str(args.timeout)]
        cmd += ["--src", f"127.0.0.{2 + i}", "--out", str(out)]
        if args.in_flight:
            cmd += ["--in-flight", str(max(1, args.in_flight // clients))]
        loads.append((children.spawn(f"load-{run}-{i}", "load", cmd, pipe=True), out))
        first += n
    for child, _ in loads:
        assert child.process.stdout is not None
        line = await asyncio.to_thread(child.process.stdout.readline)
        if not line.startswith("ready"):
            raise SystemExit(f"{child.name} did not start: {line!r}")
    started = time.time()
    for child, _ in loads:
        assert child.process.stdin is not None
        child.process.stdin.write("go\n")
        child.process.stdin.flush()
    deadline = time.monotonic() + args.timeout + ATTEMPT_TIMEOUT_S + 30
    while any(c.process.poll() is None for c, _ in loads):
        if time.monotonic() > deadline:
            children.stop(("load",))
            raise SystemExit("the load generators did not finish in time")
        await asyncio.sleep(0.2)
    rows: list[list[Any]] = []
    outcomes: dict[str, int] = {}
    in_flight: dict[float, int] = {}
    cpu_s = 0.0
    for child, out in loads:
        if child.process.returncode != 0:
            raise SystemExit(f"{child.name} failed: see {children.folder / child.name}.log")
        lines = out.read_text().splitlines()
        rows += [json.loads(line) for line in lines[:-1]]
        tally = json.loads(lines[-1])
        for key, value in tally["outcomes"].items():
            outcomes[key] = outcomes.get(key, 0) + value
        cpu_s += tally["cpu_s"]
        for at, n in tally["timeline"]:
            in_flight[at] = in_flight.get(at, 0) + n
    return LoadResult(rows, outcomes, max(in_flight.values(), default=0), started, cpu_s)


# ---------------------------------------------------------------- sinks and backlog


class Receipts:
    """Follows the sink files: first receipt per (service, event id), and repeats."""

    def __init__(self, files: dict[str, list[Path]], run: str) -> None:
        self.files = files
        self.prefix = f"evt_{run}_"
        self.offsets: dict[Path, int] = {}
        self.first: dict[str, dict[str, float]] = {s: {} for s in files}
        self.lines: dict[str, int] = dict.fromkeys(files, 0)

    def poll(self) -> None:
        for service, paths in self.files.items():
            for path in paths:
                if not path.exists():
                    continue
                with path.open() as f:
                    f.seek(self.offsets.get(path, 0))
                    chunk = f.read()
                end = chunk.rfind("\n") + 1  # a half-written last line waits for the next poll
                self.offsets[path] = self.offsets.get(path, 0) + len(chunk[:end].encode())
                for line in chunk[:end].splitlines():
                    event_id, at = line.split(" ", 2)[:2]
                    if event_id.startswith(self.prefix):
                        self.lines[service] += 1
                        self.first[service].setdefault(event_id, float(at))

    def delivered(self) -> int:
        return sum(len(seen) for seen in self.first.values())


class Backlog:
    """Lengths of the work queues in Redis: webhook intake, and the router's per-sink queues."""

    def __init__(self, url: str) -> None:
        self.client = aioredis.Redis.from_url(url)
        self.intake = QueueKeys(webhook_queue("stripe"))
        self.router = [QueueKeys(router_queue(s)) for s in SINKS]

    async def read(self) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for keys in (self.intake, *self.router):
            for stream in keys.streams:
                pipe.xlen(stream)
            pipe.zcard(keys.delayed)
            pipe.xlen(keys.dead)
        pipe.info("memory")
        values = await pipe.execute()
        per = [values[i * 5 : i * 5 + 5] for i in range(1 + len(self.router))]
        return {
            "intake": sum(per[0][:3]),
            "router": sum(sum(p[:3]) for p in per[1:]),
            "delayed": sum(p[3] for p in per),
            "dead": sum(p[4] for p in per),
            "redis_mb": int(values[-1]["used_memory"]) // 2**20,
        }

    async def close(self) -> None:
        await self.client.aclose()


@dataclass
class Sample:
    t: float
    backlog: dict[str, int]
    delivered: int
    rss_mb: dict[str, float]  # per kind: the largest replica


async def sample_loop(children: Children, backlog: Backlog, receipts: Receipts, out: list[Sample]) -> None:
    t0 = time.time()
    while True:
        receipts.poll()
        rss: dict[str, float] = {}
        for child in children.items:
            if child.kind in KINDS or child.kind == "redis":
                kb = child.observe().get("VmRSS", 0)
                rss[child.kind] = max(rss.get(child.kind, 0.0), kb / 1024)
        out.append(Sample(time.time() - t0, await backlog.read(), receipts.delivered(), rss))
        await asyncio.sleep(SAMPLE_S)


# ---------------------------------------------------------------- the mesh


def service_env(redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "WEDMESH_CONFIG": str(EXAMPLE_CONFIG),
        "REDIS_URL": redis_url,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "WEDMESH_LOGGING__LEVEL": "WARNING",
        "WEDMESH_REGISTRY__ROUTES": json.dumps(ROUTES),
        "WEDMESH_SHUTDOWN__DRAIN_DELAY_S": "0.1",
        "WEDMESH_SHUTDOWN__GRACE_S": "3",
    }


async def wait_grpc(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=START_TIMEOUT_S
        )


async def wait_http(port: int, path: str, children: Children) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if children.dead():
            break
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            writer.close()
            if head[9:12] == b"200":
                return
        except (OSError, asyncio.IncompleteReadError):
            pass
        await asyncio.sleep(0.2)
    raise SystemExit(f"port {port} did not answer 200 on {path}; logs in {children.folder}")


async def wait_sinks(registry: str, replicas: int) -> None:
    async with grpc.aio.insecure_channel(registry) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        deadline = time.monotonic() + START_TIMEOUT_S
        for service in SINKS:
            while True:
                found = await stub.Discover(
                    registry_pb2.DiscoverRequest(service_name=service, healthy_only=True)
                )
                if len(found.instances) >= replicas:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"{service}: {len(found.instances)} of {replicas} instances healthy")
                await asyncio.sleep(0.2)


def spawn_sinks(children: Children, registries: list[int]) -> dict[str, list[Path]]:
    """One process of each sink service per replica (its registry: that replica's); their files."""
    files: dict[str, list[Path]] = {s: [] for s in SINKS}
    for service in SINKS:
        for i, port in enumerate(registries):
            out = children.folder / f"{service}-{i}.receipts"
            files[service].append(out)
            args = ["bench/peak_sink.py", "--service", service, "--registry", f"127.0.0.1:{port}"]
            children.spawn(
                f"{service}-{i}", service, [*args, "--instance-id", f"peak-{i}", "--out", str(out)]
            )
    return files


async def start_mesh(children: Children, replicas: int) -> tuple[list[int], list[int], dict[str, list[Path]]]:
    """Every service of every replica as its own process; returns shim and registry ports, sink files."""
    cli = ["-m", "services.cli", "serve"]
    registries = [free_port() for _ in range(replicas)]
    intakes = [free_port() for _ in range(replicas)]
    shims = [free_port() for _ in range(replicas)]
    for i, port in enumerate(registries):
        children.spawn(
            f"registry-{i}", "registry", [*cli, "registry", "--port", str(port), "--metrics-port", "0"]
        )
    await asyncio.gather(*(wait_grpc(f"127.0.0.1:{p}") for p in registries))
    for i, port in enumerate(intakes):
        router = f"webhooks.router_address=127.0.0.1:{registries[i]}"
        args = [*cli, "webhooks", "--port", str(port), "--metrics-port", "0", "--set", router]
        children.spawn(f"webhooks-{i}", "webhooks", args)
    for i, port in enumerate(shims):
        args = [*cli, "shim", "--port", str(port), "--intake-address", f"127.0.0.1:{intakes[i]}"]
        children.spawn(f"shim-{i}", "shim", args)
    files = spawn_sinks(children, registries)
    await asyncio.gather(*(wait_grpc(f"127.0.0.1:{p}") for p in intakes))
    await asyncio.gather(*(wait_http(p, "/readyz", children) for p in shims))
    await wait_sinks(f"127.0.0.1:{registries[0]}", replicas)
    return shims, registries, files


async def wait_delivered(
    receipts: Receipts, accepted: set[str], backlog: Backlog, children: Children, limit: float
) -> float:
    """Until every accepted id reached every sink service, or the backlog stays empty and
    nothing arrives for 5 s, or ``limit`` seconds pass; returns the time waited."""
    started = time.monotonic()
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() - started < limit:
        receipts.poll()
        if all(accepted <= seen.keys() for seen in receipts.first.values()) or children.dead():
            break
        count = receipts.delivered()
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        depth = await backlog.read()
        idle = depth["intake"] + depth["router"] + depth["delayed"] == 0
        if idle and time.monotonic() - last_change > 5:
            break
        await asyncio.sleep(SAMPLE_S)
    return time.monotonic() - started


# ---------------------------------------------------------------- phases


@dataclass
class Phase:
    label: str
    load: LoadResult
    count: int
    delivered: dict[str, float] = field(default_factory=dict)  # service -> delivered/accepted
    duplicates: dict[str, int] = field(default_factory=dict)
    e2e: list[float] = field(default_factory=list)
    peak_mb: dict[str, float] = field(default_factory=dict)  # kind -> largest VmHWM
    dead: int = 0


def print_load(load: LoadResult, count: int, clients: int) -> None:
    names = {
        "200": "200",
        "503-limit": "503 (shim connection limit)",
        "503-shed": "503 (shim max_in_flight shedding)",
        "503-full": "503 (intake queue full)",
        "503-intake": "503 (intake unavailable/slow)",
    }
    attempts = ", ".join(f"{names.get(k, k)}: {v:,}" for k, v in sorted(load.outcomes.items()))
    print(
        f"load        : {count:,} webhooks from {clients} processes, {load.max_in_flight:,} in flight "
        f"at most, {load.cpu_s:.0f} CPU s in the load processes"
    )
    print(f"attempts    : {attempts}")
    print(
        f"accepted    : {len(load.accepted):,} of {count:,} (first try {load.first_try:,}) "
        f"= {load.rate:,.0f} accepted/s (first send → last 200)"
    )
    print(f"time to 200 : {ms(load.to_200)} (first send → 200, retries included)")
    print(f"              {ms(load.answer)} (the successful attempt alone: connect → 200)")


async def baseline_phase(tmp: Path, args: argparse.Namespace) -> Phase:
    """The same webhooks against the shim's HTTP app with intake replaced by one XADD (no mesh)."""
    redis = start_redis_server(tmp / "redis-bare")
    children = Children(tmp, service_env(redis.url))
    try:
        port = free_port()
        children.spawn("bare", "bare", ["bench/peak_bare.py", "--port", str(port), "--redis-url", redis.url])
        await wait_http(port, "/healthz", children)
        run = "bare" + uuid.uuid4().hex[:6]
        load = await run_load(children, [port], "/webhooks/stripe", run, args.webhooks, args)
    finally:
        children.stop()
        redis.stop()
    print("\n## baseline: the same webhooks against the shim's HTTP app, intake replaced by one XADD")
    print_load(load, args.webhooks, args.clients)
    return Phase("baseline: shim app + one XADD (1 proc)", load, args.webhooks)


async def mesh_phase(tmp: Path, replicas: int, args: argparse.Namespace) -> Phase:
    folder = tmp / f"replicas-{replicas}"
    folder.mkdir()
    redis = start_redis_server(folder / "redis")
    children = Children(folder, service_env(redis.url))
    backlog = Backlog(redis.url)
    samples: list[Sample] = []
    sampler: asyncio.Task[None] | None = None
    try:
        shims, registries, files = await start_mesh(children, replicas)
        warm = "warm" + uuid.uuid4().hex[:6]
        warmed = await run_load(children, shims, "/webhooks/stripe", warm, WARM_UP, args)
        await wait_delivered(Receipts(files, warm), set(warmed.accepted), backlog, children, 30)
        late: asyncio.Task[Any] | None = None
        if args.sinks_late:
            children.stop(SINKS, forget=True)  # they deregister; the router keeps their messages queued

            async def restart_sinks() -> None:
                await asyncio.sleep(args.sinks_late)
                spawn_sinks(children, registries)

            late = asyncio.create_task(restart_sinks())
        run = "r" + uuid.uuid4().hex[:8]
        receipts = Receipts(files, run)
        sampler = asyncio.create_task(sample_loop(children, backlog, receipts, samples))
        load = await run_load(children, shims, "/webhooks/stripe", run, args.webhooks, args)
        last_200 = max((done for _, done in load.accepted.values()), default=time.time())
        if late is not None:
            await late
        waited = await wait_delivered(receipts, set(load.accepted), backlog, children, args.drain)
        await asyncio.sleep(2 * SAMPLE_S)  # a last sample or two after the drain
        sampler.cancel()
        depth = await backlog.read()
        for child in children.items:
            child.observe()
        redis_hwm = proc_mb(redis)
        dead = [c.name for c in children.dead()]
    finally:
        if sampler is not None:
            sampler.cancel()
        await backlog.close()
        children.stop()
        redis.stop()
    late_note = f", sinks {args.sinks_late:.0f} s late" if args.sinks_late else ""
    label = f"mesh, {replicas} replica{'s' if replicas > 1 else ''} of each{late_note}"
    phase = Phase(label, load, args.webhooks)
    print(
        f"\n## {replicas} replica(s): {replicas} x (shim, webhooks intake+worker, registry/router, "
        "notification sink, analytics sink), one Redis"
    )
    if dead:
        print(f"!! processes that died during the run: {', '.join(dead)} (logs in {folder})")
    print_load(load, args.webhooks, args.clients)
    report_delivery(phase, receipts, depth)
    phase.e2e = [
        at - send_time(i) for seen in receipts.first.values() for i, at in seen.items() if i in load.accepted
    ]
    last_delivery = max((at for seen in receipts.first.values() for at in seen.values()), default=last_200)
    print(f"end to end  : {ms(phase.e2e)} (first send → sink receipt, both sinks)")
    print(
        f"              from the release of the load: last 200 at {last_200 - load.started:.1f} s, "
        f"last delivery at {last_delivery - load.started:.1f} s (drain waited {waited:.1f} s more)"
    )
    print(f"{'process':24s} {'peak RSS (VmHWM)':>17s} {'CPU s':>7s}")
    for child in children.items:
        if child.kind in KINDS:
            print(f"{child.name:24s} {child.hwm_kb / 1024:14.0f} MB {child.cpu_s:7.1f}")
            phase.peak_mb[child.kind] = max(phase.peak_mb.get(child.kind, 0.0), child.hwm_kb / 1024)
    print(f"{'redis-server':24s} {redis_hwm:14.0f} MB")
    print_timeline(samples)
    return phase


def proc_mb(redis: RedisServer) -> float:
    from peak_procs import proc_status

    return proc_status(redis.process.pid).get("VmHWM", 0) / 1024


def report_delivery(phase: Phase, receipts: Receipts, depth: dict[str, int]) -> None:
    accepted = set(phase.load.accepted)
    parts, dups = [], []
    for service, seen in receipts.first.items():
        got = len(accepted & seen.keys())
        phase.delivered[service] = got / len(accepted) if accepted else float("nan")
        phase.duplicates[service] = receipts.lines[service] - len(seen)
        extra = len(seen.keys() - accepted)
        parts.append(f"{service} {got:,}/{len(accepted):,} = {phase.delivered[service]:.2%}")
        dups.append(
            f"{service} {phase.duplicates[service]:,}" + (f" (+{extra} never answered 200)" if extra else "")
        )
    phase.dead = depth["dead"]
    print(f"delivered   : {'; '.join(parts)} (unique ids)")
    left = depth["intake"] + depth["router"] + depth["delayed"]
    print(f"duplicates  : {'; '.join(dups)}; dead letters {depth['dead']}; left in queues {left}")


def print_timeline(samples: list[Sample], rows: int = 24) -> None:
    """RSS of each kind (largest replica) next to the backlog, at most ``rows`` evenly spaced rows."""
    if not samples:
        return
    step = max(1, len(samples) // rows)
    chosen = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    heads = ["shim", "webhooks", "registry", "notif", "analytics"]
    print("timeline (RSS MB: largest replica of each kind; backlog: entries in the Redis work queues)")
    print(
        f"{'t s':>6s} {'intake q':>9s} {'router q':>9s} {'delayed':>8s} {'delivered':>10s} "
        + " ".join(f"{h:>9s}" for h in heads)
        + f" {'redis used':>10s}"
    )
    for s in chosen:
        b = s.backlog
        rss = " ".join(f"{s.rss_mb.get(k, 0):9.0f}" for k in KINDS)
        queues = f"{b['intake']:9,} {b['router']:9,} {b['delayed']:8,}"
        print(f"{s.t:6.1f} {queues} {s.delivered:10,} {rss} {b['redis_mb']:10,}")


def print_summary(phases: list[Phase]) -> None:
    print("\n## summary (same run; 2 shared cores, so figures are noisy)")
    print(
        f"{'run':38s} {'accepted/s':>10s} {'to 200 p50/p99 ms':>18s} {'e2e p50/p99 ms':>15s} "
        f"{'delivered/accepted':>19s} {'dups':>5s} {'503s':>7s} {'peak RSS MB (max per kind)':s}"
    )
    for p in phases:
        t200 = f"{pct(p.load.to_200, 0.5) * 1000:,.0f}/{pct(p.load.to_200, 0.99) * 1000:,.0f}"
        e2e = f"{pct(p.e2e, 0.5) * 1000:,.0f}/{pct(p.e2e, 0.99) * 1000:,.0f}" if p.e2e else "-"
        delivered = f"{min(p.delivered.values()):.2%}" if p.delivered else "-"
        dups = str(sum(p.duplicates.values())) if p.delivered else "-"
        refused = sum(v for k, v in p.load.outcomes.items() if k.startswith("503"))
        peaks = ", ".join(f"{k.split('-')[0]} {v:.0f}" for k, v in p.peak_mb.items()) or "-"
        figures = f"{t200:>18s} {e2e:>15s} {delivered:>19s} {dups:>5s} {refused:7,}"
        print(f"{p.label:38s} {p.load.rate:10,.0f} {figures} {peaks}")


async def drive(tmp: Path, args: argparse.Namespace) -> None:
    capped = f" (at most {args.in_flight:,} in flight)" if args.in_flight else ""
    print(
        f"# peak bench: {args.webhooks:,} webhooks at once{capped}, {args.clients} load processes, "
        f"retries until {args.timeout:.0f} s, RLIMIT_NOFILE {raise_fd_limit():,}; "
        f"load avg {os.getloadavg()[0]:.2f} at start; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    phases = []
    if args.baseline:
        phases.append(await baseline_phase(tmp, args))
    for replicas in args.replicas:
        phases.append(await mesh_phase(tmp, replicas, args))
    print_summary(phases)
    print(f"# load average {os.getloadavg()[0]:.2f} at the end")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--replicas", default="1,2", help="comma-separated replica counts to run (default 1,2)"
    )
    parser.add_argument("--webhooks", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4, help="load-generator processes")
    parser.add_argument("--timeout", type=float, default=90.0, help="no retry starts after this (s)")
    parser.add_argument(
        "--in-flight", type=int, default=0, help="cap on attempts in flight, all processes (0: no cap)"
    )
    parser.add_argument("--drain", type=float, default=90.0, help="wait at most this long for delivery (s)")
    parser.add_argument(
        "--sinks-late",
        type=float,
        default=0.0,
        metavar="S",
        help="stop the sinks before the load and start them S s after it begins (a backlog builds up)",
    )
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    parser.add_argument("--keep", action="store_true", help="keep the logs and Redis data folder")
    args = parser.parse_args()
    args.replicas = [int(n) for n in args.replicas.split(",")]
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    tmp = Path(tempfile.mkdtemp(prefix="wm-peak-"))
    ok = False
    try:
        asyncio.run(drive(tmp, args))
        ok = True
    except KeyboardInterrupt:
        print("# interrupted: every child stopped", file=sys.stderr)
    finally:
        if ok and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"# logs and data: {tmp}", file=sys.stderr)


if __name__ == "__main__":
    main()
