"""The stored shape of a webhook event and its conversions (no I/O here).

One :class:`WebhookEvent` protobuf is the record everywhere: intake serialises it as the
queue payload, the history hash keeps it in ``rec`` beside the fields that change while it
is processed (status, attempts, last error, normalised event, cursor), and the
normalised-events stream carries it whole. Signature headers are redacted before storing.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping

from google.protobuf.timestamp_pb2 import Timestamp

from wedsync.webhooks.v1 import webhooks_pb2

REDACTED = "[redacted]"
ALWAYS_REDACTED = frozenset(
    {
        "authorization",
        "cookie",
        "stripe-signature",
        "webhook-signature",
        "x-hub-signature",
        "x-hub-signature-256",
    }
)
# Headers a hop adds that say nothing about the event: not stored.
DROPPED = frozenset({"content-length", "connection", "accept-encoding", "host", "user-agent", "accept"})

Status = webhooks_pb2.WebhookEventStatus
# How an ingest outcome is named in the HTTP answer and in metrics.
OUTCOME_NAMES = {
    webhooks_pb2.INGEST_OUTCOME_ACCEPTED: "accepted",
    webhooks_pb2.INGEST_OUTCOME_DUPLICATE: "duplicate",
    webhooks_pb2.INGEST_OUTCOME_IGNORED: "ignored",
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def timestamp(ms: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


@functools.cache
def _redacted(signature_header: str) -> frozenset[str]:
    return ALWAYS_REDACTED | {signature_header}


def stored_headers(headers: Mapping[str, str], signature_header: str) -> dict[str, str]:
    """Headers worth keeping, with every signature/credential header redacted."""
    secret = _redacted(signature_header)  # one per configured provider
    return {k: (REDACTED if k in secret else v) for k, v in headers.items() if k not in DROPPED}


def new_record(
    *,
    event_id: str,
    provider_id: str,
    event_type: str,
    provider_event_id: str,
    received_ms: int,
    body: bytes,
    headers: dict[str, str],
    status: int,
) -> webhooks_pb2.WebhookEvent:
    """The record intake persists (raw body included: the worker normalises from it)."""
    stamp = timestamp(received_ms)
    return webhooks_pb2.WebhookEvent(
        event_id=event_id,
        provider_id=provider_id,
        event_type=event_type,
        provider_event_id=provider_event_id,
        received_at=stamp,
        updated_at=stamp,
        status=status,  # type: ignore[arg-type]
        raw_body=body,
        headers=headers,
    )


def without_raw(event: webhooks_pb2.WebhookEvent) -> webhooks_pb2.WebhookEvent:
    """A copy without raw body and headers (what callers get unless they ask for raw)."""
    copy = webhooks_pb2.WebhookEvent()
    copy.CopyFrom(event)
    copy.ClearField("raw_body")
    copy.ClearField("headers")
    return copy


def from_history(fields: Mapping[bytes, bytes], include_raw: bool) -> webhooks_pb2.WebhookEvent | None:
    """A history hash → the event as the RPCs return it; None if the hash is incomplete."""
    rec = fields.get(b"rec")
    if rec is None:
        return None
    event = webhooks_pb2.WebhookEvent.FromString(rec)
    if not include_raw:
        event.ClearField("raw_body")
        event.ClearField("headers")
    if b"status" in fields:
        event.status = int(fields[b"status"])  # type: ignore[assignment]
    event.attempts = int(fields.get(b"attempts", b"0"))
    event.last_error = fields.get(b"last_error", b"").decode()
    event.wedding_id = fields.get(b"wedding_id", b"").decode()
    event.cursor = fields.get(b"cursor", b"").decode()
    if fields.get(b"normalized"):
        event.normalized.ParseFromString(fields[b"normalized"])
    if b"updated_ms" in fields:
        event.updated_at.CopyFrom(timestamp(int(fields[b"updated_ms"])))
    return event
