"""One sink process of bench/peak.py: a receiving service built on the SDK, recording receipts.

    .venv/bin/python bench/peak_sink.py --service notification-service --registry 127.0.0.1:50051 \
        --out /tmp/notification-1.log

It is what a WedSync service looks like (examples/notification_service.py): a
``MeshInstance`` that registers, keeps its lease and answers health checks; its handler
decodes the ``WeddingEvent`` and writes one line per delivery to ``--out``:
``<source event id> <receipt time> <message id> <attempt>``. Lines are buffered and flushed
every 0.2 s (and at exit), so the process keeps no growing list and the driver can follow
progress by reading the file. Every delivery is recorded, repeats included: the driver
counts duplicates from these lines.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time

from services.registry.sdk import MeshInstance, Message
from wedsync.events.v1 import events_pb2

FLUSH_S = 0.2


async def main(args: argparse.Namespace) -> None:
    out = open(args.out, "a", buffering=1 << 16)  # noqa: ASYNC230 - once, before serving
    stop = asyncio.Event()

    async def handle(message: Message) -> None:
        event = events_pb2.WeddingEvent.FromString(message.payload)
        out.write(f"{event.source_event_id} {time.time():.6f} {message.message_id} {message.attempt}\n")

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with MeshInstance(args.service, handle, registry=args.registry, instance_id=args.instance_id):
            print("ready", flush=True)
            while not stop.is_set():
                out.flush()
                try:
                    await asyncio.wait_for(stop.wait(), FLUSH_S)
                except TimeoutError:
                    pass
    finally:
        out.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--service", required=True, help="service name to register as")
    parser.add_argument("--registry", required=True, help="registry/router host:port")
    parser.add_argument("--instance-id", help="unique per instance")
    parser.add_argument("--out", required=True, help="file to append receipts to")
    asyncio.run(main(parser.parse_args()))
