"""Throughput of the durable queue vs raw XADD/XREADGROUP, measured in the same run.

    .venv/bin/python bench/queue_throughput.py [--messages 5000] [--redis-url redis://...]

Without ``--redis-url`` a private redis-server is started in a temporary folder (AOF on,
everysec, as in production). Only the ratios are meaningful on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

from services.core.keys import QueueKeys
from services.core.local_redis import start_redis_server
from services.core.queue import Delivery, DurableQueue, Worker

PAYLOAD = b"x" * 256


async def raw_streams(client: aioredis.Redis, n: int, batch: int) -> tuple[float, float]:
    """Enqueue with XADD, then drain with XREADGROUP + XACK/XDEL (no scripts, no retries)."""
    stream = QueueKeys("bench-raw").stream("normal")
    await client.xgroup_create(stream, "g", id="0", mkstream=True)
    started = time.perf_counter()
    for _ in range(n):
        await client.xadd(stream, {"payload": PAYLOAD})
    enqueued = time.perf_counter() - started
    started, done = time.perf_counter(), 0
    while done < n:
        reply = await client.xreadgroup("g", "c", {stream: ">"}, count=batch)
        for _, entries in reply:
            ids = [entry_id for entry_id, _ in entries]
            async with client.pipeline(transaction=False) as pipe:
                for entry_id in ids:
                    pipe.xack(stream, "g", entry_id)
                    pipe.xdel(stream, entry_id)
                await pipe.execute()
            done += len(ids)
    return n / enqueued, n / (time.perf_counter() - started)


async def durable_queue(client: aioredis.Redis, n: int, batch: int) -> tuple[float, float]:
    """Enqueue with the enqueue script, then drain with a Worker (claim script + ack script)."""
    queue = DurableQueue(client, "bench-dq")
    started = time.perf_counter()
    for _ in range(n):
        await queue.enqueue(PAYLOAD)
    enqueued = time.perf_counter() - started
    handled = asyncio.Event()
    count = 0

    async def handler(_: Delivery) -> None:
        nonlocal count
        count += 1
        if count == n:
            handled.set()

    started = time.perf_counter()
    async with Worker(queue, handler, lease=30, max_in_flight=batch, idle_wait=0.5):
        await handled.wait()
        drained = time.perf_counter() - started
    return n / enqueued, n / drained


async def concurrent(client: aioredis.Redis, n: int, batch: int) -> float:
    """Producer and worker running together: enqueue → handled messages per second."""
    queue = DurableQueue(client, "bench-live")
    done = asyncio.Event()
    count = 0

    async def handler(_: Delivery) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    started = time.perf_counter()
    async with Worker(queue, handler, lease=30, max_in_flight=batch, idle_wait=0.5):
        for _ in range(n):
            await queue.enqueue(PAYLOAD)
        await done.wait()
    return n / (time.perf_counter() - started)


async def main(url: str, n: int, batch: int) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushall()
        raw_in, raw_out = await raw_streams(client, n, batch)
        dq_in, dq_out = await durable_queue(client, n, batch)
        live = await concurrent(client, n, batch)
    finally:
        await client.aclose()
    print(f"messages={n} batch={batch} payload={len(PAYLOAD)}B")
    print(f"enqueue   raw XADD        {raw_in:8.0f}/s   DurableQueue {dq_in:8.0f}/s ({dq_in / raw_in:.2f}x)")
    print(
        f"drain     raw XREADGROUP  {raw_out:8.0f}/s   Worker       {dq_out:8.0f}/s ({dq_out / raw_out:.2f}x)"
    )
    print(f"enqueue→handled, producer and worker together: {live:8.0f}/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    if args.redis_url:
        asyncio.run(main(args.redis_url, args.messages, args.batch))
    else:
        with tempfile.TemporaryDirectory() as folder:
            server = start_redis_server(Path(folder))
            try:
                asyncio.run(main(server.url, args.messages, args.batch))
            finally:
                server.stop()
