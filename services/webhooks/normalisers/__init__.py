"""Normalisers: a registry of plain functions, provider event type → ``WeddingEvent``.

Each takes the verified JSON document and returns a ``WeddingEvent`` with its type, wedding
and supplier ids, occurrence time and payload; :func:`normalise` adds the envelope (id,
source, provider event id, received time). A document that cannot be normalised raises
``PermanentError`` (retrying cannot fix it: it goes to dead letters at once).

Payload shapes: Stripe's documented event objects; the supplier platform and the email
provider send ``{"type", "id", "occurred_at"|"timestamp", "data": {...}}`` with the fields
read below (docs/webhooks.md lists them). ``charge.refunded`` has no canonical message in
``wedsync.events.v1`` yet: it becomes type ``payment.refunded`` with attributes only.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from services.core.queue import PermanentError
from services.webhooks.normalisers.common import Doc
from services.webhooks.normalisers.email import email_bounced, email_delivered, email_opened
from services.webhooks.normalisers.stripe import (
    stripe_charge_refunded,
    stripe_invoice_paid,
    stripe_payment_intent_failed,
    stripe_payment_intent_succeeded,
)
from services.webhooks.normalisers.supplier import availability_updated, booking_cancelled, booking_confirmed
from wedsync.events.v1 import events_pb2
from wedsync.webhooks.v1 import webhooks_pb2

Normaliser = Callable[[Doc], events_pb2.WeddingEvent]

NORMALISERS: dict[str, Normaliser] = {
    "payment_intent.succeeded": stripe_payment_intent_succeeded,
    "payment_intent.payment_failed": stripe_payment_intent_failed,
    "invoice.payment_succeeded": stripe_invoice_paid,
    "charge.refunded": stripe_charge_refunded,
    "booking.confirmed": booking_confirmed,
    "booking.cancelled": booking_cancelled,
    "availability.updated": availability_updated,
    "email.delivered": email_delivered,
    "email.bounced": email_bounced,
    "email.opened": email_opened,
}


def normalise(record: webhooks_pb2.WebhookEvent) -> events_pb2.WeddingEvent:
    """The canonical event for a stored webhook; ``PermanentError`` when impossible."""
    normaliser = NORMALISERS.get(record.event_type)
    if normaliser is None:
        raise PermanentError(f"no normaliser for event type {record.event_type!r}")
    try:
        doc = json.loads(record.raw_body)
    except ValueError as exc:
        raise PermanentError("stored body is not JSON") from exc
    try:
        event = normaliser(doc)
    except PermanentError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, IndexError) as exc:
        # The document's shape or values (text where a number belongs, a number protobuf
        # cannot hold, a list where an object belongs): the same body fails the same way on
        # every attempt, so it is dead-lettered at once; replay it once the normaliser is fixed.
        raise PermanentError(
            f"{record.event_type} could not be normalised ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc
    event.id = record.event_id
    event.source = record.provider_id
    event.source_event_id = record.provider_event_id
    event.received_at.CopyFrom(record.received_at)
    return event
