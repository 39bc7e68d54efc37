"""A sink instance in its own process, built on the SDK (run by the multi-process tests).

Usage: python -m tests.registry.sink_proc --registry HOST:PORT --service S --instance I
--record FILE [--ttl SECONDS]. Prints ``ready <port>`` once registered. Every delivery is
appended to FILE as one JSON line before it is handled. The payload picks the behaviour:
``retry`` asks for a retry, ``reject`` rejects, ``sleep:<s>`` sleeps then accepts,
anything else is accepted. SIGUSR1 turns health NOT_SERVING, SIGUSR2 SERVING again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from typing import TextIO

from services.registry.sdk import MeshInstance, Message, Reject, Retry


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--registry", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--instance", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--ttl", type=float, default=2.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with open(args.record, "a", buffering=1, encoding="utf-8") as record:
        asyncio.run(run(args, record))


async def run(args: argparse.Namespace, record: TextIO) -> None:

    async def handle(message: Message) -> None:
        line = {
            "id": message.message_id,
            "attempt": message.attempt,
            "payload": message.payload.decode(errors="replace"),
            "key": message.ordering_key,
            "instance": args.instance,
            "t": time.time(),
            "created": message.created_at.ToMilliseconds() / 1000,
        }
        record.write(json.dumps(line) + "\n")
        text = message.payload.decode(errors="replace")
        if text == "retry":
            raise Retry("asked to retry")
        if text == "reject":
            raise Reject("asked to reject")
        if text.startswith("sleep:"):
            await asyncio.sleep(float(text.split(":", 1)[1]))

    sink = MeshInstance(
        args.service, handle, registry=args.registry, instance_id=args.instance, ttl=args.ttl, port=args.port
    )
    await sink.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, lambda: loop.create_task(sink.set_serving(False)))
    loop.add_signal_handler(signal.SIGUSR2, lambda: loop.create_task(sink.set_serving(True)))
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print(f"ready {sink.port}", flush=True)
    await stop.wait()
    await sink.stop(grace=0.5)


if __name__ == "__main__":
    main()
