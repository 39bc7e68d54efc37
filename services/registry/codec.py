"""How a routed Message maps onto the durable queue, and back.

The queue entry's payload is the serialized ``Message`` (with ``message_id`` and
``created_at`` set by the router); the queue's own message id, priority, ordering key and
idempotency key are the Message's. ``max_retries`` counts retries *after* the first
attempt, so a message gets ``max_retries + 1`` deliveries before it is dead-lettered
(``wedding.*`` → analytics-service with 1 retry: two attempts).
"""

from __future__ import annotations

import re

from services.core.queue import Priority
from services.registry.settings import PriorityName
from wedsync.registry.v1 import message_pb2

QUEUE_PREFIX = "router:"
METADATA_MESSAGE_ID = "wedsync-message-id"
METADATA_ATTEMPT = "wedsync-attempt"
INSTANCE_RE = re.compile(r"instance=([A-Za-z0-9._\-]+)")

TO_QUEUE = {
    message_pb2.MESSAGE_PRIORITY_UNSPECIFIED: Priority.NORMAL,
    message_pb2.MESSAGE_PRIORITY_HIGH: Priority.HIGH,
    message_pb2.MESSAGE_PRIORITY_NORMAL: Priority.NORMAL,
    message_pb2.MESSAGE_PRIORITY_LOW: Priority.LOW,
}
FROM_QUEUE = {
    Priority.HIGH: message_pb2.MESSAGE_PRIORITY_HIGH,
    Priority.NORMAL: message_pb2.MESSAGE_PRIORITY_NORMAL,
    Priority.LOW: message_pb2.MESSAGE_PRIORITY_LOW,
}
BY_NAME: dict[PriorityName, int] = {
    "HIGH": message_pb2.MESSAGE_PRIORITY_HIGH,
    "NORMAL": message_pb2.MESSAGE_PRIORITY_NORMAL,
    "LOW": message_pb2.MESSAGE_PRIORITY_LOW,
}


def queue_name(service: str) -> str:
    return f"{QUEUE_PREFIX}{service}"


def service_of(queue: str) -> str:
    return queue[len(QUEUE_PREFIX) :]


def max_attempts(max_retries: int, default_retries: int) -> int:
    return 1 + (max_retries if max_retries > 0 else default_retries)


def last_instance(error: str) -> str:
    """The instance id recorded in a delivery error (``instance=<id>``), if any."""
    found = INSTANCE_RE.search(error)
    return found.group(1) if found else ""
