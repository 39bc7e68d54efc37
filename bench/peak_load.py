"""One load-generator process of bench/peak.py: its share of the signed webhooks, all at once.

    .venv/bin/python bench/peak_load.py --ports 8080,8081 --first 0 --count 2500 --run r1 \
        --out /tmp/x.jsonl [--path /webhooks/stripe] [--src 127.0.0.2] [--timeout 120]

It runs in its own process so that it never shares an event loop with the services it
measures. After start-up it prints ``ready`` and waits for a line on stdin: the driver
releases every load process at once. Then it starts one task per webhook, each on its own
TCP connection (``Connection: close``, as providers send), spread round-robin over the
shim ports: with several load processes, up to ``--webhooks`` are in flight at once.

Each webhook is a Stripe ``payment_intent.succeeded`` signed like bench/webhooks.py does
(``v1 = HMAC-SHA256(secret, f"{t}.{body}")``). Its event id carries the send time of its
first attempt (``evt_<run>_<n>_<microseconds since the epoch>``), so a sink can compute the
end-to-end latency from the payload alone. A refused attempt (503, connection error) is
retried as a provider would, with exponential backoff and jitter (1, 2, 4, 8, 16 s, or the
``Retry-After`` the shim sent; real providers wait minutes, which would not fit a bounded
run), until ``--timeout``. The output is one JSON line per webhook:
``[event_id, first_send, got_200_at | null, final_status, attempts, first_status,
last_attempt_start]``, then a
last line with the tally of every attempt's outcome and the largest number in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import hmac
import json
import random
import resource
import sys
import time

SECRET = "whsec_peak_bench"
ATTEMPT_TIMEOUT_S = 30.0
BACKOFF_S = (1.0, 16.0)  # first pause, cap: doubling, "equal jitter" (half fixed, half random)


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (each in-flight webhook holds a socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def stripe_event(event_id: str, wedding: str) -> bytes:
    """A Stripe payment_intent.succeeded for ``wedding`` (the shape the normaliser expects)."""
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": "pi_" + event_id[4:28],
                    "object": "payment_intent",
                    "amount": 50000,
                    "amount_received": 50000,
                    "currency": "gbp",
                    "metadata": {"wedding_id": wedding, "supplier_id": "sup_1", "payment_type": "deposit"},
                }
            },
        }
    ).encode()


def signed_post(path: str, port: int, body: bytes, secret: str = SECRET) -> bytes:
    """The complete HTTP/1.1 request, Stripe-signed now (a retry is signed again, as Stripe does)."""
    ts = str(int(time.time()))
    sig = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    head = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"stripe-signature: t={ts},v1={sig}\r\nconnection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def send_time(event_id: str) -> float:
    """The first attempt's send time carried in the event id (seconds since the epoch)."""
    return int(event_id.rsplit("_", 1)[1]) / 1e6


class Load:
    """Outcomes of this process's webhooks and how many were in flight at most."""

    def __init__(self, in_flight: int) -> None:
        self.slots = asyncio.Semaphore(in_flight)
        self.rows: list[list[object]] = []
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.timeline: list[tuple[float, int]] = []

    async def watch(self) -> None:
        """Sample how many attempts are in flight every 0.1 s (the driver adds processes up)."""
        while True:
            self.timeline.append((round(time.time(), 1), self.in_flight))
            await asyncio.sleep(0.1)


async def attempt(port: int, src: str, request: bytes) -> tuple[str, float, float]:
    """One POST on a fresh connection → (outcome, when the answer arrived, Retry-After or 0).

    Outcomes: ``200``, ``503-limit`` (uvicorn's connection limit: plain text), ``503-shed``
    (the shim's ``max_in_flight`` load shedding), ``503-full`` (intake's queue-depth limit),
    ``503-intake`` (any other JSON 503 of the shim: intake unavailable or too slow), another
    status, or ``error:<type>``.
    """
    writer = None
    try:
        async with asyncio.timeout(ATTEMPT_TIMEOUT_S):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12].decode()
            body = await reader.read()  # Connection: close: the body ends at EOF
            at = time.time()
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        return f"error:{type(exc).__name__}", time.time(), 0.0
    finally:
        if writer is not None:
            writer.close()
    if status != "503":
        return status, at, 0.0
    retry_after = 0.0
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"retry-after:") and line[12:].strip().isdigit():
            retry_after = float(line[12:])
    if not body.startswith(b"{"):
        return "503-limit", at, retry_after
    if b"too many webhooks in flight" in body:
        return "503-shed", at, retry_after
    return ("503-full" if b"max_queue_depth" in body else "503-intake"), at, retry_after


async def one(n: int, args: argparse.Namespace, ports: list[int], stop_at: float, load: Load) -> None:
    """One webhook until it gets a 200, a final answer, or the retry window closes.

    Its send time is when its first attempt starts (with ``--in-flight`` that may be after
    waiting for a slot, which the provider would not see).
    """
    port = ports[n % len(ports)]
    event_id, body, first = "", b"", 0.0
    tries, first_status, outcome, got_at, last_start = 0, "", "", None, 0.0
    while True:
        tries += 1
        async with load.slots:
            if not event_id:
                first = time.time()
                event_id = f"evt_{args.run}_{n}_{int(first * 1e6)}"
                body = stripe_event(event_id, f"wed_{n % 500}")
            load.in_flight += 1
            load.max_in_flight = max(load.max_in_flight, load.in_flight)
            last_start = time.time()
            try:
                outcome, at, retry_after = await attempt(port, args.src, signed_post(args.path, port, body))
            finally:
                load.in_flight -= 1
        load.outcomes[outcome] += 1
        first_status = first_status or outcome
        if outcome == "200":
            got_at = at
            break
        if not (outcome.startswith("503") or outcome.startswith("error")) or time.time() > stop_at:
            break
        pause = retry_after or min(BACKOFF_S[1], BACKOFF_S[0] * 2 ** (tries - 1))
        await asyncio.sleep(pause / 2 + random.uniform(0, pause / 2))
    load.rows.append([event_id, first, got_at, outcome, tries, first_status, last_start])


async def main(args: argparse.Namespace) -> None:
    ports = [int(p) for p in args.ports.split(",")]
    load = Load(args.in_flight)
    print(f"ready {raise_fd_limit()}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    stop_at = time.time() + args.timeout
    watcher = asyncio.create_task(load.watch())
    last = args.first + args.count
    await asyncio.gather(*(one(n, args, ports, stop_at, load) for n in range(args.first, last)))
    watcher.cancel()
    with open(args.out, "w") as out:  # noqa: ASYNC230 - once, after the load
        for row in load.rows:
            out.write(json.dumps(row) + "\n")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        tally = {
            "outcomes": dict(load.outcomes),
            "max_in_flight": load.max_in_flight,
            "timeline": load.timeline,
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }
        out.write(json.dumps(tally) + "\n")
    print("done", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ports", required=True, help="comma-separated shim ports")
    parser.add_argument("--path", default="/webhooks/stripe")
    parser.add_argument("--first", type=int, default=0, help="index of this process's first webhook")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--run", required=True, help="run tag put into every event id")
    parser.add_argument("--src", default="127.0.0.1", help="source address (spreads ephemeral ports)")
    parser.add_argument("--timeout", type=float, default=120.0, help="no retry starts after this (s)")
    parser.add_argument("--in-flight", type=int, default=1_000_000, help="cap on attempts in flight")
    parser.add_argument("--out", required=True)
    asyncio.run(main(parser.parse_args()))
