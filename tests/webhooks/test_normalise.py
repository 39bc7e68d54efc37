"""Normalisers: every event type of the example providers becomes the right WeddingEvent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.core.queue import PermanentError
from services.webhooks.normalisers import NORMALISERS, normalise
from services.webhooks.settings import ProviderConfig
from tests.webhooks.conftest import example_providers
from wedsync.events.v1 import events_pb2
from wedsync.webhooks.v1 import webhooks_pb2


def record(event_type: str, doc: dict[str, Any]) -> webhooks_pb2.WebhookEvent:
    return webhooks_pb2.WebhookEvent(
        event_id="whe_1",
        provider_id="p",
        event_type=event_type,
        provider_event_id="e1",
        raw_body=json.dumps(doc).encode(),
    )


STRIPE_PI = {
    "id": "pi_1",
    "amount": 1200,
    "currency": "eur",
    "customer": "cus_1",
    "metadata": {"wedding_id": "w1", "supplier_id": "s1", "payment_type": "balance"},
    "last_payment_error": {"code": "card_declined", "message": "no", "decline_code": "insufficient_funds"},
}
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "payment_intent.succeeded",
        {"created": 1700000000, "data": {"object": STRIPE_PI}},
        "payment_succeeded",
        "w1",
    ),
    ("payment_intent.payment_failed", {"data": {"object": STRIPE_PI}}, "payment_failed", "w1"),
    (
        "invoice.payment_succeeded",
        {
            "data": {
                "object": {
                    "id": "in_1",
                    "amount_paid": 500,
                    "currency": "gbp",
                    "metadata": {"wedding_id": "w2"},
                }
            }
        },
        "payment_succeeded",
        "w2",
    ),
    (
        "charge.refunded",
        {
            "data": {
                "object": {
                    "id": "ch_1",
                    "amount_refunded": 300,
                    "currency": "gbp",
                    "metadata": {"wedding_id": "w3"},
                }
            }
        },
        "",
        "w3",
    ),
    (
        "booking.confirmed",
        {
            "occurred_at": "2026-06-01T10:00:00Z",
            "data": {
                "wedding_id": "w4",
                "booking_id": "b1",
                "starts_at": "2026-07-01T12:00:00+01:00",
                "deposit": {"amount_minor": 100, "currency": "gbp"},
            },
        },
        "booking_confirmed",
        "w4",
    ),
    (
        "booking.cancelled",
        {"data": {"wedding_id": "w5", "booking_id": "b1", "reason": "ill"}},
        "booking_cancelled",
        "w5",
    ),
    (
        "availability.updated",
        {
            "data": {
                "supplier_id": "s9",
                "dates": ["2026-07-01"],
                "available": True,
                "slots": [{"start_time": 1782900000, "capacity": 2, "available": True}],
            }
        },
        "availability_updated",
        "",
    ),
    (
        "email.delivered",
        {
            "timestamp": "2026-06-01T12:00:00Z",
            "data": {"message_id": "m1", "to": "a@b.c", "wedding_id": "w6"},
        },
        "email_delivered",
        "w6",
    ),
    (
        "email.bounced",
        {"data": {"message_id": "m1", "recipient": "a@b.c", "bounce_type": "Hard"}},
        "email_bounced",
        "",
    ),
    ("email.opened", {"data": {"message_id": "m1", "user_agent": "x"}}, "email_opened", ""),
]


@pytest.mark.parametrize(("event_type", "doc", "payload", "wedding"), CASES)
def test_each_type_normalises(event_type: str, doc: dict[str, Any], payload: str, wedding: str) -> None:
    """Each provider type maps to its canonical payload with wedding id and the envelope filled."""
    event = normalise(record(event_type, doc))
    assert (event.WhichOneof("payload") or "") == payload
    assert event.wedding_id == wedding
    assert (event.id, event.source, event.source_event_id) == ("whe_1", "p", "e1")


def test_details_are_carried_over() -> None:
    """Amounts become minor units with upper-case currency; failures keep their codes; bounces their type."""
    failed = normalise(
        record("payment_intent.payment_failed", {"data": {"object": STRIPE_PI}})
    ).payment_failed
    assert failed.amount == events_pb2.Money(amount_minor=1200, currency="EUR")
    assert (failed.failure_code, failed.decline_code) == ("card_declined", "insufficient_funds")
    bounced = normalise(record("email.bounced", CASES[8][1])).email_bounced
    assert bounced.bounce_type == events_pb2.EMAIL_BOUNCE_TYPE_HARD
    refund = normalise(record("charge.refunded", CASES[3][1]))
    assert refund.type == "payment.refunded" and refund.attributes["amount_refunded_minor"] == "300"


def test_every_example_event_type_has_a_normaliser() -> None:
    """No accepted type in the example config lacks a normaliser (it would dead-letter)."""
    for provider in example_providers().values():
        for event_type in ProviderConfig(**provider).event_types:
            assert event_type in NORMALISERS


def test_payment_without_object_is_permanent() -> None:
    """A Stripe event without its object cannot be normalised: PermanentError (no retries)."""
    with pytest.raises(PermanentError):
        normalise(record("payment_intent.succeeded", {"data": {}}))


@pytest.mark.parametrize(
    ("event_type", "doc"),
    [
        ("availability.updated", {"data": {"slots": [{"start_time": 1782900000, "capacity": "many"}]}}),
        ("availability.updated", {"data": {"slots": [{"start_time": 1782900000, "capacity": 2**40}]}}),
        ("booking.confirmed", {"occurred_at": 1e300, "data": {"wedding_id": "w1", "booking_id": "b1"}}),
    ],
)
def test_a_body_of_the_wrong_shape_is_permanent_not_retried(event_type: str, doc: Any) -> None:
    """Values of the wrong type or out of range fail the same way on every attempt: the
    normaliser's own error becomes PermanentError (dead-lettered at once, no retries)."""
    with pytest.raises(PermanentError, match=f"{event_type} could not be normalised"):
        normalise(record(event_type, doc))
