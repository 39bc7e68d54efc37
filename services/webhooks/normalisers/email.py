"""Email provider events (``{"type", "timestamp", "data": {...}}``) → delivered, bounced, opened."""

from __future__ import annotations

from typing import Any

from services.webhooks.normalisers.common import Doc, envelope, obj, text
from wedsync.events.v1 import events_pb2

_BOUNCES = {
    "hard": events_pb2.EMAIL_BOUNCE_TYPE_HARD,
    "soft": events_pb2.EMAIL_BOUNCE_TYPE_SOFT,
    "blocked": events_pb2.EMAIL_BOUNCE_TYPE_BLOCKED,
}


def _email(kind: str, doc: Doc) -> tuple[events_pb2.WeddingEvent, Doc, dict[str, Any]]:
    data = obj(doc, "data")
    event = envelope(kind, data, doc.get("timestamp") or doc.get("occurred_at"))
    common = {
        "wedding_id": event.wedding_id,
        "supplier_id": event.supplier_id,
        "message_id": text(data, "message_id"),
        "recipient": text(data, "recipient") or text(data, "to"),
    }
    return event, data, common


def email_delivered(doc: Doc) -> events_pb2.WeddingEvent:
    event, data, common = _email("email.delivered", doc)
    event.email_delivered.CopyFrom(
        events_pb2.EmailDelivered(
            **common, subject=text(data, "subject"), smtp_response=text(data, "smtp_response")
        )
    )
    if event.HasField("occurred_at"):
        event.email_delivered.delivered_at.CopyFrom(event.occurred_at)
    return event


def email_bounced(doc: Doc) -> events_pb2.WeddingEvent:
    event, data, common = _email("email.bounced", doc)
    event.email_bounced.CopyFrom(
        events_pb2.EmailBounced(
            **common,
            bounce_type=_BOUNCES.get(
                text(data, "bounce_type").lower(), events_pb2.EMAIL_BOUNCE_TYPE_UNSPECIFIED
            ),
            reason=text(data, "reason"),
            diagnostic_code=text(data, "diagnostic_code"),
        )
    )
    if event.HasField("occurred_at"):
        event.email_bounced.bounced_at.CopyFrom(event.occurred_at)
    return event


def email_opened(doc: Doc) -> events_pb2.WeddingEvent:
    event, data, common = _email("email.opened", doc)
    event.email_opened.CopyFrom(events_pb2.EmailOpened(**common, user_agent=text(data, "user_agent")))
    if event.HasField("occurred_at"):
        event.email_opened.opened_at.CopyFrom(event.occurred_at)
    return event
