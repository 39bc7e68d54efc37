"""A WedSync notification service that receives routed messages, built on the mesh SDK.

Run the mesh (``wedmesh up``), then::

    python examples/notification_service.py --registry 127.0.0.1:50051

It registers as ``notification-service``, keeps its lease alive, answers the registry's
health checks, and handles every message the router delivers — e.g. the ``wedding.*``
events that ``RouterService.Publish`` fans out by the default routes, or a direct
``RouterService.Send``. Delivery is at-least-once, so it remembers message ids it has
handled and acknowledges a repeat without doing the work twice.

In a mesh with mutual TLS and caller auth on, give it its certificate and its own token
through the environment (the SDK reads them; see docs/registry.md)::

    WEDMESH_SERVICE_TOKEN="$(wedmesh token --service notification-service)" \
    WEDMESH_TLS_CA_FILE=ca.pem WEDMESH_TLS_CERT_FILE=server.pem WEDMESH_TLS_KEY_FILE=server.key \
    WEDMESH_TLS_CLIENT_CERT_FILE=client.pem WEDMESH_TLS_CLIENT_KEY_FILE=client.key \
    python examples/notification_service.py --registry 127.0.0.1:50051
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections import OrderedDict

from services.registry.sdk import MeshInstance, Message, Reject, Retry
from wedsync.events.v1 import events_pb2

log = logging.getLogger("notification-service")
EVENT_TYPE = "application/x-protobuf; messageType=wedsync.events.v1.WeddingEvent"
REMEMBERED = 10_000


class Notifier:
    """Turns wedding events into notifications (here: log lines), once per message."""

    def __init__(self) -> None:
        self.seen: OrderedDict[str, None] = OrderedDict()

    async def __call__(self, message: Message) -> None:
        if message.message_id in self.seen:
            return  # a redelivery of something already done: accept it again
        if message.content_type == EVENT_TYPE:
            try:
                event = events_pb2.WeddingEvent.FromString(message.payload)
            except Exception:
                raise Reject("payload is not a WeddingEvent") from None
            await self.notify(event)
        elif message.event_type:
            log.info("message %s (%s), attempt %d", message.message_id, message.event_type, message.attempt)
        else:
            raise Reject("message has neither an event nor an event_type")
        self.seen[message.message_id] = None
        if len(self.seen) > REMEMBERED:
            self.seen.popitem(last=False)

    async def notify(self, event: events_pb2.WeddingEvent) -> None:
        if not event.wedding_id:
            raise Retry("wedding not known yet; try later", retry_after=5)
        if event.type == "email.bounced":
            log.warning("wedding %s: an email bounced; tell the planner", event.wedding_id)
        elif event.type.startswith("payment."):
            log.info("wedding %s: %s", event.wedding_id, event.type)
        else:
            log.info("wedding %s: %s (event %s)", event.wedding_id, event.type, event.id)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--registry", default="127.0.0.1:50051", help="registry/router address")
    parser.add_argument("--port", type=int, default=0, help="port to serve MessageSink on (0: any)")
    parser.add_argument("--instance-id", help="unique per instance (default: host-pid-random)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    notifier = Notifier()
    try:  # TLS files and the token come from WEDMESH_TLS_* / WEDMESH_SERVICE_TOKEN when set
        instance = MeshInstance(
            "notification-service",
            notifier,
            registry=args.registry,
            port=args.port,
            instance_id=args.instance_id,
        )
    except ValueError as exc:  # e.g. WEDMESH_TLS_CERT_FILE set without its key
        parser.error(str(exc))
    async with instance:
        log.info(
            "serving on %s as %s (tls: %s)", instance.address, instance.instance_id, instance.tls is not None
        )
        print(f"ready {instance.instance_id}", flush=True)
        await stop.wait()  # leaving the block deregisters and drains


if __name__ == "__main__":
    asyncio.run(main())
