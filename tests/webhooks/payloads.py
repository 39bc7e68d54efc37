"""Provider payloads and signatures made with the providers' own libraries where they exist."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import standardwebhooks
import stripe


def stripe_body(event_type: str = "payment_intent.succeeded", **meta: str) -> tuple[str, bytes]:
    event_id = "evt_" + uuid.uuid4().hex[:24]
    metadata = {"wedding_id": "wed_1", "supplier_id": "sup_1", "payment_type": "deposit", **meta}
    doc = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {
            "object": {
                "id": "pi_" + uuid.uuid4().hex[:16],
                "object": "payment_intent",
                "amount": 50000,
                "amount_received": 50000,
                "currency": "gbp",
                "customer": "cus_1",
                "latest_charge": "ch_1",
                "payment_method_types": ["card"],
                "metadata": metadata,
            }
        },
    }
    return event_id, json.dumps(doc).encode()


def stripe_headers(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp)
    return {"stripe-signature": header}


def supplier_body(event_type: str = "booking.confirmed", wedding_id: str = "wed_2") -> tuple[str, bytes]:
    event_id = "sup_evt_" + uuid.uuid4().hex[:16]
    doc: dict[str, Any] = {
        "id": event_id,
        "type": event_type,
        "occurred_at": "2026-06-01T12:00:00Z",
        "data": {
            "booking_id": "bk_1",
            "wedding_id": wedding_id,
            "supplier_id": "sup_9",
            "service_description": "string quartet",
            "total": {"amount_minor": 120000, "currency": "gbp"},
        },
    }
    return event_id, json.dumps(doc).encode()


def supplier_headers(body: bytes, secret: str, prefix: str = "sha256=") -> dict[str, str]:
    return {"x-supplier-signature": prefix + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def email_body(event_type: str = "email.delivered") -> bytes:
    doc = {
        "type": event_type,
        "timestamp": "2026-06-01T12:00:00Z",
        "data": {
            "message_id": "m_1",
            "recipient": "a@example.com",
            "wedding_id": "wed_3",
            "bounce_type": "hard",
        },
    }
    return json.dumps(doc).encode()


def email_headers(
    body: bytes, secret: str, msg_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    msg_id = msg_id or "msg_" + uuid.uuid4().hex[:20]
    stamp = datetime.fromtimestamp(timestamp if timestamp is not None else time.time(), tz=UTC)
    signature = standardwebhooks.Webhook(secret).sign(msg_id, stamp, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": signature,
    }
